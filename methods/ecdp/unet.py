"""ECDP's score network: a conditional U-Net with an ε-head and an x₀-head.

Re-implementation of ``lib/model/unet.py`` of Yuan-Yutao/ECDP (commit 1696fa1). Module and
parameter names follow the authors' code exactly (``in_conv.network.weight``,
``downs.0.extra_in.network.weight``, ``ups.3.upconv.1.network.weight``, ``time_in.0.weight``, …)
so a checkpoint trained with their repository loads key-for-key; the full key/shape list is
checked in ``tests/test_ecdp_checkpoint.py``.

Shape of the network (defaults = the published model, 26,039,302 parameters):

* time τ ∈ [0, 300] → 128-d sinusoidal embedding → Linear 128→512, SiLU, Linear 512→512, SiLU;
* ``in_conv`` 3×3, 3 → 64 on x_τ only (the LR image is *not* concatenated);
* encoder levels with channels (64, 128, 256, 256), 2 ResnetBlocks each, a stride-2 conv after
  every level but the last; 2 middle ResnetBlocks; decoder levels of 3 ResnetBlocks on
  ``concat(x, skip)``, nearest-×2 + conv between levels; GroupNorm(16) → SiLU → conv 3×3 to 6
  channels = (ε̂, x̂₀);
* every ResnetBlock adds a 1×1 projection of the LR-encoder features, bilinearly resized to the
  block's resolution. No attention, no dropout.

What differs from the authors' module (numerically the same function):

* the LR features are resized once per resolution for a whole ODE solve instead of once per
  block per network call (:meth:`UNet.prepare_condition`), and at inference their 1×1
  projections are precomputed too (they do not depend on x or τ);
* the feature resize is ``F.interpolate(..., "bilinear", align_corners=False)`` with an explicit
  ``antialias`` flag (see :func:`resize_like_torchvision`): the authors call torchvision's
  ``resize``, whose antialias default changed in torchvision 0.17.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ECDPConfigError


def resize_like_torchvision(
    x: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool
) -> torch.Tensor:
    """``torchvision.transforms.functional.resize`` on a tensor, with the antialias flag explicit.

    torchvision's tensor resize is ``F.interpolate(mode, align_corners=False, antialias=...)``;
    before 0.17 it did not antialias by default, from 0.17 on it does. Antialiasing changes
    downsampling (feature maps going to coarser U-Net levels) and — for bicubic — upsampling
    too, because PyTorch's antialiased bicubic kernel uses a = −0.5 instead of −0.75.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x  # torchvision returns the input unchanged as well
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=antialias)


