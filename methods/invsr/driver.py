"""The authors' whole-image driver (``sampler_invsr.py:113-221``, spec §3.4).

1. Small images: while ``min(h, w) < P`` (P = 128 LR px), reflect-pad each side by
   ``max(min((P − size)//2, size − 1), 0)`` before and ``max(min(P − size − before, size − 1), 0)``
   after (recursion for tiny images, top/left pads accumulated — the fix of PR #51).
2. Exactly P×P: one pipeline call. Otherwise reflect-pad bottom/right to a multiple of
   ``mod = vae_sf // sf · unet_sf`` (16 for SD) and chop into P×P patches at stride P/2 (the last
   start of a row/column shifted inward), ``chop_bs`` patch positions per call, outputs blended with
   InvSR's Gaussian window (OpenCV kernel of the output-patch length) in float64
   (:func:`srbench.nn.tiling.tiled_apply` with ``blend="gaussian"`` = ``ImageSpliterTh``).
3. Crop ``[sf·top : sf·top + sf·h, sf·left : sf·left + sf·w]``.

The colour-fix reference is the *padded* LR resized to the *cropped* output size
(``sampler_invsr.py:209-211``, spec pitfall 4); :func:`upscale_whole_image` returns the padded LR so
the caller can reproduce that, or use the unpadded LR ("aligned").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from srbench.nn.tiling import TilePosition, tiled_apply

__all__ = ["pad_small", "pad_to_multiple", "upscale_whole_image"]

PatchFn = Callable[[torch.Tensor, Sequence[TilePosition]], torch.Tensor]


def pad_small(x: torch.Tensor, patch: int = 128) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad until both sides are ≥ ``patch``; returns (padded, total top pad, total left pad)."""
    top = left = 0
    while min(x.shape[-2:]) < patch:
        h, w = x.shape[-2:]
        up = max(min((patch - h) // 2, h - 1), 0)
        down = max(min(patch - h - up, h - 1), 0)
        lf = max(min((patch - w) // 2, w - 1), 0)
        rt = max(min(patch - w - lf, w - 1), 0)
        x = F.pad(x, (lf, rt, up, down), mode="reflect")
        top, left = top + up, left + lf
    return x, top, left


def pad_to_multiple(x: torch.Tensor, mod: int) -> torch.Tensor:
    """Reflect-pad bottom/right so both sides are multiples of ``mod`` (``sampler_invsr.py:162-167``)."""
    h, w = x.shape[-2:]
    ph, pw = -h % mod, -w % mod
    return F.pad(x, (0, pw, 0, ph), mode="reflect") if (ph or pw) else x


def upscale_whole_image(
    x: torch.Tensor,
    patch_fn: PatchFn,
    *,
    sf: int = 4,
    patch: int = 128,
    mod: int = 16,
    chop_bs: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(SR B×3×sf·h×sf·w cropped, the padded LR) for LR ``x`` B×3×h×w, ``patch_fn(tiles, positions)``.

    ``patch_fn`` sees rows ordered position-major (all B images of one patch position, then the next),
    as ``ImageSpliterTh`` batches them; each row's :class:`TilePosition` names its image and corner.
    """
    b, _, h, w = x.shape
    xp, top, left = pad_small(x, patch)
    if xp.shape[-2:] == (patch, patch):
        out = patch_fn(xp, [TilePosition(i, 0, 0) for i in range(b)]).to(torch.float64)
    else:
        xp = pad_to_multiple(xp, mod)
        out = tiled_apply(
            patch_fn,
            xp,
            tile=patch,
            stride=patch // 2,
            scale=sf,
            tile_batch_size=chop_bs,
            blend="gaussian",
            accum_dtype=torch.float64,
            with_positions=True,
        )
    out = out[:, :, sf * top : sf * top + sf * h, sf * left : sf * left + sf * w]
    return out, xp
