"""MATLAB-exact bicubic ``imresize`` for torch tensors (and uint8 numpy images).

Implements MATLAB's ``imresize(A, scale, 'bicubic')`` (Image Processing Toolbox; see
``protocols.md`` §4.1), the operator behind the official Set5/Set14/DIV2K bicubic LR:

* Keys cubic convolution kernel with a = −0.5 (Keys 1981, IEEE TASSP 29(6), p. 1155);
* antialiasing when shrinking: kernel stretched by 1/s, ``h(d) = s·k(s·d)``, width ``4/s``;
* output length ``ceil(n·s)``; 1-based sample centres ``u = x/s + 0.5·(1 − 1/s)``;
* ``P = ceil(width) + 2`` taps per output sample, each row of weights normalised to sum 1,
  all-zero tap columns dropped;
* symmetric borders that repeat the edge sample (numpy ``mode='symmetric'``) — what current
  releases do; the 2006-era ``imresize.m`` clamped indices instead, and the official LR files
  match only the mirrored version;
* one separable pass per dimension, the dimension with the smaller scale first (rows first
  when equal — MATLAB's stable ``sort(scale)``).

Two modes:

* float (default): unrounded, unclipped values, like BasicSR's port; callers quantize.
* ``quantize=True``: MATLAB on a uint8 image. Input snapped to the 8-bit grid, and after
  *each* 1-D pass the result is rounded half away from zero and clipped to [0, 255], because
  MATLAB keeps the intermediate image in uint8. With this the official Set5/Set14 ×2/×3/×4 LR
  are reproduced bit for bit; rounding only at the end gives ~56–58 dB instead.

Weights are computed once per (n_in, n_out, scale, antialias) in float64 and cached; a pass
is P gathers of whole rows/columns (a Python loop over taps, never over pixels), so a batch
of B images on any device is resized at once.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["imresize", "imresize_uint8", "output_size", "resize_weights"]


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = −0.5, term for term as MATLAB's ``cubic``.

    k(x) = 1.5|x|³ − 2.5|x|² + 1 for |x| ≤ 1;  −0.5|x|³ + 2.5|x|² − 4|x| + 2 for 1 < |x| ≤ 2;  0 beyond.
    """
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * (
        (1 < absx) & (absx <= 2)
    )


