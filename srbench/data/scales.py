"""Scale factors, integer or not: parsing, the HR mod-crop rule and the exact LR size.

Non-integer scales (×2.5, ×3.5 — IDM and other continuous-scale methods) follow the integer
rule of ``protocols.md`` §4.1 ("modcrop first, so that ``n_out = n_in/s`` exactly"),
generalised to a rational scale ``s = p/q`` in lowest terms:

* **HR mod-crop**: the HR is cropped (top-left, as BasicSR's ``mod_crop``) to a multiple of the
  numerator ``p`` on both axes. Then ``LR = HR·q/p`` is an integer and ``LR·s = HR`` exactly,
  so a method's ``round(h·s)×round(w·s)`` output has the HR size and no pixel is ever
  rescaled or padded to make shapes agree. For an integer ``s`` (``q = 1``) this is the usual
  ``modcrop(HR, s)``; ×3.5 = 7/2 crops to a multiple of 7, ×2.5 = 5/2 to a multiple of 5.
* **LR**: MATLAB ``imresize(HR, 1/s, 'bicubic')`` — whose output length ``ceil(n/s)`` equals
  ``n·q/p`` on the cropped HR (``srbench.data.paired.MatlabBicubicLR``).

Neither IDM's released code nor LIIF's defines a benchmark rule to copy: IDM's ``feed_data``
(``Ree1s/IDM model/model.py``) resizes the GT to ``round(w_lr + (w_hr − w_lr)·p)`` for a random
``p``, and LIIF's ``SRImplicitDownsampled`` crops the HR to ``round(⌊H/s⌋·s)`` which for odd
``⌊H/s⌋`` at ×3.5 is not ``s×LR``. This rule keeps ``HR = s × LR`` exact.

Scales must be simple fractions (denominator ≤ ``MAX_DENOMINATOR``): 3.5, 2.25, 2.4 work,
π does not (the crop would be absurd) and gives a one-line error.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from srbench.data.base import DatasetError

__all__ = [
    "MAX_DENOMINATOR",
    "hr_multiple",
    "is_integer_scale",
    "lr_size",
    "modcrop_to_scale",
    "parse_scale",
    "scale_fraction",
]

#: largest denominator q of a scale p/q (×3.5 = 7/2 has q = 2; ×2.125 = 17/8 has q = 8)
MAX_DENOMINATOR = 16


def scale_fraction(scale: float) -> Fraction:
    """``scale`` as an exact fraction ``p/q`` (q ≤ ``MAX_DENOMINATOR``), else :class:`DatasetError`."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise DatasetError(f"scale must be a number, got {scale!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise DatasetError(f"scale must be a positive finite number, got {scale!r}")
    frac = Fraction(value).limit_denominator(MAX_DENOMINATOR)
    if abs(float(frac) - value) > 1e-9 * value:
        raise DatasetError(f"scale {value:g} is not a simple fraction p/q with q ≤ {MAX_DENOMINATOR} "
                           "(the HR is cropped to a multiple of p so that HR = scale × LR exactly)")
    return frac


def is_integer_scale(scale: float) -> bool:
    return scale_fraction(scale).denominator == 1


def parse_scale(scale: float, dataset: str, minimum: float = 1.0) -> int | float:
    """A dataset's scale (≥ ``minimum``): ``int`` when integral (ids stay ``x4``), else the float (``x3.5``)."""
    try:
        frac = scale_fraction(scale)
    except DatasetError as err:
        raise DatasetError(f"{dataset}: {err}") from None
    if frac < minimum:
        raise DatasetError(f"{dataset}: scale must be ≥ {minimum:g} (got {float(scale):g})")
    return int(frac) if frac.denominator == 1 else float(frac)


def hr_multiple(scale: float) -> int:
    """The HR side must be a multiple of this: the numerator p of ``scale = p/q``."""
    return scale_fraction(scale).numerator


def modcrop_to_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Crop the last two axes (top-left) to multiples of :func:`hr_multiple`; returns a view."""
    m = hr_multiple(scale)
    h, w = x.shape[-2], x.shape[-1]
    return x[..., : h - h % m, : w - w % m]


def lr_size(hr_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """Exact LR size ``HR/scale`` of an HR already cropped by :func:`modcrop_to_scale`."""
    frac = scale_fraction(scale)
    out = []
    for n in hr_hw:
        q = Fraction(int(n)) / frac
        if q.denominator != 1:
            raise ValueError(f"HR side {n} is not a multiple of {frac.numerator}: HR/×{float(frac):g} is not "
                             f"an integer; crop the HR with modcrop_to_scale first")
        out.append(int(q))
    return out[0], out[1]
