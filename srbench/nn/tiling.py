"""Overlapping-tile inference with weighted blending, for images too large for one forward pass.

An image B×C×H×W is cut into full-size tiles (the last tile of each row/column is shifted
inward, as in InvSR's ``ImageSpliterTh``), tiles are run through a batched function ``fn``
that maps a tile h×w to (h·s)×(w·s), and the outputs are blended with a weight window:

    out(p) = Σ_k w_k(p) · fn(tile_k)(p) / Σ_k w_k(p)

Memory stays flat in the image size: each batch of tile outputs is added into one output
buffer and one weight buffer, then dropped. Methods own their tile size and overlap (they
know their receptive field); this module only does the bookkeeping.

Windows (on the output tile, i.e. after scaling):

* ``"gaussian"`` — InvSR (zsyOAOA/InvSR ``utils/util_image.py``, ``ImageSpliterTh``): the
  outer product of two OpenCV ``getGaussianKernel(n)`` kernels with OpenCV's default
  σ = 0.3·((n−1)/2 − 1) + 0.8; for even n the kernel of length n+1 (same σ) without its first tap.
* ``"linear"`` — feathering: w(i) = min(1, (i+1)/(r+1), (n−i)/(r+1)) with r the overlap in
  output pixels, so two tiles overlapping by exactly r sum to 1 before normalisation.
* ``"constant"`` — plain averaging (InvSR's ``'ones'``).
* a callable ``(h, w) -> Tensor[h, w]`` of positive weights, or the name of one registered
  with :func:`register_blend` (OSEDiff registers its latent Gaussian, variance 0.01, that way).

Tile size from a memory budget: :func:`tile_size_for_budget` turns ``max_mem_mb`` (a number, or
``"auto"`` = a fraction of the free CUDA memory) and a per-pixel cost into a tile side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "TileGrid",
    "TilePosition",
    "blend_window",
    "gaussian_weights_1d",
    "linear_ramp_weights_1d",
    "osediff_latent_window",
    "plan_tiles",
    "register_blend",
    "registered_blends",
    "tile_size_for_budget",
    "tile_starts",
    "tiled_apply",
]

BlendSpec = str | Callable[[int, int], torch.Tensor]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


# --------------------------------------------------------------------------- tile layout
def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of full tiles covering ``[0, length)``; the last one is shifted inward.

    Same set as InvSR's ``ImageSpliterTh.extract_starts`` (``range(0, L, stride)``, starts that
    overflow replaced by ``L - tile``, duplicates dropped) and OSEDiff's latent tiling. Needs
    ``length >= tile`` (pad smaller images first; :func:`tiled_apply` does).
    """
    if not 0 < stride <= tile:
        raise ValueError(f"tile stride must be in [1, tile={tile}], got {stride}")
    if length < tile:
        raise ValueError(f"length {length} is smaller than the tile {tile}; pad the image first")
    return [*range(0, length - tile, stride), length - tile]


class TilePosition(NamedTuple):
    """Where one row of a tile batch comes from: image index in the batch, top-left corner (input px)."""

    image: int
    top: int
    left: int


@dataclass(frozen=True)
class TileGrid:
    """Tile corners for an image of ``height``×``width`` (rows of tops × columns of lefts)."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    tops: tuple[int, ...]
    lefts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.tops) * len(self.lefts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """(top, left) in row-major order, as InvSR visits them."""
        return ((t, l) for t in self.tops for l in self.lefts)


def plan_tiles(
    height: int,
    width: int,
    tile: int | Sequence[int],
    *,
    overlap: int | Sequence[int] = 0,
    stride: int | Sequence[int] | None = None,
) -> TileGrid:
    """The tile grid for an image at least as large as the tile (stride defaults to tile − overlap)."""
    th, tw = _pair(tile)
    if stride is None:
        oh, ow = _pair(overlap)
        if not (0 <= oh < th and 0 <= ow < tw):
            raise ValueError(f"overlap {overlap} must be in [0, tile) for tile {tile}")
        sh, sw = th - oh, tw - ow
    else:
        sh, sw = _pair(stride)
    return TileGrid(
        height, width, th, tw, tuple(tile_starts(height, th, sh)), tuple(tile_starts(width, tw, sw))
    )


# --------------------------------------------------------------------------- windows
def gaussian_weights_1d(n: int, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """InvSR's 1-D blending kernel of length ``n`` (OpenCV ``getGaussianKernel``, default σ)."""
    sigma = 0.3 * ((n - 1) * 0.5 - 1) + 0.8  # OpenCV's σ for ksize = n (kept for the n+1 kernel too)
    m = n + 1 if n % 2 == 0 else n  # InvSR: even n → kernel of n+1 taps without the first
    x = torch.arange(m, dtype=torch.float64, device=device) - (m - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[1:] if n % 2 == 0 else g).to(dtype)


