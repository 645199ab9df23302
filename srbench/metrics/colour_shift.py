"""Colour shift: how far the SR's colours drift from the LR's, in CIEDE2000 (ΔE00) units.

    colour_shift(sr, lr, scale) = mean over pixels of ΔE00( Lab(G_σ * SR), Lab(G_σ * up(LR)) )

``up`` is bicubic upsampling of the LR to the SR size (torch ``interpolate``, bicubic,
``align_corners=False``); ``G_σ`` a Gaussian low-pass with σ = scale (pixels of the SR grid),
applied to both sides so that only the colour the LR carries is compared — the detail the SR
adds above the LR's band is not a colour shift. ΔE00 is scikit-image's ``deltaE_ciede2000``
(Sharma et al. 2005, eq. 1–23), Lab from ``skimage.color.rgb2lab`` (sRGB, D65). An SR equal to
``up(LR)`` scores exactly 0; a colour cast raises it. Lower is better. Metric id:
``colour_shift@ciede2000-gauss-sigma<scale>``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

METRIC = "colour_shift"


def metric_id(scale: float) -> str:
    return f"{METRIC}@ciede2000-gauss-sigma{scale:g}"


def upsample_lr(lr: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic up-sampling of B×3×h×w LR to ``size`` (clamped to [0, 1])."""
    return F.interpolate(lr.float(), size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def colour_shift(sr: Tensor, lr: Tensor, scale: float) -> Tensor:
    """Mean ΔE00 per image between low-passed SR and low-passed bicubic-up LR; B float64."""
    from scipy.ndimage import gaussian_filter
    from skimage.color import deltaE_ciede2000, rgb2lab

    if sr.shape[1] != 3 or lr.shape[1] != 3:
        raise ValueError(f"colour shift needs RGB images, got SR {tuple(sr.shape)} and LR {tuple(lr.shape)}")
    up = upsample_lr(lr.to(sr.device), tuple(sr.shape[-2:]))
    sigma = (float(scale), float(scale), 0.0)  # blur H and W, never across channels
    out = []
    for a, b in zip(sr.clamp(0, 1).double().cpu(), up.double().cpu()):
        la = rgb2lab(gaussian_filter(a.permute(1, 2, 0).numpy(), sigma, mode="reflect"))
        lb = rgb2lab(gaussian_filter(b.permute(1, 2, 0).numpy(), sigma, mode="reflect"))
        out.append(float(np.mean(deltaE_ciede2000(la, lb))))
    return torch.tensor(out, dtype=torch.float64)
