"""Whole-image GroupNorm statistics for tiled inference: measure them, then run tiles with them frozen.

A GroupNorm normalises each (image, group) by the mean and variance over the whole feature map
(Wu & He 2018, eq. 1: ``y = (x − μ_g) / √(σ²_g + ε) · γ + β``). Run on a tile, it uses the tile's
own μ, σ² instead, so a tiled VAE differs from the untiled one far more than the cut receptive
fields alone would cause (14.9 dB on the random tiny SD VAE). :class:`GroupNormStats` takes over
the ``forward`` of every ``torch.nn.GroupNorm`` inside some modules (a context manager, restored on
exit) and can

* **record**: add each call's per-(image, group) sums Σx and Σx² (float64) over the part of the
  tile the tile *owns* — the tiles' owned regions partition the image, so after one pass over
  all tiles the sums are those of the whole feature map and no pixel is counted twice;
* **freeze**: turn the sums into μ, σ² and normalise every later call with them (the idea of
  OSEDiff's ``my_utils/vaehook.py``, which suspends each GroupNorm until all tiles reached it);
* **stop** right after recording one chosen GroupNorm (:class:`StopForward`), so a pass that only
  needs the statistics of an early layer does not run the rest of the network.

Memory: a few numbers per (image, group, layer); no activation is kept between tiles. The caller
(:mod:`srbench.nn.sd_tiling`) decides how many passes to run and how the first estimate is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

__all__ = ["GroupNormStats", "OwnedRows", "StopForward", "frozen_group_norm"]


class StopForward(Exception):  # a control-flow signal, not an error
    """Raised by a recording GroupNorm marked ``stop_after``: its statistics are in, the rest is not needed."""


@dataclass(frozen=True)
class OwnedRows:
    """Which image each row of a tile batch belongs to, and the rectangle of the tile it owns.

    ``rects[r] = (top, bottom, left, right)`` in the tile's *input* pixels (``tile_h``×``tile_w``);
    at a layer of size h×w the rectangle is scaled by h/tile_h, w/tile_w (it must land on whole
    pixels: the tiler puts the borders on multiples of the network's down-sampling factor).
    """

    images: tuple[int, ...]
    rects: tuple[tuple[int, int, int, int], ...]
    tile_h: int
    tile_w: int


def _group_sums(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Σx and Σx² per (row, group) in float64, and the number of values per group."""
    xg = x.reshape(x.shape[0], groups, -1).double()
    return xg.sum(-1), (xg * xg).sum(-1), xg.shape[-1]


def frozen_group_norm(
    x: torch.Tensor, norm: torch.nn.GroupNorm, mean: torch.Tensor, var: torch.Tensor
) -> torch.Tensor:
    """GroupNorm of ``x`` (N×C×…) with given per-(row, group) ``mean``/``var`` (N×G).

    Folded into one per-(row, channel) scale and shift, ``y = x·a + b`` with ``a = γ/√(σ²+ε)``,
    ``b = β − μ·a`` (one pass over ``x``); half-precision inputs are computed in float32.
    """
    n, c = x.shape[:2]
    per_group = c // norm.num_groups
    a = torch.rsqrt(var.double() + norm.eps).repeat_interleave(per_group, dim=1)  # N×C
    b = -mean.double().repeat_interleave(per_group, dim=1) * a
    if norm.affine:
        a, b = a * norm.weight.double(), b * norm.weight.double() + norm.bias.double()
    dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    shape = (n, c) + (1,) * (x.ndim - 2)
    y = torch.addcmul(b.to(dtype).reshape(shape), x.to(dtype), a.to(dtype).reshape(shape))
    return y.to(x.dtype)


class GroupNormStats:
    """Record / freeze / stop controller for the GroupNorms inside ``modules`` (see module docstring).

    Attributes set by the caller between passes:
        record: add statistics of every GroupNorm call (of ``only`` if given).
        only: the GroupNorm whose statistics to record (``None``: all).
        stop_after: raise :class:`StopForward` after recording this GroupNorm.
        rows: the current tile batch's :class:`OwnedRows`; ``None`` = rows are whole images
            ``0..N−1`` (an untiled pass, e.g. on a downsampled copy).
    """

    def __init__(self, modules: Iterable[torch.nn.Module]):
        seen: dict[int, torch.nn.GroupNorm] = {}
        for module in modules:
            for m in module.modules():
                if isinstance(m, torch.nn.GroupNorm):
                    seen.setdefault(id(m), m)
        self.norms: list[torch.nn.GroupNorm] = list(seen.values())
        self.order: list[torch.nn.GroupNorm] = []  # call order, filled by the first pass
        self.frozen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(norm) → (mean, var), B×G
        self._sums: dict[int, list[torch.Tensor]] = {}  # id(norm) → [Σx, Σx², count], B×G float64
        self.record = False
        self.only: torch.nn.GroupNorm | None = None
        self.stop_after: torch.nn.GroupNorm | None = None
        self.rows: OwnedRows | None = None

    def __len__(self) -> int:
        return len(self.norms)

    @contextmanager
    def active(self) -> Iterator[GroupNormStats]:
        """Route every GroupNorm's forward through this controller while inside the block."""
        for m in self.norms:
            m.forward = self._forward_of(m)  # instance attribute shadows the class's forward
        try:
            yield self
        finally:
            for m in self.norms:
                del m.forward

    def _forward_of(self, norm: torch.nn.GroupNorm):
        def forward(x: torch.Tensor) -> torch.Tensor:
            if norm not in self.order:
                self.order.append(norm)
            if self.record and (self.only is None or self.only is norm):
                self._add(norm, x)
            if self.stop_after is norm:
                raise StopForward
            stats = self.frozen.get(id(norm))
            if stats is None:
                return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
            mean, var = stats
            if self.rows is not None:
                index = torch.as_tensor(self.rows.images, device=mean.device)
                mean, var = mean[index], var[index]
            return frozen_group_norm(x, norm, mean, var)

        return forward

    def _add(self, norm: torch.nn.GroupNorm, x: torch.Tensor) -> None:
        g = norm.num_groups
        if self.rows is None:
            s, ss, count = _group_sums(x, g)
            images: Sequence[int] = range(x.shape[0])
            per_row = [(s[r], ss[r], count) for r in images]
        else:
            h, w = x.shape[-2:]
            fy, fx = Fraction(h, self.rows.tile_h), Fraction(w, self.rows.tile_w)
            images, per_row = self.rows.images, []
            for r, (top, bottom, left, right) in enumerate(self.rows.rects):
                edges = [top * fy, bottom * fy, left * fx, right * fx]
                if any(e.denominator != 1 for e in edges):
                    raise ValueError(
                        f"owned tile region {(top, bottom, left, right)} of a {self.rows.tile_h}×{self.rows.tile_w} "
                        f"tile is not whole pixels at a {h}×{w} layer"
                    )
                t, b, lo, ri = (int(e) for e in edges)
                s, ss, count = _group_sums(x[r : r + 1, :, t:b, lo:ri], g)
                per_row.append((s[0], ss[0], count))
        acc = self._sums.get(id(norm))
        if acc is None:
            n_img = 1 + max(images) if len(images) else 0
            zeros = torch.zeros(n_img, g, dtype=torch.float64, device=x.device)
            acc = self._sums[id(norm)] = [zeros, zeros.clone(), zeros.clone()]
        for image, (s, ss, count) in zip(images, per_row, strict=True):
            if image >= acc[0].shape[0]:  # a later tile batch names a later image: grow
                grow = image + 1 - acc[0].shape[0]
                acc[:] = [torch.cat([a, a.new_zeros(grow, g)]) for a in acc]
            acc[0][image] += s
            acc[1][image] += ss
            acc[2][image] += count

    def freeze(self) -> None:
        """Turn the recorded sums into frozen (mean, var) — biased variance, as GroupNorm — and clear them."""
        for key, (s, ss, count) in self._sums.items():
            if bool((count == 0).any()):
                raise RuntimeError("a GroupNorm recorded no pixels for some image; the tiles do not cover it")
            mean = s / count
            var = (ss / count - mean * mean).clamp_min(0)
            self.frozen[key] = (mean, var)
        self._sums.clear()

    def reset(self) -> None:
        """Forget frozen statistics and partial sums (back to per-call GroupNorm)."""
        self.frozen.clear()
        self._sums.clear()