def osediff_latent_window(
    height: int, width: int, *, var: float = 0.01, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """OSEDiff's latent-tile window (cswry/OSEDiff ``osediff.py:432-447``), height×width.

    ``w(i) = exp(−(i − mid)² / n² / (2·var)) / √(2π·var)`` with variance 0.01; the authors put
    the midpoint at ``(n − 1)/2`` along the width but at ``n/2`` along the height (kept as published).
    """

    def axis(n: int, mid: float) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float64, device=device)
        return torch.exp(-((i - mid) ** 2) / (n * n) / (2 * var)) / math.sqrt(2 * math.pi * var)

    return torch.outer(axis(height, height / 2), axis(width, (width - 1) / 2)).to(dtype)


def linear_ramp_weights_1d(
    n: int, ramp: int, *, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """Feathering window: rises over ``ramp`` pixels at each end, 1 in the middle, never 0."""
    i = torch.arange(n, dtype=torch.float64, device=device)
    r = float(ramp + 1)
    return torch.minimum(torch.minimum((i + 1) / r, (n - i) / r), torch.ones_like(i)).to(dtype)


def blend_window(
    blend: BlendSpec,
    height: int,
    width: int,
    *,
    ramp: tuple[int, int] = (0, 0),
    dtype: torch.dtype = torch.float64,
    device=None,
) -> torch.Tensor:
    """A height×width window of positive weights (``ramp``: overlap in output px, for ``"linear"``)."""
    if callable(blend):
        w = torch.as_tensor(blend(height, width), dtype=dtype, device=device)
        if w.shape != (height, width) or not bool((w > 0).all()):
            raise ValueError(
                f"blend window must be a {height}x{width} tensor of positive weights, got {tuple(w.shape)}"
            )
        return w
    if blend == "gaussian":
        wh, ww = gaussian_weights_1d(height, device=device), gaussian_weights_1d(width, device=device)
    elif blend == "linear":
        wh = linear_ramp_weights_1d(height, ramp[0], device=device)
        ww = linear_ramp_weights_1d(width, ramp[1], device=device)
    elif blend == "constant":
        return torch.ones(height, width, dtype=dtype, device=device)
    elif blend in _BLENDS:
        return blend_window(_BLENDS[blend], height, width, dtype=dtype, device=device)
    else:
        raise ValueError(f"unknown blend {blend!r}; use one of {', '.join(registered_blends())} or a callable")
    return torch.outer(wh, ww).to(dtype)


_BLENDS: dict[str, Callable[[int, int], torch.Tensor]] = {}


def register_blend(name: str, window: Callable[[int, int], torch.Tensor]) -> None:
    """Make ``blend=name`` mean ``window(h, w)`` (a h×w tensor of positive weights) in this module.

    The built-in names (gaussian, linear, constant) cannot be replaced; re-registering a name
    with another function is an error (two methods would silently share one name).
    """
    if name in ("gaussian", "linear", "constant"):
        raise ValueError(f"blend {name!r} is built in")
    if name in _BLENDS and _BLENDS[name] is not window:
        raise ValueError(f"blend {name!r} is already registered")
    _BLENDS[name] = window


def registered_blends() -> tuple[str, ...]:
    return ("gaussian", "linear", "constant", *_BLENDS)


# --------------------------------------------------------------------------- memory budget
def tile_size_for_budget(
    max_mem_mb: float | str | None,
    *,
    mb_per_pixel: float,
    fixed_mb: float = 0.0,
    multiple: int = 8,
    min_size: int = 64,
    max_size: int = 4096,
    device: torch.device | str | None = None,
    auto_fraction: float = 0.8,
) -> int:
    """Largest square tile side (a multiple of ``multiple``) whose estimated memory fits the budget.

    Memory of one tile ≈ ``fixed_mb + mb_per_pixel · side²`` (conv activations are linear in the
    pixel count; the method measures ``mb_per_pixel`` for its network, e.g. by a probe with
    :func:`srbench.devices.peak_memory_mb`). ``max_mem_mb``: a number; ``"auto"`` →
    ``auto_fraction`` of the free memory of the CUDA ``device`` (``max_size`` on CPU);
    ``None`` → ``max_size``. Never below ``min_size``.
    """
    if mb_per_pixel <= 0:
        raise ValueError(f"mb_per_pixel must be positive, got {mb_per_pixel}")
    if max_mem_mb is None:
        return max_size
    if max_mem_mb == "auto":
        dev = torch.device(device) if device is not None else None
        if dev is None or dev.type != "cuda" or not torch.cuda.is_available():
            return max_size
        free, _ = torch.cuda.mem_get_info(dev)
        budget = auto_fraction * free / 2**20
    else:
        budget = float(max_mem_mb)
    side = ((max(budget - fixed_mb, 0.0) / mb_per_pixel) ** 0.5) // multiple * multiple
    return int(min(max(side, min_size), max_size))


# --------------------------------------------------------------------------- apply
def _pad_to(x: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """Pad bottom/right up to ``height``×``width``; reflect repeats when the pad exceeds the image."""
    while x.shape[-2] < height or x.shape[-1] < width:
        ph, pw = max(height - x.shape[-2], 0), max(width - x.shape[-1], 0)
        if mode == "reflect":
            if (ph and x.shape[-2] < 2) or (pw and x.shape[-1] < 2):
                mode = "replicate"  # a 1-pixel side has nothing to reflect
                continue
            # torch's reflect needs pad < size; reflect again on the grown image (as InvSR's loop does)
            ph, pw = min(ph, x.shape[-2] - 1), min(pw, x.shape[-1] - 1)
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


def _scaled(v: int, s: Fraction, what: str) -> int:
    out = v * s
    if out.denominator != 1:
        raise ValueError(
            f"{what} {v} times scale {s} is not a whole number of pixels; choose sizes divisible by {s.denominator}"
        )
    return int(out)


@torch.no_grad()
def tiled_apply(
    fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    *,
    tile: int | Sequence[int],
    overlap: int | Sequence[int] = 0,
    stride: int | Sequence[int] | None = None,
    scale: float | Fraction = 1,
    tile_batch_size: int = 1,
    blend: BlendSpec = "gaussian",
    pad_mode: str = "reflect",
    accum_dtype: torch.dtype = torch.float32,
    with_positions: bool = False,
) -> torch.Tensor:
    """Run ``fn`` on overlapping tiles of ``x`` and blend the outputs.

    Args:
        fn: maps a batch of tiles N×C×h×w to N×C'×(h·s)×(w·s); rows are independent.
            With ``with_positions=True`` it is called as ``fn(tiles, positions)`` with one
            :class:`TilePosition` per row (e.g. to seed noise per image and tile).
        x: B×C×H×W (any range; ``fn`` defines it).
        tile: tile size (int or (h, w)) in input pixels. An image smaller than a tile is padded
            at the bottom/right with ``pad_mode`` and the output cropped back.
        overlap / stride: tile spacing (stride = tile − overlap unless given).
        scale: output/input size ratio ``s`` (e.g. 4 for ×4 SR, 1/8 for a VAE encoder); tile
            size and every tile corner times ``s`` must be whole pixels.
        tile_batch_size: tile positions per ``fn`` call; ``fn`` sees B·tile_batch_size rows,
            ordered position-major (all B images of one position, then the next position).
        blend: ``"gaussian"`` (InvSR), ``"linear"``, ``"constant"`` or a window callable.
        accum_dtype: dtype of the output and weight accumulators (InvSR uses float64).

    Returns:
        B×C'×(H·s)×(W·s) in ``x.dtype``.
    """
    if x.ndim != 4:
        raise ValueError(f"tiled_apply expects B×C×H×W, got shape {tuple(x.shape)}")
    if tile_batch_size < 1:
        raise ValueError(f"tile_batch_size must be >= 1, got {tile_batch_size}")
    s = Fraction(scale).limit_denominator(1 << 16)
    b, _, h, w = x.shape
    th, tw = _pair(tile)
    xp = _pad_to(x, max(h, th), max(w, tw), pad_mode)
    grid = plan_tiles(xp.shape[-2], xp.shape[-1], (th, tw), overlap=overlap, stride=stride)
    oth, otw = _scaled(th, s, "tile height"), _scaled(tw, s, "tile width")
    out_h, out_w = _scaled(xp.shape[-2], s, "image height"), _scaled(xp.shape[-1], s, "image width")
    ramp = (
        oth - _scaled(grid.tops[1] - grid.tops[0], s, "stride") if len(grid.tops) > 1 else 0,
        otw - _scaled(grid.lefts[1] - grid.lefts[0], s, "stride") if len(grid.lefts) > 1 else 0,
    )
    window = blend_window(
        blend, oth, otw, ramp=(max(ramp[0], 0), max(ramp[1], 0)), dtype=accum_dtype, device=x.device
    )

    out: torch.Tensor | None = None
    weight = torch.zeros(1, 1, out_h, out_w, dtype=accum_dtype, device=x.device)
    corners = list(grid)
    for first in range(0, len(corners), tile_batch_size):
        chunk = corners[first : first + tile_batch_size]
        tiles = torch.cat([xp[:, :, t : t + th, l : l + tw] for t, l in chunk])
        if with_positions:
            positions = [TilePosition(i, t, l) for t, l in chunk for i in range(b)]
            y = fn(tiles, positions)
        else:
            y = fn(tiles)
        if y.ndim != 4 or y.shape[0] != tiles.shape[0] or tuple(y.shape[-2:]) != (oth, otw):
            raise ValueError(
                f"tile function returned shape {tuple(y.shape)} for tiles {tuple(tiles.shape)}; "
                f"expected ({tiles.shape[0]}, C, {oth}, {otw}) at scale {s}"
            )
        if out is None:
            out = torch.zeros(b, y.shape[1], out_h, out_w, dtype=accum_dtype, device=x.device)
        for k, (t, l) in enumerate(chunk):
            ot, ol = _scaled(t, s, "tile top"), _scaled(l, s, "tile left")
            out[:, :, ot : ot + oth, ol : ol + otw] += y[k * b : (k + 1) * b].to(accum_dtype) * window
            weight[:, :, ot : ot + oth, ol : ol + otw] += window
        del y, tiles  # flat memory: nothing from this batch outlives the accumulation
    assert out is not None
    out = out / weight
    return out[:, :, : _scaled(h, s, "image height"), : _scaled(w, s, "image width")].to(x.dtype)
