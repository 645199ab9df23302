"""Metric profiles: one PSNR/SSIM definition per name, each a set of arguments to one core.

``standard`` is srbench's own number (protocols.md §1.1); the others reproduce the released
evaluation code of specific papers (§1.2) and exist to check ports against those papers.
Every results column carries the profile's id, e.g. ``psnr@basicsr-y-crop4``.

| profile       | colour           | crop   | peak, eps       | dtype   | SSIM extras                      |
|---------------|------------------|--------|-----------------|---------|----------------------------------|
| standard      | studio Y, float  | scale  | 255, none (inf) | float64 | —                                |
| matlab        | studio Y, 8-bit  | scale  | 255, none       | float64 | —                                |
| pyiqa-ycbcr   | studio Y / 255   | 0      | 1, 1e-8         | float32 | Y rounded (half-even), cs ReLU   |
| piq-rgb       | RGB              | 0      | 1, 1e-8         | float32 | —                                |
| basicsr-rgb   | RGB              | 0      | 255, none       | float64 | —                                |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from srbench.errors import UserError
from srbench.metrics.planes import check_pair, crop_for_scale, scored_planes
from srbench.metrics.psnr import psnr, psnr_from_planes
from srbench.metrics.ssim import ssim, ssim_from_planes


class UnknownProfile(UserError, ValueError):
    """No metric profile (or LPIPS network) of that name."""


@dataclass(frozen=True)
class MetricProfile:
    """How PSNR and SSIM are computed: keyword arguments of :func:`psnr` and :func:`ssim`.

    ``crop`` is ``"scale"`` (BasicSR: ``ceil(scale)`` pixels) or a fixed number of pixels.
    ``gray_as_channel``: score grey images flagged by the loader on their one channel (the
    MATLAB evaluation scripts) instead of on the luma of the grey replicated to RGB (what
    BasicSR's and pyiqa's pipelines do: they read every file as 3-channel).
    """

    name: str
    tag: str  # id stem: "basicsr-y" → "psnr@basicsr-y-crop4"
    crop: Literal["scale"] | int
    psnr_kwargs: Mapping[str, Any] = field(default_factory=dict)
    ssim_kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    gray_as_channel: bool = True

    def crop_for(self, scale: float | None) -> int:
        if self.crop != "scale":
            return int(self.crop)
        if scale is None:
            raise ValueError(f"metric profile {self.name!r} crops the border by the scale; pass scale=")
        return crop_for_scale(scale)

    def metric_id(self, metric: str, scale: float | None) -> str:
        """e.g. ``psnr@basicsr-y-crop4``; ``crop{s}`` stands for ``crop = scale`` when scale is unknown."""
        crop = "{s}" if (self.crop == "scale" and scale is None) else str(self.crop_for(scale))
        return f"{metric}@{self.tag}-crop{crop}"

    def psnr(self, sr: Tensor, hr: Tensor, *, scale: float | None = None, gray: Tensor | None = None) -> Tensor:
        """Per-image PSNR (B float64) of B×C×H×W images in [0, 1]."""
        return psnr(sr, hr, crop=self.crop_for(scale), gray=self._gray(gray), **self.psnr_kwargs)

    def ssim(self, sr: Tensor, hr: Tensor, *, scale: float | None = None, gray: Tensor | None = None) -> Tensor:
        """Per-image SSIM (B float64) of B×C×H×W images in [0, 1]."""
        return ssim(sr, hr, crop=self.crop_for(scale), gray=self._gray(gray), **self.ssim_kwargs)

    def psnr_ssim(
        self, sr: Tensor, hr: Tensor, *, scale: float | None = None, gray: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Both scores; the quantized, cropped planes are made once when both use the same ones."""
        plane_keys = ("space", "round_y", "rounding", "dtype", "data_range")
        shared = {k: self.psnr_kwargs.get(k) for k in plane_keys} == {k: self.ssim_kwargs.get(k) for k in plane_keys}
        if not shared:
            return self.psnr(sr, hr, scale=scale, gray=gray), self.ssim(sr, hr, scale=scale, gray=gray)
        check_pair(sr, hr)
        kw = {k: self.psnr_kwargs[k] for k in plane_keys if k in self.psnr_kwargs}
        kw.update(crop=self.crop_for(scale), gray=self._gray(gray))
        x, y = scored_planes(sr, **kw), scored_planes(hr, **kw)
        data_range = self.psnr_kwargs.get("data_range", 255.0)
        p = psnr_from_planes(x, y, data_range=data_range, eps=self.psnr_kwargs.get("eps", 0.0))
        s = ssim_from_planes(x, y, data_range=data_range, cs_relu=self.ssim_kwargs.get("cs_relu", False))
        return p, s.to(torch.float64)

    def _gray(self, gray: Tensor | None) -> Tensor | None:
        return gray if self.gray_as_channel else None


