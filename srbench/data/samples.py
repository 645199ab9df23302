"""``samples``: the embedded default set — real photographs that ship with scikit-image.

No download: the HR images come from ``skimage.data``. HR is mod-cropped (top-left origin) to a
multiple of the scale — of its numerator p for a non-integer scale p/q, so HR = scale × LR
exactly (:mod:`srbench.data.scales`) — and the LR is made with MATLAB-exact bicubic on 8-bit values
(:func:`srbench.data.resize.imresize` with ``quantize=True``), the same operator that made
the official Set5/Set14/DIV2K LR files. ``samples_manifest.json`` pins the SHA-256 of every
HR array, so a scikit-image release that changes an image is detected instead of silently
changing the benchmark.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srbench.data.base import DatasetError, SRDataset, SRSample
from srbench.data.paired import MatlabBicubicLR
from srbench.data.scales import hr_multiple, modcrop_to_scale, parse_scale

MANIFEST_PATH = Path(__file__).with_name("samples_manifest.json")

#: name → how to get the uint8 HR array from skimage.data (all photographs, colour and grey)
SOURCES: dict[str, tuple[str, int | None]] = {
    "astronaut": ("astronaut", None),
    "camera": ("camera", None),
    "chelsea": ("chelsea", None),
    "coffee": ("coffee", None),
    "coins": ("coins", None),
    "motorcycle_left": ("stereo_motorcycle", 0),
    "motorcycle_right": ("stereo_motorcycle", 1),
    "rocket": ("rocket", None),
}


def load_source(name: str) -> np.ndarray:
    """The original uint8 H×W×3 (or H×W for grey) array of one sample image."""
    import skimage.data

    fn, index = SOURCES[name]
    arr = getattr(skimage.data, fn)()
    if index is not None:
        arr = arr[index]
    return np.ascontiguousarray(arr)


def array_sha256(arr: np.ndarray) -> str:
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _manifest() -> dict[str, Any]:
    return json.loads(MANIFEST_PATH.read_text())


class SamplesDataset(SRDataset):
    """The embedded default dataset (scikit-image photographs, MATLAB bicubic LR)."""

    name = "samples"

    def __init__(self, scale: float = 4, images: Sequence[str] | None = None, max_images: int | None = None,
                 verify: bool = True):
        self.scale = parse_scale(scale, "samples", minimum=1.5)  # int for ×2, ×4; float for ×3.5
        names = list(images) if images else list(SOURCES)
        unknown = [n for n in names if n not in SOURCES]
        if unknown:
            raise DatasetError(f"samples: unknown image(s) {unknown}; available: {', '.join(SOURCES)}")
        self.names = names[:max_images] if max_images else names
        self.verify = verify

    def load(self, index: int) -> SRSample:
        name = self.names[index]
        arr = load_source(name)
        if self.verify:
            expected = _manifest()["images"][name]["sha256"]
            if array_sha256(arr) != expected:
                raise DatasetError(
                    f"samples: skimage.data image {name!r} differs from the pinned one "
                    f"(sha256 {array_sha256(arr)[:12]}… ≠ {expected[:12]}…); this scikit-image release "
                    "changed it, so results are not comparable — pass dataset.verify=false to use it anyway"
                )
        was_gray = arr.ndim == 2
        hr = torch.from_numpy(arr).float().div_(255)
        hr = hr.unsqueeze(0).expand(3, -1, -1).contiguous() if was_gray else hr.permute(2, 0, 1).contiguous()
        full = tuple(hr.shape[-2:])
        hr = modcrop_to_scale(hr, self.scale)
        lr = MatlabBicubicLR(self.scale).operator(hr)
        return SRSample(name, lr, hr, float(self.scale),
                        meta={"was_gray": was_gray, "hr_size_original": full, "hr_size": tuple(hr.shape[-2:])})

    def degrade(self, hr: torch.Tensor) -> torch.Tensor:
        return MatlabBicubicLR(self.scale).operator(hr)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "protocol": f"samples-x{self.scale}-matlab-bicubic",
                "lr_generation": "matlab-bicubic-uint8", "source": "skimage.data",
                "hr_crop": f"modcrop (top-left) to a multiple of {hr_multiple(self.scale)}"}