class InitScaledConv2d(nn.Module):
    """``nn.Conv2d`` with zero bias and weights multiplied by ``init_scale`` at init.

    The conv sits in ``self.network`` to keep the authors' parameter names (``MyConv2d``).
    """

    def __init__(self, *args, init_scale: float = 1.0, **kwargs) -> None:
        super().__init__()
        self.network = nn.Conv2d(*args, **kwargs)
        with torch.no_grad():
            self.network.weight.mul_(init_scale)
            if self.network.bias is not None:
                self.network.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def group_count(channels: int) -> int:
    """GroupNorm groups of a ResnetBlock: ``min(C // 4, 32)`` as in the authors' code."""
    return min(channels // 4, 32)


class ResnetBlock(nn.Module):
    """y = conv2(SiLU(GN(conv1(SiLU(GN(x))) + W_t·emb + cond))); return skip(x) + y.

    ``cond`` is the 1×1 projection ``extra_in`` of the LR features at this block's resolution,
    computed by the caller (:meth:`UNet.prepare_condition` / :meth:`UNet.forward`).
    """

    def __init__(self, in_channels: int, out_channels: int, time_channels: int, cond_channels: int) -> None:
        super().__init__()
        self.time_in = nn.Linear(time_channels, out_channels)
        self.extra_in = InitScaledConv2d(cond_channels, out_channels, 1)
        self.norm1 = nn.GroupNorm(group_count(in_channels), in_channels)
        self.conv1 = InitScaledConv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(group_count(out_channels), out_channels)
        # A near-zero second conv starts each block close to the identity.
        self.conv2 = InitScaledConv2d(out_channels, out_channels, 3, padding=1, init_scale=1e-3)
        if in_channels != out_channels:
            self.skip: nn.Module = InitScaledConv2d(in_channels, out_channels, 1, init_scale=0.1)
        else:
            self.skip = nn.Identity()

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            y = self.conv1(F.silu(self.norm1(x)))
            y = y + self.time_in(time_embedding)[:, :, None, None] + cond
            y = self.conv2(F.silu(self.norm2(y)))
            return self.skip(x) + y
        # inference: the same arithmetic in place on fresh intermediates (fewer allocations)
        y = self.conv1(F.silu(self.norm1(x), inplace=True))
        y += self.time_in(time_embedding)[:, :, None, None]
        y += cond
        y = self.conv2(F.silu(self.norm2(y), inplace=True))
        return y.add_(self.skip(x))


class Down(nn.Module):
    """Stride-2 3×3 conv (spatial size h → ⌈h/2⌉)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.downconv = InitScaledConv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downconv(x)


class Up(nn.Module):
    """Nearest ×2 then 3×3 conv; the following skip concat crops odd sizes back."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.upconv = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            InitScaledConv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upconv(x)


def sinusoidal_embedding(
    tau: torch.Tensor, channels: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """[sin(τ·f_k), cos(τ·f_k)], f_k = exp(−ln(10⁴)·k/(channels/2 − 1)), k = 0…channels/2−1.

    ``tau``: shape () or (N,), network time in [0, 300]. Returns (N, channels) in ``dtype``
    (float32 as the authors; float64 for a float64 model, whose RHS must be smooth in τ to 1e-16).
    """
    half = channels // 2
    freqs = torch.exp(torch.arange(half, device=tau.device, dtype=dtype) * (-math.log(10000.0) / (half - 1)))
    args = tau.reshape(-1).to(dtype)[:, None] * freqs[None, :]
    return torch.cat([args.sin(), args.cos()], dim=1)


def crop_concat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Concatenate ``[x, skip]`` on channels after cropping x (upsampled, ≥ skip) to the skip's size."""
    return torch.cat([x[:, :, : skip.shape[2], : skip.shape[3]], skip], dim=1)


@dataclass
class UNetCondition:
    """LR-encoder features prepared for one image size (constant during an ODE solve).

    ``resized[level]``: the features bilinearly resized to U-Net level ``level``'s resolution.
    ``projected``: when set, ``projected[i]`` is ResnetBlock i's ``extra_in(resized)`` — only valid
    while the projection weights are fixed (inference), since it bypasses autograd through them.
    """

    resized: list[torch.Tensor]
    projected: list[torch.Tensor] | None = None


class UNet(nn.Module):
    """ECDP's conditional score U-Net; ``forward`` returns (ε̂, x̂₀), each B×C×H×W.

    Args:
        in_channels: channels of x_τ (3).
        time_channels: sinusoidal embedding size (128); the MLP widens it ×4.
        cond_channels: channels of the LR-encoder features (4 selected RRDB blocks × 64 = 256).
        out_channels: 2·in_channels (ε-head then x₀-head).
        channels, num_blocks: per-level widths and encoder ResnetBlocks (decoder uses +1).
        antialias: antialias flag of the feature resize (see :func:`resize_like_torchvision`).
    """

    def __init__(
        self,
        in_channels: int = 3,
        time_channels: int = 128,
        cond_channels: int = 256,
        out_channels: int = 6,
        channels: Sequence[int] = (64, 128, 256, 256),
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != len(num_blocks):
            raise ECDPConfigError(
                f"ECDP: method.unet.channels {list(channels)} and method.unet.num_blocks {list(num_blocks)} "
                "must have the same length (one entry per U-Net level)"
            )
        self.time_channels = time_channels
        self.antialias = antialias
        self.num_levels = len(channels)
        emb = time_channels * 4
        self.time_in = nn.Sequential(nn.Linear(time_channels, emb), nn.SiLU(), nn.Linear(emb, emb), nn.SiLU())

        self.in_conv = InitScaledConv2d(in_channels, channels[0], 3, padding=1)
        prev = channels[0]
        skip_channels = [prev]
        #: U-Net level of each ResnetBlock, in execution order (downs, mid, ups)
        self._block_levels: list[int] = []

        self.downs = nn.ModuleList()
        for level, (ch, n) in enumerate(zip(channels, num_blocks)):
            for _ in range(n):
                self.downs.append(ResnetBlock(prev, ch, emb, cond_channels))
                self._block_levels.append(level)
                skip_channels.append(ch)
                prev = ch
            if level < self.num_levels - 1:
                self.downs.append(Down(prev))
                skip_channels.append(prev)

        last = self.num_levels - 1
        self.mid = nn.ModuleList([ResnetBlock(prev, prev, emb, cond_channels) for _ in range(2)])
        self._block_levels += [last, last]

        self.ups = nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            for _ in range(num_blocks[level] + 1):
                self.ups.append(ResnetBlock(prev + skip_channels.pop(), channels[level], emb, cond_channels))
                self._block_levels.append(level)
                prev = channels[level]
            if level > 0:
                self.ups.append(Up(prev))

        self.out_conv = nn.Sequential(
            nn.GroupNorm(16, prev), nn.SiLU(), InitScaledConv2d(prev, out_channels, 3, padding=1)
        )

    # ------------------------------------------------------------------ conditioning
    def level_sizes(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """Spatial size of each level for an input of ``size`` (stride-2 conv: h → ⌈h/2⌉)."""
        sizes = [tuple(size)]
        for _ in range(self.num_levels - 1):
            h, w = sizes[-1]
            sizes.append(((h + 1) // 2, (w + 1) // 2))
        return sizes

    def resnet_blocks(self) -> list[ResnetBlock]:
        """All ResnetBlocks in execution order (the order of :attr:`UNetCondition.projected`)."""
        mods = [*self.downs, *self.mid, *self.ups]
        return [m for m in mods if isinstance(m, ResnetBlock)]

    def prepare_condition(
        self, feats: torch.Tensor, size: tuple[int, int], *, project: bool
    ) -> UNetCondition:
        """Resize LR features (B×C×h×w) to every level of an x of spatial ``size``, once.

        ``project=True`` also applies every block's 1×1 ``extra_in`` (inference only).
        """
        resized = [
            resize_like_torchvision(feats, s, "bilinear", self.antialias) for s in self.level_sizes(size)
        ]
        projected = None
        if project:
            projected = [
                block.extra_in(resized[level])
                for block, level in zip(self.resnet_blocks(), self._block_levels)
            ]
        return UNetCondition(resized, projected)

    # ------------------------------------------------------------------ forward
    def forward(
        self, x: torch.Tensor, tau: torch.Tensor, cond: UNetCondition | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: B×3×H×W noisy residual x_τ; tau: () / (1,) / (B,) network time in [0, 300];
        cond: raw LR features (B×256×h×w) or a prepared :class:`UNetCondition` for this size.
        Returns (ε̂, x̂₀), each B×3×H×W.
        """
        if not isinstance(cond, UNetCondition):
            cond = self.prepare_condition(cond, tuple(x.shape[-2:]), project=False)
        if tau.dim() == 0:
            tau = tau[None]
        wdtype = self.in_conv.network.weight.dtype
        emb_dtype = torch.float64 if wdtype == torch.float64 else torch.float32
        temb = self.time_in(sinusoidal_embedding(tau, self.time_channels, emb_dtype).to(wdtype))
        blocks = iter(zip(range(len(self._block_levels)), self._block_levels))

        def run_block(block: ResnetBlock, h: torch.Tensor) -> torch.Tensor:
            i, level = next(blocks)
            c = cond.projected[i] if cond.projected is not None else block.extra_in(cond.resized[level])
            return block(h, temb, c)

        h = self.in_conv(x)
        skips = [h]
        for layer in self.downs:
            h = run_block(layer, h) if isinstance(layer, ResnetBlock) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = run_block(layer, h)
        for layer in self.ups:
            h = run_block(layer, crop_concat(h, skips.pop())) if isinstance(layer, ResnetBlock) else layer(h)
        out = self.out_conv(h)
        eps_hat, x0_hat = out.chunk(2, dim=1)
        return eps_hat, x0_hat
