"""Colour correction of a super-resolved image towards a reference (usually the upsampled LR).

SD-based SR drifts in colour; the methods' authors correct it after decoding. Four modes,
as plain functions on ``B×C×H×W`` tensors (``sr`` and ``ref`` of the same shape):

* ``none``    — ``sr`` unchanged.
* ``adain``   — per-image, per-channel mean/std of ``sr`` replaced by those of ``ref``
  (StableSR/OSEDiff ``adaptive_instance_normalization``: unbiased variance + 1e-5).
* ``wavelet`` — 5-level à-trous decomposition (3×3 binomial kernel /16, dilation 2^i,
  replicate padding); output = high frequencies of ``sr`` + lowest band of ``ref``
  (StableSR's ``wavelet_reconstruction``, used by InvSR ``utils/util_color_fix.py`` and
  OSEDiff ``my_utils/wavelet_color_fix.py`` — the two files are identical there).
* ``ycbcr``   — Y of ``sr`` with Cb, Cr of ``ref`` (InvSR ``ycbcr_color_replace``), BT.601
  "MATLAB" ``rgb2ycbcr``/``ycbcr2rgb`` constants, each conversion clamped to [0, 1].

Value range: ``adain`` and ``wavelet`` are affine-equivariant, so they work the same on [0, 1]
and [-1, 1] inputs. ``ycbcr`` is defined on [0, 1] (it clamps); pass ``value_range=(-1, 1)``
to :func:`color_fix` and it maps in and out. No final clamp here except inside ``ycbcr``
(the authors clamp later, when saving); callers clamp.

The authors' PIL wrappers (``wavelet_color_fix(target, source)``) also quantise to 8 bit; that
belongs to image writing, not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["COLOR_FIX_MODES", "adain", "color_fix", "rgb_to_ycbcr", "wavelet", "wavelet_decompose", "ycbcr", "ycbcr_to_rgb"]

COLOR_FIX_MODES = ("none", "adain", "wavelet", "ycbcr")

# BT.601 studio swing, MATLAB rgb2ycbcr: [Y, Cb, Cr]·255 = M·[R, G, B]·255/255 + offset (rows = output).
_RGB2YCC = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)
_RGB2YCC_OFFSET = (16.0, 128.0, 128.0)
# MATLAB ycbcr2rgb (the rounded inverse MATLAB ships; InvSR uses the same numbers), per unit of 1/255.
_YCC2RGB = (
    (0.00456621, 0.0, 0.00625893),
    (0.00456621, -0.00153632, -0.00318811),
    (0.00456621, 0.00791071, 0.0),
)
_YCC2RGB_OFFSET = (-222.921, 135.576, -276.836)


def _check(sr: torch.Tensor, ref: torch.Tensor) -> None:
    if sr.dim() != 4 or sr.shape != ref.shape:
        raise ValueError(f"colour fix needs two B×C×H×W tensors of one shape, got {tuple(sr.shape)} and {tuple(ref.shape)}")


# --------------------------------------------------------------------------- adain
def _mean_std(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    # unbiased variance + eps, as StableSR's calc_mean_std
    return flat.mean(dim=2)[..., None, None], (flat.var(dim=2) + eps).sqrt()[..., None, None]


def adain(sr: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-channel mean and std of ``sr`` set to those of ``ref``."""
    _check(sr, ref)
    m_sr, s_sr = _mean_std(sr, eps)
    m_ref, s_ref = _mean_std(ref, eps)
    return (sr - m_sr) / s_sr * s_ref + m_ref


# --------------------------------------------------------------------------- wavelet
def _atrous_blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    c = x.shape[1]
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device) / 4
    kernel = (k[:, None] * k[None, :]).expand(c, 1, 3, 3)
    x = F.pad(x, (dilation,) * 4, mode="replicate")
    return F.conv2d(x, kernel, groups=c, dilation=dilation)


def wavelet_decompose(x: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low): the sum of the ``levels`` detail bands and the last low-pass band (x = high + low)."""
    high = torch.zeros_like(x)
    low = x
    for i in range(levels):
        blurred = _atrous_blur(low, 2**i)
        high += low - blurred  # accumulate band by band, as the reference does, for equal rounding
        low = blurred
    return high, low


def wavelet(sr: torch.Tensor, ref: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """High-frequency bands of ``sr`` on the low-frequency band of ``ref``."""
    _check(sr, ref)
    return wavelet_decompose(sr, levels)[0] + wavelet_decompose(ref, levels)[1]


# --------------------------------------------------------------------------- ycbcr
def _affine(x: torch.Tensor, matrix: tuple, offset: tuple, scale: float) -> torch.Tensor:
    m = torch.tensor(matrix, dtype=x.dtype, device=x.device) * scale
    b = torch.tensor(offset, dtype=x.dtype, device=x.device)
    out = torch.einsum("oc,bchw->bohw", m, x * 255.0) + b[:, None, None]
    return (out / 255.0).clamp(0.0, 1.0)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] → YCbCr in [0, 1] (MATLAB ``rgb2ycbcr`` / 255), clamped."""
    return _affine(rgb, _RGB2YCC, _RGB2YCC_OFFSET, 1 / 255.0)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """YCbCr in [0, 1] → RGB in [0, 1] (MATLAB ``ycbcr2rgb``), clamped."""
    return _affine(ycc, _YCC2RGB, _YCC2RGB_OFFSET, 255.0)


def ycbcr(sr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Luma of ``sr`` with the chroma of ``ref`` (both RGB in [0, 1])."""
    _check(sr, ref)
    if sr.shape[1] != 3:
        raise ValueError(f"ycbcr colour fix needs RGB (3 channels), got {sr.shape[1]}")
    y = rgb_to_ycbcr(sr)[:, :1]
    cbcr = rgb_to_ycbcr(ref)[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))


# --------------------------------------------------------------------------- dispatch
def color_fix(
    sr: torch.Tensor,
    ref: torch.Tensor,
    mode: str = "wavelet",
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Apply colour fix ``mode`` (one of :data:`COLOR_FIX_MODES`) to ``sr`` with reference ``ref``.

    ``value_range`` is the range of both tensors; it matters only for ``ycbcr`` (defined on [0, 1]).
    Computed in at least fp32 (the result is cast back to ``sr``'s dtype).
    """
    mode = (mode or "none").lower()
    if mode not in COLOR_FIX_MODES:
        raise ValueError(f"unknown colour fix {mode!r}; choose one of {', '.join(COLOR_FIX_MODES)}")
    if mode == "none":
        return sr
    dtype = sr.dtype
    work = torch.promote_types(dtype, torch.float32)
    a, b = sr.to(work), ref.to(work)
    if mode == "adain":
        out = adain(a, b)
    elif mode == "wavelet":
        out = wavelet(a, b)
    else:
        lo, hi = value_range
        to01 = (lambda t: (t - lo) / (hi - lo)) if (lo, hi) != (0.0, 1.0) else (lambda t: t)
        out = ycbcr(to01(a), to01(b))
        if (lo, hi) != (0.0, 1.0):
            out = out * (hi - lo) + lo
    return out.to(dtype)
