"""StyleGAN2-style layers of IDM in plain torch (the authors' fused CUDA ops re-expressed).

FusedLeakyReLU(x) = leaky_relu(x + b, 0.2)·√2; the blur is the normalised [1,3,1]⊗[1,3,1]
kernel (sum 25) applied depthwise with padding 1 (spec §1.2, pitfall 8).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, 0.2) * math.sqrt(2.0)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


class Blur131(nn.Module):
    """Depthwise blur with the normalised [1,3,1] outer-product kernel, padding 1 (no params)."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 1.0])
        k = k[None, :] * k[:, None]
        self.register_buffer("kernel", k / k.sum(), persistent=False)

    def forward(self, x):
        c = x.shape[1]
        w = self.kernel.to(x.dtype).expand(c, 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), w, groups=c)


class EqualConv2d(nn.Module):
    """Conv whose weight is scaled by 1/√fan_in at run time (StyleGAN2 equalised lr)."""

    def __init__(self, cin, cout, k, stride=1, padding=0, bias=True):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.scale = 1.0 / math.sqrt(cin)
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.ones(cout))  # bias_init_val=1 (orthogonal init zeroes it)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


class StyleConv(nn.Sequential):
    """[blur] → EqualConv3×3 → [FusedLeakyReLU]; indices match the authors' StyleLayer."""

    def __init__(self, cin, cout, downsample=False, activate=True):
        layers: list[nn.Module] = []
        if downsample:
            layers.append(Blur131())
        layers.append(EqualConv2d(cin, cout, 3, stride=2 if downsample else 1, padding=1,
                                  bias=not activate))
        if activate:
            layers.append(FusedLeakyReLU(cout))
        super().__init__(*layers)
