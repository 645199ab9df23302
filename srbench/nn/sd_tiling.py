"""Whole-pipeline tiling for Stable-Diffusion SR: VAE encode, latent network, VAE decode.

Each stage runs on overlapping tiles (:func:`srbench.nn.tiling.tiled_apply` for the latent network),
so memory is set by the tile, not the image: a 2048² output runs where one untiled call would not
fit. Sizes are in the stage's input pixels; the latent tile is the pixel tile / 8.

* :func:`tiled_vae_encode` (and :func:`tiled_vae_moments`, the posterior parameters for callers
  that inject their own noise) tiles the encoder's full-resolution part (``conv_in`` and the down
  blocks that downsample), then runs the latent-resolution rest (the last down block, the mid
  block with its attention, output norm and conv, ``quant_conv``) on the whole latent-size map,
  and draws the posterior sample once over the whole latent with the per-image generators, so
  the random draw is the same as untiled.
* :func:`tiled_latent_apply` tiles any latent → latent function (UNet step, noise predictor).
* :func:`tiled_vae_decode` runs ``post_quant_conv``, ``conv_in``, the mid block (attention
  included) and the first up block's resnets on the whole latent, then tiles the rest (×8).

Why the latent-resolution parts run whole: the mid-block self-attention mixes every latent
position with every other, which no tiling reproduces, and the latent-resolution convs carry
most of the receptive field (tiling them needs overlaps of many latent pixels). At latent
resolution this is cheap: a 2048² image is a 256² latent (SDPA's memory-efficient kernels keep
attention linear in the tokens). What grows with the image there is a 512-channel map at 1/64
of the pixels (≈ 8 values per image pixel in SD-2's VAE) — the order of the input and output
images themselves. Measured on the random tiny SD VAE (128², 2×2 tiles, exact statistics): this
took decode from 41 dB (mid block only whole) to 74 dB tiled vs untiled.

GroupNorm statistics (``norm_stats``): a GroupNorm normalises with whole-image statistics; on a
tile it would use the tile's (14.9 dB tiled vs untiled on the random tiny SD VAE). With
:class:`srbench.nn.group_norm_stats.GroupNormStats` every GroupNorm in the tiled part runs with
statistics of the whole image, frozen while the tiles run:

* ``"exact"`` (default) — layer by layer: pass k runs the tiles only up to GroupNorm k (the ones
  before it frozen at their exact values) and adds up its input over the region each tile owns
  (the owned regions partition the image). The whole-image statistics, up to the cut receptive
  fields. Cost ≈ (number of GroupNorms in the tiled part / 2) tiled passes — about 10× a plain
  tiled decode for SD's VAE — paid only by images too large to run untiled.
  OSEDiff's ``my_utils/vaehook.py`` (default, non-fast mode) gets the same statistics in one pass by
  keeping every tile's activations between GroupNorms — memory that grows with the image.
* ``"estimate"`` — measured in one untiled pass over a copy of the stage input downsampled to
  the tile size (nearest, per-channel mean/std matched to the full input), as vaehook's fast mode
  does. Cost: +1 tile-sized pass. Approximate (28 dB decode on the random tiny VAE above; a
  trained VAE is likely closer, not measured — no weights here).
* ``"tile"`` — per-tile statistics (plain tiling; what diffusers' ``enable_tiling`` does).

(Tried and dropped: the estimate followed by one full-resolution recording pass — worse than the
estimate alone, 21 vs 29 dB: the recorded statistics of layer k inherit the estimate's error in
the layers before it, so one pass does not converge.)

Each pass keeps only per-(image, group) sums, so peak memory stays that of one tile batch.
An input that fits in one tile runs untiled (exact). VAE tiles are put together by
``vae_blend``: ``"owned"`` (default) copies each output pixel from the one tile that owns it
(≥ overlap/2 from that tile's inner edges; OSEDiff's vaehook crops its padded tiles the same
way), or any :func:`~srbench.nn.tiling.tiled_apply` window. ``"gaussian"`` measured far lower on
the tiny VAE with exact statistics (decode 52 vs 74 dB, encode 46 vs 84 dB): it mixes in pixels
near other tiles' edges, where the cut receptive field errs most. With ``norm_stats="tile"`` the
tiles disagree everywhere and a blend hides the seams better than a hard copy.

:class:`SDTiling` bundles the sizes, read from a config ``tile`` group
(``{size|max_mem_mb, overlap, blend, batch, norm_stats, vae_blend}``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from srbench.nn.group_norm_stats import GroupNormStats, OwnedRows, StopForward
from srbench.nn.tiling import BlendSpec, TilePosition, plan_tiles, tile_size_for_budget, tiled_apply

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

__all__ = [
    "NORM_STATS",
    "NormStats",
    "SDTiling",
    "tiled_latent_apply",
    "tiled_vae_decode",
    "tiled_vae_encode",
    "tiled_vae_moments",
    "tiled_with_norm_stats",
]

NormStats = Literal["exact", "estimate", "tile"]
#: GroupNorm statistics modes of the tiled VAE (see the module docstring).
NORM_STATS: tuple[str, ...] = ("exact", "estimate", "tile")

#: Rough fp16 activation cost of the SD VAE decoder per output pixel (MB) — the largest stage
#: (512 channels at full resolution in the last up block). Used by ``max_mem_mb`` / ``auto``;
#: a method may measure and pass its own.
VAE_DECODE_MB_PER_PIXEL = 0.012


def _shift(vae: AutoencoderKL) -> float:
    return float(getattr(vae.config, "shift_factor", None) or 0.0)


@dataclass(frozen=True)
class SDTiling:
    """Tile sizes for the three stages (pixel tile for the VAE; latent tile = pixel tile / 8).

    ``blend``: window of the latent stage (:func:`tiled_latent_apply`); ``vae_blend``: how VAE
    tiles are put together (``"owned"`` or a window); ``norm_stats``: GroupNorm statistics of the
    tiled VAE (``exact`` | ``estimate`` | ``tile``, module docstring).
    """

    pixel_tile: int = 512
    pixel_overlap: int = 128
    latent_tile: int = 64
    latent_overlap: int = 16
    blend: BlendSpec = "gaussian"
    tile_batch_size: int = 1
    norm_stats: NormStats = "exact"
    vae_blend: BlendSpec = "owned"

    def __post_init__(self) -> None:
        if self.norm_stats not in NORM_STATS:
            raise ValueError(
                f"tile norm_stats must be one of {', '.join(NORM_STATS)}, got {self.norm_stats!r}"
            )

    @classmethod
    def from_config(
        cls,
        cfg: Mapping[str, Any],
        *,
        device: torch.device | str | None = None,
        mb_per_pixel: float = VAE_DECODE_MB_PER_PIXEL,
        vae_factor: int = 8,
    ) -> SDTiling:
        """``size`` (pixels) or ``max_mem_mb`` (number or ``auto``), ``overlap`` (fraction or px), ``blend``,
        ``batch``, ``norm_stats`` (GroupNorm statistics of the tiled VAE:
        exact | estimate | tile), ``vae_blend`` (how VAE tiles are put together: owned | a blend)."""
        size = cfg.get("size")
        if size is None:
            size = tile_size_for_budget(
                cfg.get("max_mem_mb", "auto"),
                mb_per_pixel=mb_per_pixel,
                multiple=8 * vae_factor,
                device=device,
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
            norm_stats=cfg.get("norm_stats", "exact"),
            vae_blend=cfg.get("vae_blend", "owned"),
        )


# --------------------------------------------------------------------------- GroupNorm-aware tiling
def _owned_spans(starts: tuple[int, ...], tile: int, length: int, quantum: int) -> dict[int, tuple[int, int]]:
    """Per tile start: the span [a, b) of the tile (tile coordinates) that it owns along one axis.

    Neighbours split their overlap at its middle, rounded to a multiple of ``quantum`` (the
    stage's down-sampling factor, so the split is a whole pixel at every layer); the spans
    partition ``[0, length)`` and each lies ≥ overlap/2 from the tile's inner edges.
    """
    cuts = [0]
    for s0, s1 in itertools.pairwise(starts):
        mid = (s1 + s0 + tile) / 2
        cuts.append(min(max(quantum * round(mid / quantum), s1), s0 + tile))
    cuts.append(length)
    return {s: (cuts[i] - s, cuts[i + 1] - s) for i, s in enumerate(starts)}


def _downsampled_copy(x: torch.Tensor, size: tuple[int, int], quantum: int) -> torch.Tensor:
    """``x`` shrunk to fit ``size`` (sides multiples of ``quantum``), per-channel mean/std matched to ``x``.

    Nearest-exact keeps values that occur in ``x`` (no blur narrowing the distribution); the
    mean/std match undoes what shift the subsampling leaves (as OSEDiff's fast mode does).
    """
    h, w = x.shape[-2:]
    s = min(size[0] / h, size[1] / w)
    out_size = (max(quantum, int(h * s) // quantum * quantum), max(quantum, int(w * s) // quantum * quantum))
    small = F.interpolate(x, size=out_size, mode="nearest-exact")
    std_full, mean_full = torch.std_mean(x.float(), dim=(-2, -1), keepdim=True)
    std_small, mean_small = torch.std_mean(small.float(), dim=(-2, -1), keepdim=True)
    matched = (small.float() - mean_small) / std_small.clamp_min(1e-6) * std_full + mean_full
    lo = x.amin(dim=(-2, -1), keepdim=True).float()
    hi = x.amax(dim=(-2, -1), keepdim=True).float()
    return torch.minimum(torch.maximum(matched, lo), hi).to(x.dtype)


def tiled_with_norm_stats(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    norm_modules: list[torch.nn.Module],
    *,
    tile: int,
    overlap: int,
    scale: int | Fraction,
    quantum: int,
    tiling: SDTiling,
    norm_stats: NormStats,
    blend: BlendSpec = "owned",
) -> torch.Tensor:
    """:func:`tiled_apply` of ``fn`` with the GroupNorms inside ``norm_modules`` on whole-image statistics.

    ``quantum``: the largest down-sampling inside ``fn`` (tile borders and owned regions are
    multiples of it). An input that fits in one tile is run untiled. See the module docstring
    for the ``norm_stats`` modes.
    """
    if norm_stats not in NORM_STATS:
        raise ValueError(f"norm_stats must be one of {', '.join(NORM_STATS)}, got {norm_stats!r}")
    b, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    if (th, tw) == (h, w):
        return fn(x)  # one tile is the whole input: the untiled call, exact
    # an axis the tile covers whole has one tile (no overlap, no padding)
    ov = (overlap if th < h else 0, overlap if tw < w else 0)
    grid = plan_tiles(h, w, (th, tw), overlap=ov)
    off_grid = [v for v in (th, tw, *grid.tops, *grid.lefts) if v % quantum]
    if off_grid:
        raise ValueError(
            f"tile size/overlap put tile borders at {off_grid[:4]}, not multiples of the VAE factor {quantum}; "
            f"choose tile and overlap divisible by {quantum}"
        )
    span_y = _owned_spans(grid.tops, th, h, quantum)
    span_x = _owned_spans(grid.lefts, tw, w, quantum)
    stats = GroupNormStats(norm_modules)

    def run(tiles: torch.Tensor, positions: list[TilePosition]) -> torch.Tensor:
        stats.rows = OwnedRows(
            images=tuple(p.image for p in positions),
            rects=tuple(span_y[p.top] + span_x[p.left] for p in positions),
            tile_h=th,
            tile_w=tw,
        )
        return fn(tiles)

    def each_tile_batch() -> Iterator[tuple[list[tuple[int, int]], torch.Tensor, list[TilePosition]]]:
        corners = list(grid)
        for first in range(0, len(corners), tiling.tile_batch_size):
            chunk = corners[first : first + tiling.tile_batch_size]
            tiles = torch.cat([x[:, :, t : t + th, l : l + tw] for t, l in chunk])
            yield chunk, tiles, [TilePosition(i, t, l) for t, l in chunk for i in range(b)]

    def statistics_pass() -> None:
        """Every tile once, outputs dropped: only the GroupNorm sums are kept."""
        for _, tiles, positions in each_tile_batch():
            try:
                run(tiles, positions)
            except StopForward:
                pass
        stats.freeze()

    def assemble() -> torch.Tensor:
        if blend != "owned":
            return tiled_apply(
                run,
                x,
                tile=(th, tw),
                overlap=ov,
                scale=scale,
                tile_batch_size=tiling.tile_batch_size,
                blend=blend,
                with_positions=True,
            )
        s = Fraction(scale)
        px = lambda v: int(v * s)  # tile borders are multiples of the quantum: whole pixels
        out: torch.Tensor | None = None
        for chunk, tiles, positions in each_tile_batch():
            y = run(tiles, positions)
            if out is None:
                out = y.new_empty(b, y.shape[1], px(h), px(w))
            for k, (t, l) in enumerate(chunk):
                (a, bb), (c, d) = span_y[t], span_x[l]
                out[:, :, px(t + a) : px(t + bb), px(l + c) : px(l + d)] = y[
                    k * b : (k + 1) * b, :, px(a) : px(bb), px(c) : px(d)
                ]
            del y
        assert out is not None
        return out

    if norm_stats == "tile" or not len(stats):
        stats.norms = []  # nothing to take over: plain per-tile GroupNorm
    with stats.active():
        if norm_stats == "estimate" and len(stats):
            stats.record, stats.rows = True, None
            fn(_downsampled_copy(x, (th, tw), quantum))
            stats.freeze()
        elif norm_stats == "exact" and len(stats):  # GroupNorm k from a pass that stops there
            stats.rows = None
            fn(x[:1, :, :th, :tw])  # learn the call order (per-tile statistics; output unused)
            stats.record = True
            for norm in list(stats.order):
                stats.only = stats.stop_after = norm
                statistics_pass()
            stats.only = stats.stop_after = None
        stats.record = False
        return assemble()


def _check_sd_vae_layout(vae: AutoencoderKL) -> None:
    for part, names in (
        (vae.encoder, ("conv_in", "down_blocks", "mid_block", "conv_norm_out", "conv_act", "conv_out")),
        (vae.decoder, ("conv_in", "mid_block", "up_blocks", "conv_norm_out", "conv_act", "conv_out")),
    ):
        missing = [n for n in names if not hasattr(part, n)]
        if missing:
            raise TypeError(
                f"tiled VAE needs diffusers' AutoencoderKL Encoder/Decoder layout; {type(part).__name__} lacks {missing}"
            )


def _vae_factor(vae: AutoencoderKL) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def tiled_vae_moments(
    vae: AutoencoderKL, x01: torch.Tensor, tiling: SDTiling, *, norm_stats: NormStats | None = None
) -> torch.Tensor:
    """The encoder's posterior parameters (``latent_dist.parameters``: mean ‖ log-variance, B×2C×H/8×W/8)
    of images in [0, 1], tiled; for callers that draw the posterior sample themselves (injected noise).

    ``norm_stats`` overrides ``tiling.norm_stats`` (module docstring).
    """
    _check_sd_vae_layout(vae)
    enc, f = vae.encoder, _vae_factor(vae)
    # the trailing down blocks without a downsampler already run at latent resolution: whole
    n_tiled = len(enc.down_blocks)
    while n_tiled > 0 and getattr(enc.down_blocks[n_tiled - 1], "downsamplers", None) is None:
        n_tiled -= 1
    tiled_blocks, whole_blocks = enc.down_blocks[:n_tiled], enc.down_blocks[n_tiled:]

    def down(tiles: torch.Tensor) -> torch.Tensor:  # full → latent resolution: local, tiled
        tiles = enc.conv_in(tiles)
        for block in tiled_blocks:
            tiles = block(tiles)
        return tiles

    h = tiled_with_norm_stats(
        down,
        (2 * x01 - 1).to(dtype=vae.dtype),
        [tiled_blocks],
        tile=tiling.pixel_tile,
        overlap=tiling.pixel_overlap,
        scale=Fraction(1, f),
        quantum=f,
        tiling=tiling,
        norm_stats=norm_stats or tiling.norm_stats,
        blend=tiling.vae_blend,
    )
    # latent resolution, whole: the last down block, the mid block (attention: every position
    # with every other) and the output norm see the whole latent-size map, as untiled
    for block in whole_blocks:
        h = block(h)
    h = enc.conv_out(enc.conv_act(enc.conv_norm_out(enc.mid_block(h))))
    return vae.quant_conv(h) if vae.quant_conv is not None else h


@torch.no_grad()
def tiled_vae_encode(
    vae: AutoencoderKL,
    x01: torch.Tensor,
    tiling: SDTiling,
    *,
    sample: bool = False,
    generator: torch.Generator | list[torch.Generator] | None = None,
    norm_stats: NormStats | None = None,
) -> torch.Tensor:
    """Tiled :func:`srbench.nn.sd.vae_encode`: images in [0, 1] → scaled latents.

    The posterior is drawn once over the whole latent (same generator use as untiled).
    ``norm_stats`` overrides ``tiling.norm_stats`` (module docstring).
    """
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    posterior = DiagonalGaussianDistribution(tiled_vae_moments(vae, x01, tiling, norm_stats=norm_stats))
    z = posterior.sample(generator=generator) if sample else posterior.mode()
    return (z - _shift(vae)) * vae.config.scaling_factor


def tiled_latent_apply(
    fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, tiling: SDTiling, **kwargs: Any
) -> torch.Tensor:
    """Latent → latent function (``fn`` maps N×C×h×w to N×C'×h×w) on overlapping latent tiles."""
    return tiled_apply(
        fn,
        z,
        tile=tiling.latent_tile,
        overlap=tiling.latent_overlap,
        tile_batch_size=tiling.tile_batch_size,
        blend=tiling.blend,
        **kwargs,
    )


@torch.no_grad()
def tiled_vae_decode(
    vae: AutoencoderKL,
    z: torch.Tensor,
    tiling: SDTiling,
    *,
    clamp: bool = True,
    norm_stats: NormStats | None = None,
) -> torch.Tensor:
    """Tiled :func:`srbench.nn.sd.vae_decode`: scaled latents → images in [0, 1].

    ``norm_stats`` overrides ``tiling.norm_stats`` (module docstring).
    """
    _check_sd_vae_layout(vae)
    dec, f = vae.decoder, _vae_factor(vae)
    h = (z / vae.config.scaling_factor + _shift(vae)).to(dtype=vae.dtype)
    if vae.post_quant_conv is not None:
        h = vae.post_quant_conv(h)
    # latent resolution, whole: the mid block (attention: every position with every other) and
    # the first up block's resnets (before its upsampler) see the whole latent-size map, as untiled
    h = dec.mid_block(dec.conv_in(h), None)
    first = dec.up_blocks[0]
    for resnet in first.resnets:
        h = resnet(h, None)

    def up(tiles: torch.Tensor) -> torch.Tensor:  # latent → full resolution: local, tiled
        for upsampler in first.upsamplers or ():
            tiles = upsampler(tiles)
        for block in dec.up_blocks[1:]:
            tiles = block(tiles)
        return dec.conv_out(dec.conv_act(dec.conv_norm_out(tiles)))

    x = tiled_with_norm_stats(
        up,
        h,
        [dec.up_blocks[1:], dec.conv_norm_out],
        tile=tiling.latent_tile,
        overlap=tiling.latent_overlap,
        scale=f,
        quantum=1,
        tiling=tiling,
        norm_stats=norm_stats or tiling.norm_stats,
        blend=tiling.vae_blend,
    )
    x = (x + 1) / 2
    return x.clamp(0, 1) if clamp else x
