"""PSNR/SSIM/Y against independent oracles: closed forms, numpy/OpenCV (BasicSR's code written
out), scikit-image, pyiqa and piq (protocols.md §1, §7.1, §7.4)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from srbench.metrics import PROFILES, ShapeMismatchError, get_profile, psnr, rgb_to_y, ssim
from srbench.metrics.ssim import _filter_valid_conv, _filter_valid_scipy, gaussian_window_1d

# ----------------------------------------------------------------------------- test images


def make_pair(seed: int, h: int = 37, w: int = 53, c: int = 3, noise: float = 0.05, batch: int = 1):
    """Smooth random content with an edge, and a noisy copy; B×C×H×W float32 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(batch, c, h // 6 + 2, w // 6 + 2, generator=g)
    base = F.interpolate(base, size=(h, w), mode="bicubic", align_corners=False)
    edge = (torch.arange(w) > w // 2).float() * 0.25
    hr = (0.1 + 0.65 * base + edge).clamp(0, 1)
    sr = (hr + noise * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    return sr, hr


PAIRS = {
    "mild": {"seed": 1, "noise": 0.02},
    "noisy": {"seed": 2, "noise": 0.25},
    "odd_size": {"seed": 3, "h": 29, "w": 41, "noise": 0.06},
    "batch3": {"seed": 4, "noise": 0.08, "batch": 3},
}


@pytest.fixture(params=list(PAIRS), ids=list(PAIRS))
def pair(request):
    return make_pair(**PAIRS[request.param])


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """B×C×H×W float [0,1] → B×H×W×C uint8, as a PNG writer would (numpy round: half to even)."""
    return np.round(np.clip(x.double().numpy(), 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)


# ---------------------------------------------------------------- oracles written from sources


def y_exact(img: np.ndarray) -> np.ndarray:
    """Studio BT.601 luma in float64 from uint8 HWC (ITU-R BT.601; MATLAB rgb2ycbcr formula)."""
    x = img.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def y_rounded_exact(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr on uint8 in exact integer arithmetic: round half away from zero."""
    r, g, b = (img[..., i].astype(np.int64) for i in range(3))
    n = 65481 * r + 128553 * g + 24966 * b  # 1000·255·(Y − 16)
    return (16 + (n + 127500) // 255000).astype(np.float64)


def y_basicsr(img: np.ndarray) -> np.ndarray:
    """BasicSR metric_util.to_y_channel + color_util.rgb2ycbcr(y_only=True), float32 chain as written."""
    x = img.astype(np.float32) / 255.0  # to_y_channel; _convert_input_type_range keeps float32 as is
    y = np.dot(x, [65.481, 128.553, 24.966]) + 16.0
    y = (y / 255.0).astype(np.float32)  # _convert_output_type_range(float32)
    return y * 255.0


def ssim_basicsr(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR psnr_ssim._ssim: cv2.filter2D with the 11×11 Gaussian, sliced to the valid region."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.transpose())
    f = lambda z: cv2.filter2D(z, -1, win)[5:-5, 5:-5]
    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def psnr_np(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def sk_ssim_wang(a: np.ndarray, b: np.ndarray, **kw) -> float:
    """scikit-image's own recipe for Wang et al. 2004 (its defaults are not)."""
    return sk_ssim(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **kw)


def crop(a: np.ndarray, b: int) -> np.ndarray:
    return a[b:-b, b:-b] if b else a


# ----------------------------------------------------------------------------- colour


def test_rgb_to_y_endpoints_and_range():
    x = torch.tensor([0.0, 1.0], dtype=torch.float64).view(1, 1, 2, 1).expand(1, 3, 2, 1)
    y = rgb_to_y(x).flatten()
    assert y[0].item() == pytest.approx(16.0, abs=1e-12)
    assert y[1].item() == pytest.approx(235.0, abs=1e-12)


def test_rgb_to_y_matches_basicsr_formula(pair):
    sr, _ = pair
    img = to_uint8_hwc(sr)
    ours = rgb_to_y(torch.from_numpy(img.transpose(0, 3, 1, 2)).double() / 255)[:, 0].numpy()
    np.testing.assert_allclose(ours, y_exact(img), rtol=0, atol=1e-12)
    # BasicSR's chain runs in float32: agreement to float32 resolution at Y ≈ 235.
    assert np.abs(ours - y_basicsr(img)).max() < 1e-4


def test_rounded_y_is_matlab_half_away_on_every_exact_half():
    r = np.arange(256, dtype=np.int64)
    n = 65481 * r[:, None, None] + 128553 * r[None, :, None] + 24966 * r[None, None, :]
    halves = np.argwhere(n % 255000 == 127500)  # Y exactly k + 1/2: 194 colours
    rng = np.random.default_rng(0)
    colours = np.concatenate([halves, rng.integers(0, 256, size=(5000, 3))]).astype(np.uint8)
    img = colours[None, :, None, :]  # 1×N×1×3
    ours = rgb_to_y(torch.from_numpy(img.transpose(0, 3, 1, 2)).double() / 255, round_y=True)
    np.testing.assert_array_equal(ours[0, 0].numpy(), y_rounded_exact(img)[0])
    assert len(halves) == 194


# ----------------------------------------------------------------------------- standard / matlab


@pytest.mark.parametrize("scale", [0, 2, 4])
def test_standard_psnr_ssim_vs_numpy_and_skimage(pair, scale):
    sr, hr = pair
    a, b = to_uint8_hwc(sr), to_uint8_hwc(hr)
    prof = get_profile("standard")
    ours_p = psnr(sr, hr, crop=scale) if scale == 0 else prof.psnr(sr, hr, scale=scale)
    ours_s = ssim(sr, hr, crop=scale) if scale == 0 else prof.ssim(sr, hr, scale=scale)
    for i in range(len(a)):
        ya, yb = crop(y_exact(a[i]), scale), crop(y_exact(b[i]), scale)
        assert abs(ours_p[i].item() - psnr_np(ya, yb)) < 1e-10
        assert abs(ours_p[i].item() - sk_psnr(yb, ya, data_range=255)) < 1e-10
        assert abs(ours_s[i].item() - sk_ssim_wang(ya, yb)) < 1e-10
        # BasicSR's own code path (float32 Y, cv2 filtering): float32-level agreement.
        ba, bb = crop(y_basicsr(a[i]), scale).astype(np.float64), crop(y_basicsr(b[i]), scale).astype(np.float64)
        assert abs(ours_p[i].item() - psnr_np(ba, bb)) < 1e-4
        assert abs(ours_s[i].item() - ssim_basicsr(ba, bb)) < 1e-6


def test_matlab_profile_uses_8bit_y(pair):
    sr, hr = pair
    a, b = to_uint8_hwc(sr), to_uint8_hwc(hr)
    prof = get_profile("matlab")
    p, s = prof.psnr(sr, hr, scale=4), prof.ssim(sr, hr, scale=4)
    for i in range(len(a)):
        ya, yb = crop(y_rounded_exact(a[i]), 4), crop(y_rounded_exact(b[i]), 4)
        assert abs(p[i].item() - psnr_np(ya, yb)) < 1e-10
        assert abs(s[i].item() - sk_ssim_wang(ya, yb)) < 1e-10


def test_rgb_ssim_is_mean_of_channels_vs_skimage_and_basicsr(pair):
    sr, hr = pair
    a, b = to_uint8_hwc(sr), to_uint8_hwc(hr)
    prof = get_profile("basicsr-rgb")
    p, s = prof.psnr(sr, hr, scale=4), prof.ssim(sr, hr, scale=4)
    for i in range(len(a)):
        fa, fb = a[i].astype(np.float64), b[i].astype(np.float64)
        assert abs(p[i].item() - sk_psnr(b[i], a[i], data_range=255)) < 1e-10
        assert abs(s[i].item() - sk_ssim_wang(fa, fb, channel_axis=-1)) < 1e-10
        basicsr = np.mean([ssim_basicsr(fa[..., k], fb[..., k]) for k in range(3)])
        assert abs(s[i].item() - basicsr) < 1e-10


def test_studio_vs_full_range_y_gap_is_20log10_255_over_219(pair):
    """protocols.md §1.4: PSNR on studio Y − PSNR on 0.299R+0.587G+0.114B (peak 255) = 20 log10(255/219)."""
    sr, hr = pair
    a, b = to_uint8_hwc(sr).astype(np.float64), to_uint8_hwc(hr).astype(np.float64)
    w = np.array([0.299, 0.587, 0.114])
    ours = psnr(sr, hr, crop=0)
    for i in range(len(a)):
        yiq = psnr_np(a[i] @ w, b[i] @ w)
        assert abs(ours[i].item() - yiq - 20 * math.log10(255 / 219)) < 1e-9


# ----------------------------------------------------------------------------- paper profiles


@pytest.fixture(scope="module")
def pyiqa_metrics():
    pyiqa = pytest.importorskip("pyiqa")
    dev = torch.device("cpu")
    return (
        pyiqa.create_metric("psnr", test_y_channel=True, color_space="ycbcr", device=dev),
        pyiqa.create_metric("ssim", test_y_channel=True, color_space="ycbcr", device=dev),
    )


def _as_png_float32(x: torch.Tensor) -> torch.Tensor:
    """What pyiqa/piq get from an 8-bit PNG: uint8 / 255 in float32."""
    return torch.from_numpy(to_uint8_hwc(x).transpose(0, 3, 1, 2).copy()).float() / 255


def test_pyiqa_ycbcr_profile_matches_pyiqa(pair, pyiqa_metrics):
    sr, hr = pair
    ref_psnr, ref_ssim = (m(_as_png_float32(sr), _as_png_float32(hr)).double().flatten() for m in pyiqa_metrics)
    prof = get_profile("pyiqa-ycbcr")
    assert (prof.psnr(sr, hr, scale=4) - ref_psnr).abs().max() < 1e-4
    assert (prof.ssim(sr, hr, scale=4) - ref_ssim).abs().max() < 1e-4


def test_pyiqa_ssim_cs_relu_on_anticorrelated_content(pyiqa_metrics):
    """Where SR is locally inverted the contrast-structure term is negative: pyiqa clamps it at 0."""
    _, hr = make_pair(seed=2, noise=0.0)
    sr = hr.clone()
    sr[..., :, :24] = 1 - hr[..., :, :24]
    ref = pyiqa_metrics[1](_as_png_float32(sr), _as_png_float32(hr)).double().flatten()
    assert (get_profile("pyiqa-ycbcr").ssim(sr, hr) - ref).abs().max() < 1e-4
    no_relu = ssim(sr, hr, crop=0, round_y=True, rounding="half_even")
    assert (no_relu - ref).abs().max() > 1e-2


def test_piq_rgb_profile_matches_piq(pair):
    piq = pytest.importorskip("piq")
    sr, hr = pair
    x, y = _as_png_float32(sr), _as_png_float32(hr)
    prof = get_profile("piq-rgb")
    ref_p = piq.psnr(x, y, data_range=1.0, reduction="none").double()
    ref_s = piq.ssim(x, y, data_range=1.0, downsample=False, reduction="none").double()
    assert (prof.psnr(sr, hr, scale=4) - ref_p).abs().max() < 1e-4
    # piq runs SSIM in float32 (its own error vs float64 is ~1e-5).
    assert (prof.ssim(sr, hr, scale=4) - ref_s).abs().max() < 1e-4


def test_piq_default_downsample_is_a_different_number():
    """Documents the trap: piq.ssim's default downsample=True is not the ECDP profile."""
    piq = pytest.importorskip("piq")
    sr, hr = make_pair(seed=5, h=600, w=520, noise=0.05)
    x, y = _as_png_float32(sr), _as_png_float32(hr)
    ours = get_profile("piq-rgb").ssim(sr, hr)
    assert abs(ours.item() - piq.ssim(x, y, data_range=1.0).item()) > 1e-3


def test_every_profile_has_an_oracle_test():
    assert set(PROFILES) == {"standard", "matlab", "pyiqa-ycbcr", "piq-rgb", "basicsr-rgb"}


# ----------------------------------------------------------------------------- filtering paths


def test_cpu_and_conv_filter_paths_agree():
    x = torch.rand(2, 5, 40, 31, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 255
    g = gaussian_window_1d()
    assert (_filter_valid_scipy(x, g) - _filter_valid_conv(x, g)).abs().max() < 1e-9
    # window = cv2's Gaussian
    np.testing.assert_allclose(g.numpy(), cv2.getGaussianKernel(11, 1.5).ravel(), rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- edge cases (§7.4)


@pytest.mark.parametrize("profile", [name for name, p in PROFILES.items() if p.crop == "scale"])
def test_border_only_difference_gives_inf_and_one_with_crop(profile):
    prof = get_profile(profile)
    _, hr = make_pair(seed=6)
    sr = hr.clone()
    sr[..., :4, :] = 1 - sr[..., :4, :]
    sr[..., :, -4:] = 0.0
    assert math.isinf(prof.psnr(sr, hr, scale=4).item())
    assert prof.ssim(sr, hr, scale=4).item() == pytest.approx(1.0, abs=1e-12)
    assert math.isfinite(prof.psnr(sr, hr, scale=3).item())


def test_non_integer_scale_crops_ceil():
    _, hr = make_pair(seed=7)
    sr = hr.clone()
    sr[..., :3, :] = 1 - sr[..., :3, :]
    prof = get_profile("standard")
    assert math.isinf(prof.psnr(sr, hr, scale=2.5).item())  # crop 3
    assert math.isfinite(prof.psnr(sr, hr, scale=2).item())


def test_identical_images_inf_psnr_and_paper_profiles_80db():
    _, hr = make_pair(seed=8)
    assert math.isinf(psnr(hr, hr.clone(), crop=0).item())
    assert ssim(hr, hr.clone(), crop=0).item() == pytest.approx(1.0, abs=1e-12)
    # pyiqa/piq add 1e-8 to the MSE on [0,1]: identical images score 10·log10(1e8) = 80 dB.
    assert get_profile("piq-rgb").psnr(hr, hr.clone()).item() == pytest.approx(80.0, abs=1e-6)


def test_shape_mismatch_names_both_shapes():
    sr, hr = make_pair(seed=9, h=32, w=32)
    with pytest.raises(ShapeMismatchError, match=r"\(1, 3, 30, 32\).*\(1, 3, 32, 32\)"):
        psnr(sr[..., :30, :], hr, crop=0)
    with pytest.raises(ShapeMismatchError):
        ssim(sr[:, :1], hr, crop=0)  # grey vs RGB


def test_ssim_too_small_after_crop_raises_psnr_does_not():
    sr, hr = make_pair(seed=10, h=18, w=40)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(sr, hr, crop=4)  # 10 rows left
    assert math.isfinite(psnr(sr, hr, crop=4).item())


def test_nan_in_sr_gives_nan_for_that_image_only():
    sr, hr = make_pair(seed=11, batch=3)
    clean_p, clean_s = psnr(sr, hr, crop=4), ssim(sr, hr, crop=4)
    sr = sr.clone()
    sr[1, :, 10, 10] = float("nan")
    p, s = psnr(sr, hr, crop=4), ssim(sr, hr, crop=4)
    assert torch.isnan(p[1]) and torch.isnan(s[1])
    assert torch.equal(p[[0, 2]], clean_p[[0, 2]]) and torch.equal(s[[0, 2]], clean_s[[0, 2]])


def test_single_channel_scored_as_is():
    sr, hr = make_pair(seed=12, c=1)
    a, b = to_uint8_hwc(sr)[0, ..., 0], to_uint8_hwc(hr)[0, ..., 0]
    assert abs(psnr(sr, hr, crop=4).item() - sk_psnr(crop(b, 4), crop(a, 4), data_range=255)) < 1e-10
    ya, yb = crop(a, 4).astype(np.float64), crop(b, 4).astype(np.float64)
    assert abs(ssim(sr, hr, crop=4).item() - sk_ssim_wang(ya, yb)) < 1e-10


def test_gray_mask_scores_replicated_gray_on_its_channel():
    sr1, hr1 = make_pair(seed=13, c=1, batch=2)
    sr, hr = sr1.expand(-1, 3, -1, -1), hr1.expand(-1, 3, -1, -1)
    gray = torch.tensor([True, False])
    p, s = psnr(sr, hr, crop=4, gray=gray), ssim(sr, hr, crop=4, gray=gray)
    single_p, single_s = psnr(sr1, hr1, crop=4), ssim(sr1, hr1, crop=4)
    assert p[0].item() == pytest.approx(single_p[0].item(), abs=1e-10)
    assert s[0].item() == pytest.approx(single_s[0].item(), abs=1e-10)
    # Unflagged: Y = 16 + 219/255·v shrinks every error by 219/255 → +20·log10(255/219) dB.
    assert p[1].item() - single_p[1].item() == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)


def test_float_inputs_are_quantized_to_8bit_first():
    _, hr = make_pair(seed=14)
    jitter = (torch.rand(hr.shape, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.9 / 255
    sr_q = torch.round(hr * 255) / 255
    # Sub-half-level jitter rounds back to the same 8-bit image.
    assert math.isinf(psnr(sr_q + jitter, hr, crop=0).item())
    # Out-of-range values are clamped like a PNG writer does.
    over = hr.clone()
    over[..., 0, 0] = 1.7
    clamped = over.clamp(0, 1)
    assert psnr(over, hr, crop=0).item() == psnr(clamped, hr, crop=0).item()


@pytest.mark.parametrize("profile", list(PROFILES))
def test_shared_planes_path_equals_separate_calls(profile):
    """The suite computes both scores from one set of planes where the profile allows it."""
    sr, hr = make_pair(seed=15, batch=2)
    gray = torch.tensor([False, True])
    prof = get_profile(profile)
    p, s = prof.psnr_ssim(sr, hr, scale=4, gray=gray)
    assert torch.equal(p, prof.psnr(sr, hr, scale=4, gray=gray))
    assert torch.equal(s, prof.ssim(sr, hr, scale=4, gray=gray))
