"""Whole-pipeline tiling for Stable-Diffusion SR: VAE encode, latent network, VAE decode.

Each stage runs on overlapping tiles blended with a window (:func:`srbench.nn.tiling.tiled_apply`),
so memory is set by the tile, not the image: a 2048² output runs where one untiled call would not
fit. Sizes are in the stage's input pixels; the latent tile is the pixel tile / 8.

* :func:`tiled_vae_encode` tiles the encoder's *posterior moments* (mean, log-variance) and draws
  the posterior sample once over the whole latent with the per-image generators, so the random
  draw is the same as untiled.
* :func:`tiled_latent_apply` tiles any latent → latent function (UNet step, noise predictor).
* :func:`tiled_vae_decode` tiles the decoder (×8).

Tiled ≠ untiled exactly: the VAE's GroupNorm statistics are per tile and receptive fields are cut
at tile borders; overlap + blending keeps the difference small on natural images
(``tests/test_sd_tiling.py`` reports PSNR on a tiny SD).

:class:`SDTiling` bundles the sizes, read from a config ``tile`` group
(``{size|max_mem_mb, overlap, blend, batch}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch

from srbench.nn.tiling import BlendSpec, tile_size_for_budget, tiled_apply

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

__all__ = ["SDTiling", "tiled_latent_apply", "tiled_vae_decode", "tiled_vae_encode"]

#: Rough fp16 activation cost of the SD VAE decoder per output pixel (MB) — the largest stage
#: (512 channels at full resolution in the last up block). Used by ``max_mem_mb`` / ``auto``;
#: a method may measure and pass its own.
VAE_DECODE_MB_PER_PIXEL = 0.012


def _shift(vae: AutoencoderKL) -> float:
    return float(getattr(vae.config, "shift_factor", None) or 0.0)


@dataclass(frozen=True)
class SDTiling:
    """Tile sizes for the three stages (pixel tile for the VAE; latent tile = pixel tile / 8)."""

    pixel_tile: int = 512
    pixel_overlap: int = 128
    latent_tile: int = 64
    latent_overlap: int = 16
    blend: BlendSpec = "gaussian"
    tile_batch_size: int = 1

    @classmethod
    def from_config(
        cls,
        cfg: Mapping[str, Any],
        *,
        device: torch.device | str | None = None,
        mb_per_pixel: float = VAE_DECODE_MB_PER_PIXEL,
        vae_factor: int = 8,
    ) -> SDTiling:
        """``size`` (pixels) or ``max_mem_mb`` (number or ``auto``), ``overlap`` (fraction or px), ``blend``, ``batch``."""
        size = cfg.get("size")
        if size is None:
            size = tile_size_for_budget(
                cfg.get("max_mem_mb", "auto"), mb_per_pixel=mb_per_pixel, multiple=8 * vae_factor, device=device
            )
        size = int(size)
        ov = cfg.get("overlap", 0.25)
        overlap = round(ov * size) if isinstance(ov, float) and ov < 1 else int(ov)
        overlap = overlap // vae_factor * vae_factor
        return cls(
            pixel_tile=size,
            pixel_overlap=overlap,
            latent_tile=size // vae_factor,
            latent_overlap=overlap // vae_factor,
            blend=cfg.get("blend", "gaussian"),
            tile_batch_size=int(cfg.get("batch", 1)),
        )


@torch.no_grad()
def tiled_vae_encode(
    vae: AutoencoderKL,
    x01: torch.Tensor,
    tiling: SDTiling,
    *,
    sample: bool = False,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> torch.Tensor:
    """Tiled :func:`srbench.nn.sd.vae_encode`: images in [0, 1] → scaled latents."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    f = 2 ** (len(vae.config.block_out_channels) - 1)

    def moments(tiles: torch.Tensor) -> torch.Tensor:
        return vae.encode(tiles).latent_dist.parameters.float()

    params = tiled_apply(
        moments,
        (2 * x01 - 1).to(dtype=vae.dtype),
        tile=tiling.pixel_tile,
        overlap=tiling.pixel_overlap,
        scale=Fraction(1, f),
        tile_batch_size=tiling.tile_batch_size,
        blend=tiling.blend,
    )
    posterior = DiagonalGaussianDistribution(params.to(vae.dtype))
    z = posterior.sample(generator=generator) if sample else posterior.mode()
    return (z - _shift(vae)) * vae.config.scaling_factor


def tiled_latent_apply(
    fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, tiling: SDTiling, **kwargs: Any
) -> torch.Tensor:
    """Latent → latent function (``fn`` maps N×C×h×w to N×C'×h×w) on overlapping latent tiles."""
    return tiled_apply(
        fn, z, tile=tiling.latent_tile, overlap=tiling.latent_overlap, tile_batch_size=tiling.tile_batch_size,
        blend=tiling.blend, **kwargs,
    )


@torch.no_grad()
def tiled_vae_decode(vae: AutoencoderKL, z: torch.Tensor, tiling: SDTiling, *, clamp: bool = True) -> torch.Tensor:
    """Tiled :func:`srbench.nn.sd.vae_decode`: scaled latents → images in [0, 1]."""
    f = 2 ** (len(vae.config.block_out_channels) - 1)

    def decode(tiles: torch.Tensor) -> torch.Tensor:
        return vae.decode(tiles).sample

    x = tiled_apply(
        decode,
        (z / vae.config.scaling_factor + _shift(vae)).to(dtype=vae.dtype),
        tile=tiling.latent_tile,
        overlap=tiling.latent_overlap,
        scale=f,
        tile_batch_size=tiling.tile_batch_size,
        blend=tiling.blend,
    )
    x = (x + 1) / 2
    return x.clamp(0, 1) if clamp else x