@functools.lru_cache(maxsize=256)
def resize_weights(
    n_in: int, n_out: int, scale: float, antialias: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB ``contributions``: taps and weights of one 1-D bicubic resize of length n_in → n_out.

    Returns ``(indices, weights)``, both ``(n_out, P')`` CPU tensors — 0-based int64 input
    indices, already mirrored into ``[0, n_in)``, and float64 weights whose rows sum to 1.
    The result is cached: treat it as read-only.
    """
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width /= scale
    x = np.arange(1, n_out + 1, dtype=np.float64)
    # Centre of output sample x in 1-based input coordinates: 0.5 maps to 0.5, 0.5 + s to 1.5.
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    num_taps = math.ceil(kernel_width) + 2
    taps = left[:, None] + np.arange(num_taps)  # 1-based, may fall outside [1, n_in]
    distance = u[:, None] - taps
    weights = scale * _cubic(scale * distance) if shrink else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric border incl. the edge sample: 0 -> 1, -1 -> 2, n+1 -> n (MATLAB's aux = [1:n, n:-1:1]).
    period = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    indices = period[np.mod(taps.astype(np.int64) - 1, 2 * n_in)]
    keep = np.any(weights != 0, axis=0)
    return torch.from_numpy(indices[:, keep].copy()), torch.from_numpy(weights[:, keep].copy())


@functools.lru_cache(maxsize=256)
def _is_identity(n_in: int, n_out: int, scale: float, antialias: bool) -> bool:
    """MATLAB's ``isPureNearestNeighborComputation`` on the identity map (scale 1): skip the pass."""
    indices, weights = resize_weights(n_in, n_out, scale, antialias)
    return (
        weights.shape == (n_in, 1)
        and bool(torch.all(weights == 1))
        and bool(torch.equal(indices[:, 0], torch.arange(n_in)))
    )


def output_size(in_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ``ceil(n·s)`` per axis."""
    return math.ceil(in_size[0] * scale), math.ceil(in_size[1] * scale)


def _plan(
    in_size: tuple[int, int], scale: float | None, size: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output size and per-axis scale, as MATLAB's ``fixupSizeAndScale`` derives them."""
    if min(in_size) <= 0:
        raise ValueError(f"imresize: cannot resize an empty image of size {tuple(in_size)}")
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale= (output/input) or size=(H_out, W_out)")
    if scale is not None:
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"imresize: scale must be a positive finite number, got {scale}")
        return output_size(in_size, scale), (scale, scale)
    h_out, w_out = (int(s) for s in size)  # type: ignore[union-attr]
    if h_out <= 0 or w_out <= 0:
        raise ValueError(f"imresize: size must be two positive integers, got {tuple(size)}")  # type: ignore[arg-type]
    return (h_out, w_out), (h_out / in_size[0], w_out / in_size[1])


def _saturate_uint8_(v: torch.Tensor) -> torch.Tensor:
    """MATLAB's cast of a double to uint8: clip to [0, 255], round half away from zero.

    Consumes ``v`` (overwritten as scratch space). ``torch.round`` rounds half to even, so an
    exact tie it sent down (v − r = 0.5) goes up instead; v − r is exact in floating point, so
    this is exact for every finite v. Ties are real here: for scale 1/2 the weights are dyadic
    and an 8-bit pass can land on k + 0.5. Clipping first equals clipping last (integer bounds).
    """
    v.clamp_(0, 255)
    r = torch.round(v)
    return r.add_(v.sub_(r).eq_(0.5))  # in-place ops: this runs on full-resolution float64 images


def _resize_rows(v: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One 1-D pass along axis −2: ``out[..., i, :] = Σ_p w[i, p] · v[..., idx[i, p], :]``.

    P whole-row gathers (P ≤ ceil(4/s) + 2 taps), accumulated tap by tap with in-place
    multiply-adds, so memory stays at about two output-sized buffers whatever the batch.
    """
    idx = indices.to(v.device)
    w = weights.to(device=v.device, dtype=v.dtype)[:, :, None]  # weight of row i, broadcast over columns
    out = v.index_select(-2, idx[:, 0]).mul_(w[:, 0])
    for p in range(1, idx.shape[1]):
        out.addcmul_(v.index_select(-2, idx[:, p]), w[:, p])
    return out


def _resize_2d(
    v: torch.Tensor,
    out_hw: tuple[int, int],
    scales: tuple[float, float],
    antialias: bool,
    on_uint8_grid: bool,
) -> torch.Tensor:
    """Both passes on the last two axes of ``v``; ``on_uint8_grid``: v in [0,255], round+clip per pass."""
    in_hw = (v.shape[-2], v.shape[-1])
    # MATLAB: [~, order] = sort(scale) — smaller scale first, rows first on ties.
    order = sorted((0, 1), key=lambda d: scales[d])
    for d in order:
        if _is_identity(in_hw[d], out_hw[d], scales[d], antialias):
            continue
        indices, weights = resize_weights(in_hw[d], out_hw[d], scales[d], antialias)
        if d == 0:
            v = _resize_rows(v, indices, weights)
        else:  # gathering whole rows of the transpose is ~2x faster than a strided column gather
            v = _resize_rows(v.transpose(-1, -2).contiguous(), indices, weights).transpose(-1, -2)
        if on_uint8_grid:
            v = _saturate_uint8_(v)
    return v.contiguous()


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    quantize: bool = False,
    antialias: bool = True,
) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` on the last two axes of a float tensor.

    Args:
        x: B×C×H×W or C×H×W (any leading axes, or plain H×W) float tensor in [0, 1], any
            device and floating dtype.
        scale: output/input length ratio for both axes (1/4 downscales by 4, 4 upscales);
            output size ``ceil(n·scale)``.
        size: ``(H_out, W_out)`` instead of ``scale``; each axis then uses scale out/in, and the
            axis with the smaller scale is resized first (MATLAB's rule).
        quantize: MATLAB-on-uint8 mode: snap the input to round(255·x), round half away from
            zero and clip to [0, 255] after each 1-D pass; the output lies on the k/255 grid.
        antialias: widen the kernel by 1/scale when shrinking (MATLAB's default ``true``).

    Returns:
        Tensor of the same rank, device and dtype as ``x``, last two axes resized. In float
        mode values are unrounded and may leave [0, 1] slightly (bicubic overshoot).
        The arithmetic runs in float64 for float64 inputs and always in quantize mode (so the
        8-bit result is exact for bf16/fp16 inputs too), otherwise in float32.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(
            f"imresize: expected a floating-point torch tensor in [0, 1], got "
            f"{getattr(x, 'dtype', type(x).__name__)}; use imresize_uint8 for uint8 numpy images"
        )
    if x.ndim < 2:
        raise ValueError(
            f"imresize: expected a tensor with at least 2 axes (…×H×W), got shape {tuple(x.shape)}"
        )
    out_hw, scales = _plan((x.shape[-2], x.shape[-1]), scale, size)
    if quantize:
        v = _saturate_uint8_(x.to(torch.float64, copy=True, memory_format=torch.contiguous_format).mul_(255))
        v = _resize_2d(v, out_hw, scales, antialias, on_uint8_grid=True)
        return (v / 255).to(x.dtype)
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    v = _resize_2d(x.to(compute_dtype).contiguous(), out_hw, scales, antialias, on_uint8_grid=False)
    return v.to(x.dtype)


def imresize_uint8(
    img: np.ndarray, scale: float | None = None, *, size: tuple[int, int] | None = None
) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` for a uint8 H×W or H×W×C numpy image.

    Exactly :func:`imresize` with ``quantize=True`` (per-pass rounding, as MATLAB does on
    uint8). Returns a uint8 array with the same number of axes.
    """
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise TypeError(f"imresize_uint8: expected a uint8 H×W or H×W×C array, got {img.dtype} {img.shape}")
    v = torch.from_numpy(img.astype(np.float64))
    if img.ndim == 3:
        v = v.permute(2, 0, 1).contiguous()  # row gathers are fast on C×H×W memory
    out_hw, scales = _plan((v.shape[-2], v.shape[-1]), scale, size)
    v = _resize_2d(v, out_hw, scales, antialias=True, on_uint8_grid=True)
    if img.ndim == 3:
        v = v.permute(1, 2, 0)
    return v.numpy().astype(np.uint8)
