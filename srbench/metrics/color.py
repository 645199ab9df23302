"""8-bit quantization and the BT.601 luma used by every Y-channel SR metric.

Metrics never see raw network floats: an SR output is first quantized the way a saved PNG
would be (protocols.md §1.1), then optionally converted to Y.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

#: ITU-R BT.601 studio-range luma for R, G, B in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B,
#: Y in [16, 235]. The weights are 219 · (0.299, 0.587, 0.114) (protocols.md §1.4).
BT601_Y_WEIGHTS = (65.481, 128.553, 24.966)
BT601_Y_OFFSET = 16.0

Rounding = Literal["half_away", "half_even"]


def quantize_8bit(x: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Clamp to [0, 1] and round to the 256 levels of an 8-bit PNG.

    Args:
        x: any shape, float, nominally in [0, 1]; NaN stays NaN (so the image scores NaN).
        dtype: float dtype of the result (integers up to 255 are exact in every float dtype).

    Returns:
        Same shape, values in {0, 1, …, 255} (not rescaled to [0, 1]).
    """
    # round(255·x) of the exact input value: in float64 whatever the profile's working dtype,
    # so one float output has one 8-bit image (float32 products flip ~1e-5 of the pixels that
    # sit near a half level). torch.round is half-to-even, as numpy's in BasicSR's tensor2img.
    q = x.to(torch.float64, copy=True).clamp_(0.0, 1.0).mul_(255.0).round_()
    return q.to(dtype)


def round_luma(y: Tensor, rounding: Rounding = "half_away") -> Tensor:
    """Round luma to integers: ``half_away`` as MATLAB ``rgb2ycbcr`` on uint8, ``half_even`` as pyiqa.

    194 of the 2^24 8-bit colours have a Y exactly halfway between two integers, and float
    arithmetic puts them a few ulps either side of .5. ``half_away`` adds 1e-9 before flooring
    so they round up as exact arithmetic says (Y > 0, and every other 8-bit colour's Y is at
    least 1/255000 away from a half). ``half_even`` is plain ``torch.round`` on the float value,
    which is what pyiqa does.
    """
    if rounding == "half_away":
        return (y + (0.5 + 1e-9)).floor_()
    if rounding == "half_even":
        return torch.round(y)
    raise ValueError(f"unknown luma rounding {rounding!r}; use 'half_away' or 'half_even'")


def rgb_to_y(x: Tensor, *, round_y: bool = False, rounding: Rounding = "half_away") -> Tensor:
    """Studio-range BT.601 luma, as MATLAB ``rgb2ycbcr`` and BasicSR ``rgb2ycbcr(y_only=True)``.

    Args:
        x: B×3×H×W RGB in [0, 1], float (the result keeps ``x.dtype``).
        round_y: round Y to integers (MATLAB ``rgb2ycbcr`` on uint8 returns uint8 Y; the
            ``matlab`` profile). BasicSR does not round (the ``standard`` profile).
        rounding: how halves round when ``round_y`` (see :func:`round_luma`).

    Returns:
        B×1×H×W luma in [16, 235].
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"rgb_to_y expects B×3×H×W RGB, got shape {tuple(x.shape)}")
    wr, wg, wb = BT601_Y_WEIGHTS
    y = x[:, 0:1] * wr  # in place from here on: this runs on every full-size image
    y.add_(x[:, 1:2], alpha=wg).add_(x[:, 2:3], alpha=wb).add_(BT601_Y_OFFSET)
    return round_luma(y, rounding) if round_y else y
