"""MetricSuite: columns/ids/missing, full-reference vs LR-only batches, LR-PSNR, grey images,
NaN isolation, shape errors and device handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from srbench.metrics import PROFILES, ShapeMismatchError, UnknownProfile, build_metrics
from srbench.metrics.planes import crop_for_scale


def batch(seed: int, b: int = 2, h: int = 48, w: int = 40, noise: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    hr = F.interpolate(torch.rand(b, 3, h // 6, w // 6, generator=g), size=(h, w), mode="bilinear").clamp(0, 1)
    sr = (hr + noise * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    return sr, hr


def avg_pool_x2(x: torch.Tensor) -> torch.Tensor:
    """A stand-in LR operator for the tests (the real one is MATLAB bicubic)."""
    return F.avg_pool2d(x, 2)


def u8(x: torch.Tensor) -> np.ndarray:
    return np.round(np.clip(x.double().numpy(), 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def suite():
    return build_metrics("standard", lpips_weights="random", scale=4)


def test_build_without_lpips_weights_reports_missing_and_still_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    s = build_metrics("standard", lpips_nets=("alex", "vgg"))
    assert s.columns == ["psnr", "ssim", "lr_psnr"]
    assert set(s.missing) == {"lpips", "lpips_vgg"}
    assert "alexnet-owt-7be5be79.pth" in s.missing["lpips"] and "\n" not in s.missing["lpips"]
    assert s.ids["lpips_vgg"] == "lpips@vgg-v0.1"
    sr, hr = batch(0)
    out = s(sr, hr, scale=4)
    assert set(out) == {"psnr", "ssim"}


def test_columns_ids_and_directions(suite):
    assert suite.columns == ["psnr", "ssim", "lpips", "lr_psnr"]
    assert suite.ids == {
        "psnr": "psnr@basicsr-y-crop4",
        "ssim": "ssim@basicsr-y-crop4",
        "lpips": "lpips@alex-v0.1-randombackbone",
        "lr_psnr": "lr_psnr@basicsr-rgb-crop0",
    }
    assert suite.higher_is_better == {"psnr": True, "ssim": True, "lpips": False, "lr_psnr": True}
    assert suite.missing == {}


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_builds_and_ids_name_it(name):
    s = build_metrics(name, lpips_nets=())
    ids = s.ids_for(4)
    crop = crop_for_scale(4) if PROFILES[name].crop == "scale" else 0
    assert ids["psnr"] == f"psnr@{PROFILES[name].tag}-crop{crop}"
    sr, hr = batch(1)
    out = s(sr, hr, scale=4)
    assert out["psnr"].shape == (2,) and out["psnr"].dtype == torch.float64


def test_unknown_profile_lists_choices():
    with pytest.raises(UnknownProfile, match="standard"):
        build_metrics("nope")


def test_suite_psnr_is_basicsr_y_with_crop_scale(suite):
    sr, hr = batch(2)
    out = suite(sr, hr, scale=4)
    a, b = u8(sr).transpose(0, 2, 3, 1) / 255.0, u8(hr).transpose(0, 2, 3, 1) / 255.0
    w = np.array([65.481, 128.553, 24.966])
    for i in range(2):
        ya, yb = (16 + a[i] @ w)[4:-4, 4:-4], (16 + b[i] @ w)[4:-4, 4:-4]
        assert out["psnr"][i].item() == pytest.approx(sk_psnr(yb, ya, data_range=255), abs=1e-10)
    assert out["lpips"].shape == (2,) and (out["lpips"] > 0).all()
    assert all(v.device.type == "cpu" and v.dtype == torch.float64 for v in out.values())


def test_lr_psnr_against_skimage_and_identity(suite):
    sr, hr = batch(3)
    lr = torch.from_numpy(u8(avg_pool_x2(torch.from_numpy(u8(hr)).float() / 255))).float() / 255
    out = suite(sr, hr, lr, scale=4, degrade=avg_pool_x2)
    redegraded = u8(avg_pool_x2(torch.from_numpy(u8(sr)).float() / 255))
    for i in range(2):
        assert out["lr_psnr"][i].item() == pytest.approx(sk_psnr(u8(lr)[i], redegraded[i], data_range=255), abs=1e-10)
    # HR degraded with the same operator reproduces its LR exactly
    assert torch.isinf(suite(hr, hr, lr, scale=4, degrade=avg_pool_x2)["lr_psnr"]).all()


def test_lr_only_batch_gives_only_no_reference_columns(suite):
    sr, hr = batch(4)
    lr = avg_pool_x2(hr)
    assert suite(sr, None, scale=4) == {}
    assert set(suite(sr, None, lr, scale=4, degrade=avg_pool_x2)) == {"lr_psnr"}
    assert set(suite(sr, hr, lr, scale=4)) == {"psnr", "ssim", "lpips"}  # no degrade: no lr_psnr


def test_lr_psnr_shape_mismatch_is_reported(suite):
    sr, hr = batch(5)
    with pytest.raises(ShapeMismatchError, match="degrade"):
        suite(sr, hr, F.avg_pool2d(hr, 4), scale=4, degrade=avg_pool_x2)


def test_gray_flag_scores_the_grey_channel(suite):
    """matlab honours the loader's grey flag (one channel); standard, like BasicSR's pipeline, does not."""
    sr, hr = batch(6)
    sr, hr = sr[:, :1].expand(-1, 3, -1, -1), hr[:, :1].expand(-1, 3, -1, -1)
    matlab = build_metrics("matlab", lpips_nets=(), scale=4)
    flagged = matlab(sr, hr, scale=4, gray=[True, True])
    for i in range(2):
        g_sr, g_hr = u8(sr)[i, 0, 4:-4, 4:-4], u8(hr)[i, 0, 4:-4, 4:-4]
        assert flagged["psnr"][i].item() == pytest.approx(sk_psnr(g_hr, g_sr, data_range=255), abs=1e-10)
    plain = suite(sr, hr, scale=4)
    standard_flagged = suite(sr, hr, scale=4, gray=[True, True])
    assert torch.equal(plain["psnr"], standard_flagged["psnr"]) and torch.equal(plain["lpips"], standard_flagged["lpips"])
    # Y of a replicated grey is 16 + 219/255·v: every error shrinks by 219/255
    gap = (plain["psnr"] - flagged["psnr"]).numpy()
    np.testing.assert_allclose(gap, 20 * math.log10(255 / 219), atol=1e-9)


def test_nan_image_is_isolated(suite):
    sr, hr = batch(7, b=3)
    clean = suite(sr, hr, scale=4)
    sr = sr.clone()
    sr[1, 0, 5, 5] = float("nan")
    out = suite(sr, hr, scale=4)
    for col in ("psnr", "ssim", "lpips"):
        assert torch.isnan(out[col][1])
        assert torch.allclose(out[col][[0, 2]], clean[col][[0, 2]], rtol=0, atol=1e-6)


def test_out_of_range_sr_is_clamped_not_rejected(suite):
    sr, hr = batch(8)
    out = suite(sr * 1.5 - 0.2, hr, scale=4)
    ref = suite((sr * 1.5 - 0.2).clamp(0, 1), hr, scale=4)
    for col in ("psnr", "ssim", "lpips"):
        assert torch.equal(out[col], ref[col])


def test_shape_mismatch_names_shapes_and_modcrop_hint(suite):
    sr, hr = batch(9, h=48, w=40)
    with pytest.raises(ShapeMismatchError, match=r"img_a.*\(2, 3, 44, 40\).*\(2, 3, 46, 42\).*modcropped"):
        suite(sr[..., :44, :], F.pad(hr, (0, 2, 0, 2))[..., :46, :], scale=4, names=["img_a", "img_b"])


def test_scale_fixed_at_build_is_enforced(suite):
    sr, hr = batch(10)
    with pytest.raises(ValueError, match="x4"):
        suite(sr, hr, scale=2)


def test_ids_without_scale_say_crop_is_the_scale():
    s = build_metrics("standard", lpips_nets=())
    assert s.ids["psnr"] == "psnr@basicsr-y-crop{s}"
    assert build_metrics("piq-rgb", lpips_nets=()).ids["psnr"] == "psnr@piq-rgb-crop0"
    sr, hr = batch(12)
    s(sr, hr, scale=2)
    assert s.ids["psnr"] == "psnr@basicsr-y-crop2"  # an unfixed suite names the scale it last scored


@pytest.mark.gpu
def test_cuda_matches_cpu(suite):
    sr, hr = batch(11, b=3, h=96, w=80)
    lr = avg_pool_x2(hr)
    cpu = suite(sr, hr, lr, scale=4, degrade=avg_pool_x2)
    gpu = suite(sr.cuda(), hr.cuda(), lr.cuda(), scale=4, degrade=avg_pool_x2)
    assert torch.allclose(cpu["psnr"], gpu["psnr"], rtol=0, atol=1e-9)
    assert torch.allclose(cpu["ssim"], gpu["ssim"], rtol=0, atol=1e-9)
    assert torch.allclose(cpu["lpips"], gpu["lpips"], rtol=0, atol=1e-4)
    assert torch.allclose(cpu["lr_psnr"], gpu["lr_psnr"], rtol=0, atol=1e-6)


def test_colour_sr_of_grey_image_uses_rgb2gray_not_one_channel():
    """matlab scores a colour SR of a grey image through MATLAB's rgb2gray, not its red channel."""
    sr, hr = batch(11, b=1)
    hr = hr[:, :1].expand(-1, 3, -1, -1)
    suite = build_metrics("matlab", lpips_nets=(), scale=4)
    a = suite(sr, hr, scale=4, gray=[True])["psnr"]
    # the reference: MATLAB rgb2gray of the 8-bit SR, rounded, against the grey HR channel
    q = np.round(np.clip(sr[0].double().numpy(), 0, 1) * 255).transpose(1, 2, 0)
    grey = np.floor(q @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]) + 0.5)
    ref = sk_psnr(u8(hr)[0, 0, 4:-4, 4:-4].astype(np.float64), grey[4:-4, 4:-4], data_range=255)
    assert float(a) == pytest.approx(ref, abs=1e-9)
