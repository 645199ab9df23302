"""OSEDiff's latent tiling of the UNet call (``osediff.py:326-404``), on the shared tiler.

Tiling only when ``h·w > tile²`` (latent px; images above 768² at tile 96). Tile side
``min(tile, h, w)``, stride ``tile − overlap``, last tile snapped inward, one UNet call per tile,
blended with the authors' Gaussian window (:func:`srbench.nn.tiling.osediff_latent_window`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from srbench.nn.tiling import osediff_latent_window, tiled_apply

__all__ = ["tiled_eps"]


def tiled_eps(
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    text: torch.Tensor,
    *,
    tile: int = 96,
    overlap: int = 32,
    tile_batch_size: int = 1,
) -> torch.Tensor:
    """ε for latents ``z`` (B×4×h×w) with text embeddings B×L×D, tiled as the authors above tile²."""
    b, _, h, w = z.shape
    if h * w <= tile * tile:
        return eps_fn(z, text)
    side = min(tile, h, w)

    def run(tiles: torch.Tensor) -> torch.Tensor:  # rows are position-major: repeat text per position
        return eps_fn(tiles, text.repeat(tiles.shape[0] // b, 1, 1))

    return tiled_apply(
        run, z, tile=side, overlap=overlap, tile_batch_size=tile_batch_size,
        blend=osediff_latent_window, accum_dtype=torch.float32,
    )  # fmt: skip
