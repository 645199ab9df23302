"""Bicubic upsampling with MATLAB's ``imresize`` — the baseline row of every SR table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from srbench.data.resize import imresize
from srbench.method import SRMethod


class Bicubic(SRMethod):
    """MATLAB-exact bicubic interpolation (Keys a = −0.5), any scale, deterministic.

    ``exact_uint8=True`` (default) reproduces ``imresize(uint8_image, s, 'bicubic')`` in MATLAB,
    which rounds to 8 bits after each 1-D pass — how the published bicubic rows were made.
    ``exact_uint8=False`` interpolates in floating point and leaves rounding to the harness.
    """

    name: ClassVar[str] = "bicubic"
    scales: ClassVar[frozenset[float] | None] = None

    def __init__(self, device: torch.device, exact_uint8: bool = True):
        self.device = torch.device(device)
        self.exact_uint8 = exact_uint8

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> Bicubic:
        return cls(device, exact_uint8=bool(cfg.get("exact_uint8", True)))

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        self.check_scale(scale)
        return imresize(lr, scale, quantize=self.exact_uint8).clamp_(0, 1)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params_total": 0, "params_trainable": 0,
                "exact_uint8": self.exact_uint8, "weights": None}

    def nfe_per_image(self) -> int:
        return 0  # interpolation: no network evaluations
