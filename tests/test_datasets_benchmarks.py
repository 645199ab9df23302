"""Benchmark datasets on synthetic files laid out like the real releases (names, counts, odd sizes).

DIV2K/ImageNet/CelebA ground truth is not in shared data, so each protocol's HR preparation and
LR generation is checked on generated files against the independent oracles of
``test_datasets_oracles``; the counts are reduced with ``max_images`` / ``expected_files``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_datasets_oracles import (
    make_div2k_layout,
    matlab_downscale_uint8,
    matlab_imresize_uint8,
    save_png,
    synthetic_image,
)

from srbench.data.base import DatasetError
from srbench.data.benchmarks import (
    CelebAECDP,
    CelebAHQIDM,
    Div2K,
    Div2KRealESRGAN,
    ImageNetECDP,
    ImageNetInvSR,
    Pairs,
    Set14,
)
from srbench.data.io import ImageReadError


def u8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


# ------------------------------------------------------------------------------------ DIV2K
@pytest.fixture
def div2k(tmp_path) -> Path:
    return make_div2k_layout(tmp_path / "div2k", scales=(4, 8))


def test_div2k_official_and_matlab_lr_agree(div2k, tmp_path):
    """Official-style LR files vs srbench's own MATLAB LR: ≥ 50 dB required (bit-exact expected)."""
    official = Div2K(div2k, scale=4, lr_source="official", max_images=3, cache_dir=None)
    matlab = Div2K(div2k, scale=4, lr_source="matlab", max_images=3, cache_dir=tmp_path / "cache")
    assert official.names == matlab.names == ["0801", "0802", "0803"]
    for a, b in zip(official, matlab):
        assert a.lr.shape == b.lr.shape and torch.equal(a.hr, b.hr)
        assert psnr_u8(u8(a.lr), u8(b.lr)) >= 50
        assert torch.equal(a.lr, b.lr)
        assert a.meta["hr_modcropped"] and a.meta["source_size"] != a.meta["hr_size"]  # 255 wide at ×4
    assert official.describe()["protocol"] == "div2k-x4-official-lr"
    assert matlab.describe()["protocol"] == "div2k-x4-matlab-lr"


def test_div2k_x8_reads_the_ntire2018_folder(div2k):
    ds = Div2K(div2k, scale=8, max_images=2, cache_dir=None)
    s = ds[1]
    assert s.hr.shape[-2:] == (8 * s.lr.shape[-2], 8 * s.lr.shape[-1])
    assert torch.equal(ds.degrade(s.hr[None])[0], s.lr)  # LR-PSNR operator = MATLAB bicubic


def test_div2k_missing_files_are_named(div2k):
    (div2k / "DIV2K_valid_LR_bicubic" / "X4" / "0802x4.png").unlink()
    with pytest.raises(DatasetError, match=r"1 of 3 ×4 LR files missing .*0802x4\.png"):
        Div2K(div2k, scale=4, max_images=3)
    with pytest.raises(DatasetError, match=r"97 of 100 HR files missing.*0804\.png"):
        Div2K(div2k, scale=4)  # the real protocol wants all 100


def test_div2k_missing_folders_say_what_to_do(tmp_path, div2k):
    with pytest.raises(DatasetError, match=r"srbench data prepare div2k --source PATH"):
        Div2K(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"X3 not found .*lr_source=matlab"):
        Div2K(div2k, scale=3, max_images=1)
    with pytest.raises(DatasetError, match="scale 5 is not offered"):
        Div2K(div2k, scale=5)


def test_hr_lr_size_mismatch_is_one_line_naming_both_files(div2k):
    lr = div2k / "DIV2K_valid_LR_bicubic" / "X4" / "0801x4.png"
    save_png(lr, synthetic_image(30, 30, 0))
    with pytest.raises(DatasetError) as err:
        Div2K(div2k, scale=4, max_images=1, cache_dir=None)[0]
    msg = str(err.value)
    assert "\n" not in msg and "0801.png is 255×170" in msg and "0801x4.png is 30×30" in msg


