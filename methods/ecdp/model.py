"""ECDP's network: LR encoder + score U-Net on the scaled residual (``lib/model/ecdp.py``).

Parameter names are the authors' minus their ``ConditionalDensityModel`` wrapper prefix
``model.``: ``diffusion.network.*`` (U-Net), ``diffusion.{betas,alphas,alpha_bars}`` (schedule
tables, persistent buffers in their state dict), ``lr_feats.*`` (RRDB encoder).

Two resizes, kept apart on purpose:

* the *dataset* makes LR from HR with MATLAB-style bicubic (``srbench.data.resize.imresize``);
* the *model* upsamples LR with PyTorch bicubic, ``B(LR)`` below (authors: torchvision
  ``resize``), to form the residual mean. It is part of the model, not of the data protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .rrdb import RRDBEncoder
from .sde import VPSchedule
from .unet import UNet, UNetCondition, resize_like_torchvision


class Diffusion(nn.Module):
    """Score network + VP schedule tables (authors' ``Diffusion`` module, its state-dict layout)."""

    def __init__(self, network: UNet, schedule: VPSchedule | None = None) -> None:
        super().__init__()
        self.network = network
        self.schedule = schedule = schedule or VPSchedule()
        for name, table in schedule.discrete_tables().items():
            self.register_buffer(name, table)

    def forward(self, x_t: torch.Tensor, tau: torch.Tensor, cond: UNetCondition | torch.Tensor):
        """(ε̂, x̂₀) = network(x_τ, τ, LR features)."""
        return self.network(x_t, tau, cond)


class ECDPNet(nn.Module):
    """The trainable ECDP model.

    Args:
        encoder_blocks, block_selection: RRDB encoder depth and selected blocks (per dataset).
        unet_channels, unet_blocks, time_channels: U-Net size (defaults = published).
        residual_scale: 1/σ_data; the diffusion runs on x₀ = residual_scale·(HR − B(LR)) (5).
        antialias: antialias flag of both torchvision-style resizes (B(LR) and feature resize);
            False reproduces torchvision < 0.17, which the published code was written against.
    """

    def __init__(
        self,
        encoder_blocks: int = 23,
        block_selection: Sequence[int] = (1, 8, 15, 22),
        unet_channels: Sequence[int] = (64, 128, 256, 256),
        unet_blocks: Sequence[int] = (2, 2, 2, 2),
        time_channels: int = 128,
        encoder_features: int = 64,
        encoder_growth: int = 32,
        residual_scale: float = 5.0,
        antialias: bool = False,
        schedule: VPSchedule | None = None,
    ) -> None:
        super().__init__()
        self.lr_feats = RRDBEncoder(encoder_blocks, block_selection, 3, encoder_features, encoder_growth)
        unet = UNet(3, time_channels, self.lr_feats.out_channels, 6, unet_channels, unet_blocks, antialias)
        self.diffusion = Diffusion(unet, schedule)
        self.residual_scale = residual_scale
        self.antialias = antialias

    @property
    def unet(self) -> UNet:
        return self.diffusion.network

    def upsample_lr(self, lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """B(LR): PyTorch bicubic (align_corners=False), no clamp — the residual's mean."""
        return resize_like_torchvision(lr, size, "bicubic", self.antialias)

    def to_residual(self, hr: torch.Tensor, lr_up: torch.Tensor) -> torch.Tensor:
        """x₀ = scale·(HR − B(LR))."""
        return (hr - lr_up) * self.residual_scale

    def from_residual(self, x: torch.Tensor, lr_up: torch.Tensor) -> torch.Tensor:
        """HR = x/scale + B(LR) (not clamped; metrics code clamps)."""
        return x / self.residual_scale + lr_up

    def condition(self, lr: torch.Tensor, size: tuple[int, int], *, project: bool) -> UNetCondition:
        """Run the LR encoder once and prepare its features for an output of ``size``."""
        return self.unet.prepare_condition(self.lr_feats(lr), size, project=project)