_BASICSR_Y = {"space": "y", "data_range": 255.0, "dtype": torch.float64}
_PYIQA_Y = {"space": "y", "round_y": False, "data_range": 1.0, "eps": 1e-8, "dtype": torch.float32}

PROFILES: dict[str, MetricProfile] = {
    p.name: p
    for p in (
        MetricProfile(
            "standard", "basicsr-y", "scale",
            psnr_kwargs=_BASICSR_Y, ssim_kwargs=_BASICSR_Y,
            description="BasicSR calculate_psnr/ssim: studio BT.601 Y (not rounded), crop = scale, float64",
            # BasicSR's pipeline reads every file with cv2.IMREAD_COLOR, so a grey PNG (Set14 bridge) is
            # scored on the luma of the grey replicated to RGB: Set14 x4 bicubic 26.088 / 0.7048.
            gray_as_channel=False,
        ),
        MetricProfile(
            "matlab", "matlab-y", "scale",
            psnr_kwargs={**_BASICSR_Y, "round_y": True}, ssim_kwargs={**_BASICSR_Y, "round_y": True},
            description="as standard with Y rounded to 8 bits like MATLAB rgb2ycbcr on uint8 and grey "
                        "images scored on their one channel (the published bicubic Set5/Set14 tables)",
            # The MATLAB evaluation scripts convert only 3-channel images (`if size(im,3)==3`):
            # Set14 x4 bicubic 25.990 / 0.7023 against the published 26.00 / 0.7027.
            gray_as_channel=True,
        ),
        MetricProfile(
            "pyiqa-ycbcr", "pyiqa-ycbcr", 0,
            psnr_kwargs=_PYIQA_Y,
            # pyiqa's ssim rounds Y·255 with torch.round and clamps cs at 0 (pyiqa/archs/ssim_arch.py).
            ssim_kwargs={"space": "y", "round_y": True, "rounding": "half_even", "data_range": 255.0,
                             "cs_relu": True, "dtype": torch.float64},
            description="pyiqa psnr/ssim with test_y_channel=True, color_space='ycbcr' (InvSR, OSEDiff)",
            gray_as_channel=False,  # pyiqa's imread2tensor(rgb=True) replicates grey files
        ),
        MetricProfile(
            "piq-rgb", "piq-rgb", 0,
            psnr_kwargs={"space": "rgb", "data_range": 1.0, "eps": 1e-8, "dtype": torch.float32},
            ssim_kwargs={"space": "rgb", "data_range": 1.0, "dtype": torch.float32},
            description="piq.psnr(data_range=1) and piq.ssim(data_range=1, downsample=False), RGB (ECDP)",
        ),
        MetricProfile(
            "basicsr-rgb", "basicsr-rgb", 0,
            psnr_kwargs={"space": "rgb", "data_range": 255.0, "dtype": torch.float64},
            ssim_kwargs={"space": "rgb", "data_range": 255.0, "dtype": torch.float64},
            description="BasicSR-style PSNR/SSIM on uint8 RGB, crop 0, float64 (IDM, SR3)",
        ),
    )
}


def get_profile(name: str) -> MetricProfile:
    """The profile called ``name``; a one-line error lists the valid names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(f"unknown metric profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
