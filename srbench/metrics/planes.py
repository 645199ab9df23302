"""From an (SR, HR) pair of float images to the 8-bit planes a PSNR/SSIM is computed on.

One order for every profile (protocols.md §1.1): shape check → quantize to 8 bits → crop the
border → RGB or Y → working dtype and peak. Profiles differ only in the arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from srbench.errors import UserError
from srbench.metrics.color import Rounding, quantize_8bit, rgb_to_y

Space = Literal["y", "rgb"]


class ImageTooSmall(UserError, ValueError):
    """An image with no pixels left after the metric's border crop."""


class ShapeMismatchError(UserError, ValueError):
    """SR and HR (or re-degraded SR and LR) differ in shape; ``str(err)`` is one line."""


def check_pair(
    sr: Tensor,
    ref: Tensor,
    *,
    scale: float | None = None,
    names: Sequence[str] | None = None,
    what: str = "SR and HR",
) -> None:
    """Raise :class:`ShapeMismatchError` unless ``sr`` and ``ref`` are B×C×H×W of one shape.

    Never crops silently (InvSR and ECDP do): the message names both shapes and, when the
    HR is larger than the SR by less than ``scale`` on both axes, says why it probably is.
    """
    if sr.ndim != 4 or ref.ndim != 4:
        raise ShapeMismatchError(
            f"{what} must be B×C×H×W tensors, got shapes {tuple(sr.shape)} and {tuple(ref.shape)}"
        )
    if sr.shape == ref.shape:
        return
    where = f" for {', '.join(names)}" if names else ""
    hint = ""
    dh, dw = ref.shape[-2] - sr.shape[-2], ref.shape[-1] - sr.shape[-1]
    if scale is not None and 0 <= dh < scale and 0 <= dw < scale and (dh or dw):
        hint = f"; HR is not modcropped to scale × LR (x{scale:g}): crop HR to a multiple of {scale:g}"
    raise ShapeMismatchError(
        f"{what} shapes differ{where}: {tuple(sr.shape)} vs {tuple(ref.shape)}{hint}"
    )


def crop_for_scale(scale: float) -> int:
    """BasicSR's border: ``crop_border = scale``, rounded up for non-integer scales."""
    return math.ceil(float(scale) - 1e-9)


def crop_border(x: Tensor, crop: int) -> Tensor:
    """Drop ``crop`` pixels on each side of the last two axes."""
    if crop == 0:
        return x
    if crop < 0:
        raise ValueError(f"crop border must be >= 0, got {crop}")
    h, w = x.shape[-2:]
    if 2 * crop >= min(h, w):
        raise ImageTooSmall(f"image of {w}×{h} pixels is too small for the metric's border crop of {crop} "
                            "(crop = scale): nothing is left to score")
    return x[..., crop:-crop, crop:-crop]


def scored_planes(
    x: Tensor,
    *,
    crop: int,
    space: Space,
    round_y: bool = False,
    rounding: Rounding = "half_away",
    dtype: torch.dtype = torch.float64,
    data_range: float = 255.0,
    gray: Tensor | None = None,
) -> Tensor:
    """Quantize, crop and colour-convert one side of a pair.

    Args:
        x: B×C×H×W float in [0, 1], C ∈ {1, 3}.
        crop: border pixels dropped on each side (before colour conversion, as BasicSR).
        space: ``"y"`` → B×1 studio luma (C=1 images are scored on their channel as is, as
            BasicSR's ``to_y_channel``); ``"rgb"`` → all channels.
        round_y / rounding: luma rounding (see :func:`srbench.metrics.color.rgb_to_y`).
        dtype: working precision of the colour conversion and everything after it.
        data_range: peak of the returned planes: 255 (BasicSR) or 1 (pyiqa, piq).
        gray: optional B bool; True marks a grey image replicated to 3 channels. In ``"y"``
            space it is scored on its single grey channel instead of studio Y, exactly as
            if it had been loaded as one channel (see :mod:`srbench.metrics` for why). A
            colour SR of a grey image is reduced with MATLAB's ``rgb2gray`` (see
            :func:`_grey_plane`), which is the identity on grey pixels.

    Returns:
        B×C'×H'×W' in ``dtype``, values in [0, data_range].
    """
    if x.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got shape {tuple(x.shape)}")
    q = quantize_8bit(crop_border(x, crop), dtype)
    if space == "y":
        if q.shape[1] == 3:
            flagged = gray is not None and bool(gray.any())
            grey_channel = _grey_plane(q, round_y) if flagged else None
            # Colour conversion runs on [0, 1] inputs, as pyiqa/BasicSR feed it.
            planes = rgb_to_y(q.div_(255.0), round_y=round_y, rounding=rounding)
            if flagged:
                mask = gray.to(device=q.device, dtype=torch.bool).view(-1, 1, 1, 1)
                planes = torch.where(mask, grey_channel, planes)
        else:
            planes = q
    elif space == "rgb":
        planes = q
    else:
        raise ValueError(f"unknown colour space {space!r}; use 'y' or 'rgb'")
    return planes if data_range == 255.0 else planes.div_(255.0 / data_range)


#: MATLAB ``rgb2gray`` weights (the inverse-NTSC row of its YIQ matrix), full range.
_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _grey_plane(q: Tensor, round_y: bool) -> Tensor:
    """B×1 grey plane of 8-bit RGB ``q`` (0..255): the channel where R = G = B, else ``rgb2gray``.

    A method may return a slightly coloured SR for a grey input; scoring its red channel alone
    would be arbitrary. MATLAB's ``rgb2gray`` (rounded to 8 bits for the rounding profiles,
    as on uint8) is what the evaluation scripts would apply to it.
    """
    w = torch.tensor(_RGB2GRAY, dtype=q.dtype, device=q.device).view(1, 3, 1, 1)
    luma = (q * w).sum(1, keepdim=True)
    if round_y:
        luma = torch.sign(luma) * torch.floor(luma.abs() + 0.5)  # MATLAB rounds half away from zero
    is_grey = (q[:, :1] == q[:, 1:2]) & (q[:, 1:2] == q[:, 2:3])
    return torch.where(is_grey, q[:, :1], luma)

