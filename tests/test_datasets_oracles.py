"""Independent oracles and synthetic dataset layouts shared by the dataset tests.

The MATLAB-bicubic oracle below is written from MATLAB's ``imresize`` definition (protocols.md
§4.1) as a plain numpy loop over taps — it shares no code with ``srbench.data.resize`` — and is
itself validated here against the authors' official Set5/Set14 LR files (bit-exact), so the
synthetic "official" DIV2K LR it writes elsewhere stands in for the real NTIRE files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


# ------------------------------------------------------------------------- MATLAB oracle
def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return np.where(a <= 1, 1.5 * a**3 - 2.5 * a**2 + 1, np.where(a <= 2, -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2, 0.0))


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    s = n_out / n_in
    width = 4.0 / s if s < 1 else 4.0
    u = np.arange(1, n_out + 1) / s + 0.5 * (1 - 1 / s)
    left = np.floor(u - width / 2)
    j = left[:, None] + np.arange(math.ceil(width) + 2)  # 1-based input positions
    w = s * _cubic(s * (u[:, None] - j)) if s < 1 else _cubic(u[:, None] - j)
    w = w / w.sum(1, keepdims=True)
    j0 = j.astype(int) - 1
    mirrored = np.where(j0 < 0, -j0 - 1, np.where(j0 >= n_in, 2 * n_in - 1 - j0, j0))  # symmetric incl. edge
    return mirrored, w


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def matlab_imresize_uint8(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """MATLAB ``imresize(uint8 img, [H W], 'bicubic')``: per-dimension pass (smaller scale first,
    rows first on ties), rounded half away from zero and clipped to uint8 after each pass."""
    x = img.astype(np.float64)
    scales = [out_hw[0] / img.shape[0], out_hw[1] / img.shape[1]]
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        idx, w = _taps(x.shape[axis], out_hw[axis])
        moved = np.moveaxis(x, axis, 0)
        out = np.zeros((out_hw[axis],) + moved.shape[1:])
        for t in range(idx.shape[1]):
            out += w[:, t].reshape(-1, *([1] * (moved.ndim - 1))) * moved[idx[:, t]]
        x = np.moveaxis(np.clip(_round_half_away(out), 0, 255), 0, axis)
    return x.astype(np.uint8)


def matlab_downscale_uint8(img: np.ndarray, scale: int) -> np.ndarray:
    """Official-LR recipe: modcrop (top-left) then MATLAB bicubic by 1/scale."""
    h, w = img.shape[:2]
    hr = img[: h - h % scale, : w - w % scale]
    return matlab_imresize_uint8(hr, (hr.shape[0] // scale, hr.shape[1] // scale))


# ------------------------------------------------------------------------ synthetic images
def synthetic_image(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like uint8 RGB image: smooth colour gradients, edges and noise (not flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(5 * yy - c) for c in (0.0, 1.0, 2.0)], -1) * 80 + 128
    base[(xx * 7).astype(int) % 2 == 0] += 40  # vertical stripes: strong edges
    base += rng.normal(0, 12, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def save_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_div2k_layout(root: Path, ids=(801, 802, 803), size=(170, 255), scales=(4,)) -> Path:
    """``DIV2K_valid_HR/08xx.png`` (odd sizes, like 2040×1356 / 8) + official-style LR by the oracle."""
    for k, i in enumerate(ids):
        h, w = size[0] + 3 * k, size[1] + 5 * k
        img = synthetic_image(h, w, seed=i)
        save_png(root / "DIV2K_valid_HR" / f"{i:04d}.png", img)
        for s in scales:
            sub = "DIV2K_valid_LR_x8" if s == 8 else f"DIV2K_valid_LR_bicubic/X{s}"
            save_png(root / sub / f"{i:04d}x{s}.png", matlab_downscale_uint8(img, s))
    return root


# ---------------------------------------------------------------- the oracle's own checks
def test_oracle_reproduces_official_set5_set14_lr(shared_data):
    """The oracle makes the authors' Set5/Set14 LR files bit for bit (so it may stand in for them)."""
    checked = 0
    for dataset in ("Set5", "Set14"):
        for hr_path in sorted((shared_data / dataset / "HR").glob("*.png")):
            hr = np.asarray(Image.open(hr_path).convert("RGB"))
            for s in (2, 3, 4):
                official = np.asarray(Image.open(shared_data / dataset / f"LRbicx{s}" / f"{hr_path.stem}x{s}.png").convert("RGB"))
                np.testing.assert_array_equal(matlab_downscale_uint8(hr, s), official, err_msg=f"{hr_path.stem} x{s}")
                checked += 1
    assert checked == 57


def test_oracle_identity_at_scale_one():
    img = synthetic_image(17, 23, 0)
    np.testing.assert_array_equal(matlab_imresize_uint8(img, (17, 23)), img)


@pytest.mark.parametrize("hw", [(218, 178), (178, 218)])
def test_oracle_output_size(hw):
    assert matlab_imresize_uint8(synthetic_image(*hw, 1), (160, 160)).shape == (160, 160, 3)
