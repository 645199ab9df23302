"""Peak signal-to-noise ratio per image, in the conventions of BasicSR, pyiqa and piq."""

from __future__ import annotations

import torch
from torch import Tensor

from srbench.metrics.color import Rounding
from srbench.metrics.planes import Space, check_pair, scored_planes


def psnr(
    sr: Tensor,
    hr: Tensor,
    *,
    crop: int,
    space: Space = "y",
    round_y: bool = False,
    rounding: Rounding = "half_away",
    data_range: float = 255.0,
    eps: float = 0.0,
    dtype: torch.dtype = torch.float64,
    gray: Tensor | None = None,
) -> Tensor:
    """PSNR = 10 log10(peak² / (MSE + eps)), one value per image, MSE pooled over C×H×W.

    Defaults are BasicSR's ``calculate_psnr`` (protocols.md §1.1): 8-bit inputs, float64,
    peak 255, no epsilon, so identical images give ``+inf``. pyiqa and piq use peak 1,
    ``eps=1e-8`` (identical images → 80 dB) and the input dtype (float32).

    Args:
        sr, hr: B×C×H×W float in [0, 1] (C ∈ {1, 3}); quantized to 8 bits here. NaN in ``sr``
            gives NaN for that image.
        crop: border pixels dropped on each side.
        space: ``"y"`` (studio BT.601 luma) or ``"rgb"``.
        round_y, rounding: round the luma to 8 bits (``matlab`` and ``pyiqa-ycbcr`` SSIM).
        data_range: the peak (255 or 1); the planes are scaled to [0, data_range].
        eps: added to the MSE (pyiqa/piq: 1e-8 on the [0, 1] scale).
        dtype: working precision.
        gray: optional B bool mask of grey images replicated to RGB (see ``scored_planes``).

    Returns:
        B float64 tensor on the inputs' device.
    """
    check_pair(sr, hr)
    kw = {"crop": crop, "space": space, "round_y": round_y, "rounding": rounding, "dtype": dtype,
              "data_range": data_range, "gray": gray}
    return psnr_from_planes(scored_planes(sr, **kw), scored_planes(hr, **kw), data_range=data_range, eps=eps)


def psnr_from_planes(x: Tensor, y: Tensor, *, data_range: float = 255.0, eps: float = 0.0) -> Tensor:
    """PSNR of B×C×H×W planes in [0, data_range], computed in their dtype; B float64."""
    mse = (x - y).pow_(2).mean(dim=(1, 2, 3))
    return (10.0 * torch.log10(data_range**2 / (mse + eps))).to(torch.float64)