def test_corrupt_hr_raises_the_readers_error(div2k):
    (div2k / "DIV2K_valid_HR" / "0802.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = Div2K(div2k, scale=4, max_images=3, cache_dir=None)
    with pytest.raises(ImageReadError, match="0802.png"):
        ds[1]


# ------------------------------------------------------------------------ div2k_realesrgan
def realesrgan_set(root, cache, seed=0, **kw):
    return Div2KRealESRGAN(root, crop_size=64, crops_per_image=kw.pop("crops_per_image", 1), seed=seed,
                           degradation="stablesr", source_images=2, cache_dir=cache, **kw)


def test_div2k_realesrgan_same_seed_same_lr_bytes(div2k, tmp_path):
    a = realesrgan_set(div2k, tmp_path / "c1")
    b = realesrgan_set(div2k, tmp_path / "c2")
    assert a.names == ["0801_pch_00001", "0802_pch_00001"]
    for i in range(len(a)):
        sa, sb = a[i], b[i]
        assert sa.lr.shape == (3, 16, 16) and sa.hr.shape == (3, 64, 64)
        assert a.cache.png_path(sa.name).read_bytes() == b.cache.png_path(sb.name).read_bytes()
        assert sa.meta["lr_params"] == sb.meta["lr_params"]
        # The HR is the recorded crop of the source.
        src = np.asarray(Image.open(div2k / "DIV2K_valid_HR" / f"{sa.meta['source']}.png"))
        t, l = sa.meta["crop_top"], sa.meta["crop_left"]
        np.testing.assert_array_equal(u8(sa.hr), src[t:t + 64, l:l + 64])
    assert a.describe()["lr_cache"]["manifest_sha256"] == b.describe()["lr_cache"]["manifest_sha256"]
    assert a.degrade(a[0].hr[None]) is None  # stochastic: no LR-PSNR operator
    c = realesrgan_set(div2k, tmp_path / "c3", seed=1)
    assert [it.extra["crop_top"] for it in c.items] != [it.extra["crop_top"] for it in a.items]
    assert not torch.equal(c[0].lr, a[0].lr)


def test_div2k_realesrgan_positions_file_pins_the_crops(div2k, tmp_path):
    a = realesrgan_set(div2k, tmp_path / "c1", crops_per_image=3)
    assert a.names[:4] == ["0801_pch_00001", "0801_pch_00002", "0801_pch_00003", "0802_pch_00001"]
    csv = tmp_path / "pos.csv"
    csv.write_text(a.positions_csv(a.items))
    b = realesrgan_set(div2k, tmp_path / "c2", positions=csv, crops_per_image=3)
    assert [(it.name, it.extra) for it in a.items] == [(it.name, it.extra) for it in b.items]


def test_div2k_realesrgan_hr_smaller_than_crop_is_an_error(div2k, tmp_path):
    save_png(div2k / "DIV2K_valid_HR" / "0802.png", synthetic_image(40, 300, 2))
    with pytest.raises(DatasetError, match=r"0802\.png is 300×40, smaller than the 64×64 crop"):
        realesrgan_set(div2k, tmp_path / "c")


@pytest.mark.gpu
def test_div2k_realesrgan_cuda_lr_close_to_cpu(div2k, tmp_path):
    """CUDA generation (own cache key) vs the reproducible CPU bytes: mean |Δ| ≤ 0.5 grey levels,
    ≥ 90 % of pixels identical (convolution/interpolation rounding and nvJPEG differ from CPU)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = realesrgan_set(div2k, tmp_path / "c1")
    gpu = realesrgan_set(div2k, tmp_path / "c2", lr_device="cuda")
    assert cpu.cache.dir != gpu.cache.dir
    for i in range(len(cpu)):
        a, b = u8(cpu[i].lr).astype(int), u8(gpu[i].lr).astype(int)
        assert np.abs(a - b).mean() <= 0.5 and (a == b).mean() >= 0.9, (np.abs(a - b).mean(), (a == b).mean())


# --------------------------------------------------------------------------------- ImageNet
IMAGENET_SIZES = [(375, 500), (500, 333), (381, 256), (256, 256)]


@pytest.fixture
def imagenet(tmp_path) -> tuple[Path, list[str], dict[str, np.ndarray]]:
    val = tmp_path / "imagenet" / "val"
    val.mkdir(parents=True)
    names, imgs = [], {}
    for k, hw in enumerate(IMAGENET_SIZES, start=1):
        name = f"ILSVRC2012_val_{k:08d}.JPEG"
        Image.fromarray(synthetic_image(*hw, seed=k)).save(val / name, format="JPEG", quality=95)
        names.append(name)
        imgs[name] = np.asarray(Image.open(val / name).convert("RGB"))  # the decoded JPEG is the source
    return tmp_path / "imagenet", names, imgs


def test_imagenet_ecdp_hr_and_lr(imagenet, tmp_path):
    root, names, imgs = imagenet
    ds = ImageNetECDP(root, expected_files=names, cache_dir=tmp_path / "cache")
    assert ds.names == [Path(n).stem for n in sorted(names)]
    for s in ds:
        src = imgs[s.name + ".JPEG"]
        h, w = src.shape[:2]
        side = min(h, w)
        top, left = round((h - side) / 2.0), round((w - side) / 2.0)
        hr = matlab_imresize_uint8(src[top:top + side, left:left + side], (256, 256))
        np.testing.assert_array_equal(u8(s.hr), hr)
        np.testing.assert_array_equal(u8(s.lr), matlab_imresize_uint8(hr, (64, 64)))
    assert ds.describe()["protocol"] == "imagenet-ecdp-64to256"
    with pytest.raises(DatasetError, match=r"1 of 5 validation files missing.*ILSVRC2012_val_00000005\.JPEG"):
        ImageNetECDP(root, expected_files=names + ["ILSVRC2012_val_00000005.JPEG"])


def test_imagenet_invsr_list_hr_and_seeded_lr(imagenet, tmp_path):
    root, names, _ = imagenet
    # hr_size 128 keeps the test fast; the 512 rule itself is checked in test_datasets_protocols.
    a = ImageNetInvSR(root, num_images=2, hr_size=128, expected_files=names, cache_dir=tmp_path / "c1")
    b = ImageNetInvSR(root, num_images=2, hr_size=128, expected_files=names, cache_dir=tmp_path / "c2")
    assert len(a) == 2 and a.names == b.names
    for sa, sb in zip(a, b):
        assert sa.hr.shape == (3, 128, 128) and sa.lr.shape == (3, 32, 32)
        assert torch.equal(sa.lr, sb.lr) and torch.equal(sa.hr, sb.hr)
        assert sa.meta["lr_params"]["second_order"] is False  # first-order only (second_order_prob 0)


# ------------------------------------------------------------------------------------ faces
def test_celeba_ecdp_squeeze_and_lr(tmp_path):
    names = ["182638.jpg", "182639.jpg"]
    test = tmp_path / "celeba" / "test"
    test.mkdir(parents=True)
    for k, n in enumerate(names):
        Image.fromarray(synthetic_image(218, 178, k)).save(test / n, quality=95)  # aligned CelebA is 178×218
    ds = CelebAECDP(tmp_path / "celeba", expected_files=names, cache_dir=tmp_path / "cache")
    for n, s in zip(names, ds):
        src = np.asarray(Image.open(tmp_path / "celeba" / "test" / n).convert("RGB"))
        hr = matlab_imresize_uint8(src, (160, 160))
        np.testing.assert_array_equal(u8(s.hr), hr)
        np.testing.assert_array_equal(u8(s.lr), matlab_imresize_uint8(hr, (20, 20)))
        assert s.scale == 8
    with pytest.raises(DatasetError, match=r"19960 of 19962 test files missing.*182640\.jpg"):
        CelebAECDP(tmp_path / "celeba")  # the official test split has 19,962 files


def test_celebahq_idm_order_count_and_independent_lr(tmp_path):
    folder = tmp_path / "celebahq" / "images"
    stems = ["0", "1", "10", "2", "100"]  # sorted as IDM's zero-padded names: 0, 1, 2, 10, 100
    for k, s in enumerate(stems):
        save_png(folder / f"{s}.png", synthetic_image(64, 64, k))
    ds = CelebAHQIDM(tmp_path / "celebahq", expected_count=5, num_images=4)
    assert ds.names == ["00000", "00001", "00002", "00010"]
    s = ds[2]
    src = Image.open(folder / "2.png")
    expected_lr = np.asarray(src.resize((16, 16), Image.BICUBIC))
    expected_hr = np.asarray(src.resize((128, 128), Image.BICUBIC))
    np.testing.assert_array_equal(u8(s.lr), expected_lr)
    np.testing.assert_array_equal(u8(s.hr), expected_hr)
    assert ds.degrade(s.hr[None]) is None
    with pytest.raises(DatasetError, match="holds 5 images, expected 30000"):
        CelebAHQIDM(tmp_path / "celebahq")


# ------------------------------------------------------------------------------- bad input
def test_sixteen_bit_hr_is_quantized_and_flagged(tmp_path):
    hr16 = (synthetic_image(20, 24, 0).astype(np.uint16) * 257 + 100).astype(np.uint16)
    import cv2

    (tmp_path / "hr").mkdir()
    cv2.imwrite(str(tmp_path / "hr" / "a.png"), hr16[:, :, ::-1])
    save_png(tmp_path / "lr" / "a.png", matlab_downscale_uint8((hr16 / 257).round().astype(np.uint8), 4))
    ds = Pairs(tmp_path / "hr", tmp_path / "lr", scale=4)
    with pytest.warns(UserWarning, match="16-bit; quantized to 8 bits"):
        s = ds[0]
    assert s.meta["bit_depth"] == 16 and s.meta["quantized_to_8bit"]
    np.testing.assert_array_equal(u8(s.hr), np.round(hr16 / 257).astype(np.uint8))


def test_cmyk_jpeg_is_read_as_rgb(tmp_path):
    rgb = Image.fromarray(synthetic_image(32, 32, 3))
    (tmp_path / "hr").mkdir()
    rgb.convert("CMYK").save(tmp_path / "hr" / "c.jpg", quality=95)
    save_png(tmp_path / "lr" / "c.png", np.zeros((8, 8, 3), np.uint8))
    s = Pairs(tmp_path / "hr", tmp_path / "lr", scale=4, lr_pattern="{stem}.png")[0]
    expected = np.asarray(Image.open(tmp_path / "hr" / "c.jpg").convert("RGB"))
    np.testing.assert_array_equal(u8(s.hr), expected)


def test_grey_hr_with_colour_lr_is_an_error_but_grey_pairs_are_fine(tmp_path):
    grey = synthetic_image(16, 16, 0)[:, :, 0]
    save_png(tmp_path / "hr" / "g.png", grey)
    save_png(tmp_path / "lr" / "g.png", synthetic_image(4, 4, 1))
    with pytest.raises(DatasetError, match="channel mismatch"):
        Pairs(tmp_path / "hr", tmp_path / "lr", scale=4)[0]
    save_png(tmp_path / "lr" / "g.png", matlab_downscale_uint8(np.repeat(grey[:, :, None], 3, 2), 4)[:, :, 0])
    s = Pairs(tmp_path / "hr", tmp_path / "lr", scale=4)[0]
    assert s.meta["was_gray"]


def test_pairs_that_do_not_match_are_named(tmp_path):
    save_png(tmp_path / "hr" / "a.png", synthetic_image(8, 8, 0))
    save_png(tmp_path / "hr" / "b.png", synthetic_image(8, 8, 1))
    save_png(tmp_path / "lr" / "a.png", synthetic_image(2, 2, 0))
    save_png(tmp_path / "lr" / "z.png", synthetic_image(2, 2, 0))
    with pytest.raises(DatasetError, match=r"LR missing for 1: \['b.png'\]; LR without HR: 1: \['z.png'\]"):
        Pairs(tmp_path / "hr", tmp_path / "lr")


def test_benchmark_set_wrong_count(tmp_path):
    for n in ("baboon", "barbara"):
        save_png(tmp_path / "set14" / "HR" / f"{n}.png", synthetic_image(12, 12, 0))
    with pytest.raises(DatasetError, match=r"12 of 14 HR files missing.*bridge\.png"):
        Set14(tmp_path / "set14")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(Set14(tmp_path / "set14", max_images=2, lr_source="matlab", cache_dir=None)) == 2
