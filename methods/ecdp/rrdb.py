"""ECDP's LR encoder (an RRDB trunk) and the stage-1 RRDB regressor.

Re-implementation of ``lib/model/rrdb.py`` and ``lib/model/rrdbnet.py`` of Yuan-Yutao/ECDP
(commit 1696fa1), with the authors' parameter names. The Residual-in-Residual Dense Block is
ESRGAN's (Wang et al. 2018, Fig. 4): 5 densely connected 3×3 convs (growth 32) per dense block,
residual scaling 0.2, 3 dense blocks per RRDB. Unlike ESRGAN's RRDBNet, the encoder has no trunk
conv and no global residual: its output is the channel-concatenation of the outputs of the
blocks in ``block_selection``.

Published encoders (conf/ecdp-*-train.yaml): DF2K 23 blocks, select [1, 8, 15, 22]
(16,548,544 params); ImageNet 16, [1, 5, 10, 15] (11,512,576); CelebA 8, [1, 3, 5, 7]
(5,757,184). The regressor trained in stage 1 uses the same trunk with only the last block
selected, plus an upsampling tail (16,661,059 / 11,625,091 / 5,906,627 params).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ECDPConfigError


class ResidualDenseBlock(nn.Module):
    """5 dense 3×3 convs; returns x + 0.2·conv5([x, x1..x4]). All convs scaled ×0.1 at init."""

    def __init__(self, channels: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, growth, 3, padding=1)
        self.conv2 = nn.Conv2d(channels + growth, growth, 3, padding=1)
        self.conv3 = nn.Conv2d(channels + 2 * growth, growth, 3, padding=1)
        self.conv4 = nn.Conv2d(channels + 3 * growth, growth, 3, padding=1)
        self.conv5 = nn.Conv2d(channels + 4 * growth, channels, 3, padding=1)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
                conv.weight.mul_(0.1)
                conv.bias.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat([x, x1], 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat([x, x1, x2], 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat([x, x1, x2, x3], 1)), 0.2)
        x5 = self.conv5(torch.cat([x, x1, x2, x3, x4], 1))
        return x + 0.2 * x5


class RRDBBlock(nn.Module):
    """Residual-in-residual dense block: x + 0.2·RDB₃(RDB₂(RDB₁(x)))."""

    def __init__(self, channels: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.block1 = ResidualDenseBlock(channels, growth)
        self.block2 = ResidualDenseBlock(channels, growth)
        self.block3 = ResidualDenseBlock(channels, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.block3(self.block2(self.block1(x)))


class RRDBEncoder(nn.Module):
    """LR image (B×3×h×w in [0, 1]) → features B×(64·len(block_selection))×h×w.

    Args:
        num_blocks: RRDB blocks in the trunk.
        block_selection: indices of the blocks whose outputs are concatenated (in order).
        num_features: trunk width (64); growth: dense-block growth (32).
    """

    def __init__(
        self,
        num_blocks: int,
        block_selection: Sequence[int],
        in_channels: int = 3,
        num_features: int = 64,
        growth: int = 32,
    ) -> None:
        super().__init__()
        selection = [int(i) for i in block_selection]
        if not selection or min(selection) < 0 or max(selection) >= num_blocks:
            raise ECDPConfigError(
                f"ECDP: method.encoder.block_selection {selection} must index the encoder's blocks "
                f"0..{num_blocks - 1} (method.encoder.num_blocks={num_blocks})"
            )
        self.block_selection = selection
        self.out_channels = num_features * len(selection)
        self.conv_first = nn.Conv2d(in_channels, num_features, 3, padding=1)
        self.blocks = nn.ModuleList([RRDBBlock(num_features, growth) for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_first(x)
        selected = []
        last = max(self.block_selection)
        for i, block in enumerate(self.blocks):
            if i > last:  # blocks after the last selected one cannot change the output
                break
            x = block(x)
            if i in self.block_selection:
                selected.append(x)
        return torch.cat(selected, dim=1)


class RRDBRegressor(nn.Module):
    """Stage-1 regressor: RRDB trunk (last block only) + tail; LR → HR image directly.

    Tail (authors' ``final``): log2(sr) × [nearest ×2, conv 3×3, LeakyReLU 0.2], conv 3×3,
    LeakyReLU 0.2, conv 3×3 → 3. Parameter names: ``rrdb.*``, ``final.<index>.*``.
    """

    def __init__(
        self, num_blocks: int, sr_factor: int, in_channels: int = 3, num_features: int = 64, growth: int = 32
    ):
        super().__init__()
        if sr_factor < 2 or 2 ** round(math.log2(sr_factor)) != sr_factor:
            raise ECDPConfigError(f"ECDP regressor: method.scale must be a power of two ≥ 2, got {sr_factor}")
        self.sr_factor = sr_factor
        self.rrdb = RRDBEncoder(num_blocks, [num_blocks - 1], in_channels, num_features, growth)
        layers: list[nn.Module] = []
        for _ in range(round(math.log2(sr_factor))):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(num_features, num_features, 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
        layers += [
            nn.Conv2d(num_features, num_features, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(num_features, in_channels, 3, padding=1),
        ]
        self.final = nn.Sequential(*layers)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """lr: B×3×h×w in [0, 1] → B×3×(h·sr)×(w·sr), not clamped."""
        return self.final(self.rrdb(lr))
