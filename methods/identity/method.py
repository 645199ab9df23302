"""The lower-bound row: nearest-neighbour upsampling (each LR pixel repeated s×s times), a no-op at ×1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from srbench.method import SRMethod, UnsupportedInput


class Identity(SRMethod):
    """Nearest-neighbour upsampling by an integer scale; at scale 1 (same-size pairs) the input itself.

    No interpolation at all, so it is the floor every method should beat. Integer scales only:
    a fractional nearest-neighbour grid depends on a rounding convention no paper agrees on.
    """

    name: ClassVar[str] = "identity"

    def __init__(self, device: torch.device):
        self.device = torch.device(device)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> Identity:
        return cls(device)

    @classmethod
    def supports_scale(cls, scale: float) -> bool:
        return scale >= 1 and float(scale).is_integer()

    @classmethod
    def check_scale(cls, scale: float) -> None:
        if not cls.supports_scale(scale):
            raise UnsupportedInput(f"method 'identity' needs a whole scale >= 1, got x{scale:g}")

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        self.check_scale(scale)
        s = int(scale)
        if s == 1:
            return lr.clone()
        return lr.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params_total": 0, "params_trainable": 0, "interpolation": "nearest",
                "weights": None}

    def nfe_per_image(self) -> int:
        return 0
