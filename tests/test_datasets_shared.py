"""Datasets on the real images in ../shared/data (skipped when absent).

* Set5/Set14: the official LR files and srbench's MATLAB LR are the same bytes (57 pairs).
* RealSR/DRealSR subsets as ``pairs`` (real camera degradations, LR given).
* Bicubic baselines through the datasets and the metrics harness, against the published table
  (protocols.md §7.3: ±0.02 dB PSNR, ±0.001 SSIM) and against scikit-image for RGB / no crop.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio
from test_datasets_oracles import matlab_imresize_uint8

from srbench.data.benchmarks import Div2K, Pairs, Set5, Set14
from srbench.data.protocols import EcdpImageNetHR, ecdp_center_square
from srbench.data.resize import imresize
from srbench.metrics import build_metrics, get_profile

#: bicubic ×s of the official LR, Y channel, crop = scale (protocols.md §7.3; ESRGAN supp. Table 2, EDSR tables)
PUBLISHED = {
    ("set5", 2): (33.66, 0.9299), ("set5", 3): (30.39, 0.8682), ("set5", 4): (28.42, 0.8104),
    ("set14", 2): (30.24, 0.8688), ("set14", 3): (27.55, 0.7742), ("set14", 4): (26.00, 0.7027),
}
SETS = {"set5": (Set5, "Set5"), "set14": (Set14, "Set14")}


def u8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["set5", "set14"])
def test_official_lr_equals_srbench_matlab_lr(shared_data, tmp_path, name, scale):
    cls, folder = SETS[name]
    official = cls(shared_data / folder, scale=scale, lr_source="official", cache_dir=None)
    ours = cls(shared_data / folder, scale=scale, lr_source="matlab", cache_dir=None)  # cache: test_cache.py
    assert official.names == ours.names and len(official) == {"set5": 5, "set14": 14}[name]
    for a, b in zip(official, ours):
        assert torch.equal(a.hr, b.hr), a.name  # both mod-cropped the same way
        assert torch.equal(a.lr, b.lr), f"{a.name} x{scale}"
        assert a.meta["was_gray"] == (a.name == "bridge")  # Set14's bridge is a grey PNG
    assert torch.equal(official.degrade(a.hr[None])[0], a.lr)  # the LR-PSNR operator reproduces the file


@pytest.mark.parametrize("folder, names", [
    ("RealSR_subset", ["Canon_001_LR4", "Nikon_005_LR4"]),
    ("DRealSR_subset", ["Canon_10_x1", "sony_129_x1"]),
])
def test_real_pairs_subsets_as_pairs(shared_data, folder, names):
    ds = Pairs(shared_data / folder / "HR", shared_data / folder / "LR", scale=4, name="pairs")
    assert len(ds) == 10 and names[0] == ds.names[0] and names[1] in ds.names
    for s in ds:
        assert s.lr.shape == (3, 128, 128) and s.hr.shape == (3, 512, 512) and not s.meta["hr_modcropped"]
    assert ds.degrade(ds[0].hr[None]) is None  # real degradation: no LR-PSNR operator
    info = ds.describe()
    assert info["protocol"] == "pairs-x4-given-lr" and info["lr_generation"] == "given"


def _bicubic_scores(ds, profile: str) -> tuple[float, float]:
    suite = build_metrics(profile, lpips_nets=())
    psnrs, ssims = [], []
    for s in ds:
        sr = imresize(s.lr[None], ds.scale, quantize=True)  # MATLAB bicubic on uint8, as the tables
        out = suite(sr, s.hr[None], scale=ds.scale, gray=[s.meta["was_gray"]])
        psnrs.append(float(out["psnr"][0]))
        ssims.append(float(out["ssim"][0]))
    return float(np.mean(psnrs)), float(np.mean(ssims))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_bicubic_matches_published_table(shared_data, scale):
    psnr, ssim = _bicubic_scores(Set5(shared_data / "Set5", scale=scale, cache_dir=None), "standard")
    want_psnr, want_ssim = PUBLISHED[("set5", scale)]
    assert abs(psnr - want_psnr) <= 0.02 and abs(ssim - want_ssim) <= 0.001, (psnr, ssim)


# Set14 against the published x4 row (matlab convention, grey 'bridge' on its one channel) and
# against the BasicSR-pipeline reference (standard): tests/test_metrics_set5_set14.py.


def test_rgb_no_crop_convention_matches_skimage(shared_data):
    """The 'RGB, no crop' convention (basicsr-rgb: IDM/SR3) on dataset samples vs scikit-image."""
    profile = get_profile("basicsr-rgb")
    for s in Set5(shared_data / "Set5", scale=4, cache_dir=None):
        sr = imresize(s.lr[None], 4, quantize=True)
        ours = float(profile.psnr(sr, s.hr[None], scale=4)[0])
        assert abs(ours - peak_signal_noise_ratio(u8(s.hr), u8(sr[0]), data_range=255)) < 1e-6, s.name


def test_imagenet_jpegs_decode_identically_with_pil_and_opencv(shared_data):
    """ECDP decodes with PIL, InvSR with OpenCV; the HR rules assume the same pixels."""
    for p in sorted((shared_data / "ImageNet_samples").glob("*.JPEG")):
        pil = np.asarray(Image.open(p).convert("RGB"))
        ocv = cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1]
        np.testing.assert_array_equal(pil, ocv, err_msg=p.name)


def test_ecdp_imagenet_hr_on_real_jpegs(shared_data):
    for p in sorted((shared_data / "ImageNet_samples").glob("*.JPEG"))[:3]:
        src = np.asarray(Image.open(p).convert("RGB"))
        top, left, side = ecdp_center_square(*src.shape[:2])
        hr = EcdpImageNetHR()(torch.from_numpy(src.astype(np.float32) / 255).permute(2, 0, 1))
        np.testing.assert_array_equal(u8(hr), matlab_imresize_uint8(src[top:top + side, left:left + side], (256, 256)))


def test_real_div2k_official_vs_matlab_lr_when_prepared(tmp_path):
    """With a real ``srbench data prepare div2k`` layout ($SRBENCH_DATA/div2k): NTIRE ×4 LR vs ours ≥ 50 dB."""
    root = Path(os.environ.get("SRBENCH_DATA", "data")) / "div2k"
    if not (root / "DIV2K_valid_LR_bicubic" / "X4").is_dir():
        pytest.skip(f"no prepared DIV2K with official ×4 LR at {root}")
    official = Div2K(root, scale=4, lr_source="official", max_images=5, cache_dir=None)
    ours = Div2K(root, scale=4, lr_source="matlab", max_images=5, cache_dir=tmp_path)
    for a, b in zip(official, ours):
        mse = float(((u8(a.lr).astype(np.float64) - u8(b.lr)) ** 2).mean())
        assert mse == 0 or 10 * math.log10(255**2 / mse) >= 50, a.name
