"""HR preparation rules of the published evaluation protocols (``protocols.md`` §5).

Each rule turns a source image into the HR (and, for IDM/SR3 faces, also the LR) exactly as
the authors' released code does; the docstrings cite that code. All tensors are C×H×W float
in [0, 1] on the 8-bit grid (sources are 8-bit; a 16-bit source is quantized to 8 bits
before any rule — the released loaders all read 8-bit images).

Rounding matters for bit-exactness: where upstream uses Python's ``round`` (ECDP's centre
crop, torchvision's ``center_crop``, albumentations' ``SmallestMaxSize``) we do too, i.e.
round-half-to-even (``round(62.5) == 62``), and where it floors (albumentations'
``CenterCrop``) we floor.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from srbench.data.base import DatasetError, image_seed
from srbench.data.io import modcrop, quantize, to_uint8
from srbench.data.resize import imresize

__all__ = [
    "EcdpCelebAHR",
    "EcdpImageNetHR",
    "HRRule",
    "InvSRImageNetHR",
    "Modcrop",
    "PilFacePair",
    "crop",
    "ecdp_center_square",
    "invsr_image_list",
    "pil_shorter_side_center_crop",
    "random_crop_positions",
]


def _to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(x))


def _from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32).copy()).permute(2, 0, 1) / 255.0


class HRRule:
    """An HR preparation rule: ``rule(x) -> hr``; ``id`` and ``describe()`` go into the manifest."""

    id: str = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, **(asdict(self) if hasattr(self, "__dataclass_fields__") else {})}


@dataclass(frozen=True)
class Modcrop(HRRule):
    """Crop to a multiple of ``scale`` from the top-left (BasicSR / MATLAB ``modcrop``)."""

    scale: int
    id = "modcrop-topleft"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return modcrop(x, self.scale)


# ------------------------------------------------------------------------------ ECDP / SR3
def ecdp_center_square(height: int, width: int) -> tuple[int, int, int]:
    """ECDP's deterministic centre square: ``(top, left, side)``.

    ``Yuan-Yutao/ECDP lib/dataset/image_folders.py``: ``side = min(H, W)``,
    ``start = int(round((H - side) / 2.0))`` — Python's round, so a half pixel rounds to even.
    """
    side = min(height, width)
    return round((height - side) / 2.0), round((width - side) / 2.0), side


@dataclass(frozen=True)
class EcdpImageNetHR(HRRule):
    """ECDP/SR3 ImageNet 64→256 HR: centre square crop, MATLAB bicubic to ``size``² on uint8.

    ``image_folders.py`` with ``pre_crop=True, pre_resize=(256, 256), deterministic=True``
    (the test split), ``imresize.py`` on the uint8 array (rounded after each 1-D pass).

    Rounding: ECDP's numpy port rounds each pass with ``np.around`` (half to even), MATLAB — and
    srbench — half away from zero. Exact ties occur (dyadic weights at scale 1/4), so a few
    values differ by one level: on the 8 shared ImageNet samples 0–1 HR values and 1–85 of the
    12,288 LR values per image (LR ≥ 69 dB against ECDP's own code).
    """

    size: int = 256
    id = "ecdp-imagenet-centersquare-matlab"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        top, left, side = ecdp_center_square(*x.shape[-2:])
        square = x[..., top : top + side, left : left + side]
        return imresize(quantize(square), size=(self.size, self.size), quantize=True)


@dataclass(frozen=True)
class EcdpCelebAHR(HRRule):
    """ECDP CelebA 8× HR: the whole aligned image MATLAB-resized to ``size``² — no crop.

    ``lib/dataset/celeba.py`` passes ``pre_resize=(160, 160)`` without ``pre_crop``, so the
    178×218 aligned faces are squeezed (aspect ratio not kept); the rows (scale 160/218) are
    resized first because MATLAB does the smaller scale first.
    """

    size: int = 160
    id = "ecdp-celeba-matlab-squeeze"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(quantize(x), size=(self.size, self.size), quantize=True)


# ------------------------------------------------------------------------------- IDM / SR3
def pil_shorter_side_center_crop(img: Image.Image, size: int) -> Image.Image:
    """SR3/IDM ``resize_and_convert``: PIL bicubic, shorter side to ``size``, centre crop.

    ``Ree1s/IDM data/prepare_data.py`` (= ``Janspiry/Image-Super-Resolution-via-Iterative-Refinement``):
    ``if img.size[0] != size: img = resize(img, size, BICUBIC); img = center_crop(img, size)``.
    The test looks at the *width* only: an image already ``size`` wide is returned untouched.
    """
    if img.size[0] != size:
        img = TF.resize(img, size, interpolation=InterpolationMode.BICUBIC)
        img = TF.center_crop(img, size)
    return img


@dataclass(frozen=True)
class PilFacePair:
    """IDM/SR3 face pairs: LR and HR each made *independently from the source* with PIL.

    Returns ``(lr, hr)``; the LR is not a resize of the HR (it is ``source → lr_size``), which
    is why such datasets expose no deterministic LR operator for LR-PSNR.
    """

    lr_size: int = 16
    hr_size: int = 128
    id = "idm-sr3-pil-bicubic-shorter-side-centercrop"

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src = _to_pil(x)
        lr = pil_shorter_side_center_crop(src, self.lr_size)
        hr = pil_shorter_side_center_crop(src, self.hr_size)
        return _from_pil(lr), _from_pil(hr)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "lr_size": self.lr_size, "hr_size": self.hr_size}


# ------------------------------------------------------------------------------------ InvSR
@dataclass(frozen=True)
class InvSRImageNetHR(HRRule):
    """InvSR ImageNet-Test HR: shorter side to ``size`` with OpenCV ``INTER_AREA``, centre crop.

    ``zsyOAOA/InvSR basicsr/data/realesrgan_dataset.py`` (``mode='testing'``): albumentations
    ``SmallestMaxSize(size, cv2.INTER_AREA)`` — new side ``round(n·size/min(H, W))`` with
    Python's round, no resize when already ``size`` — then ``CenterCrop`` with offsets
    ``(H − size) // 2``. The image is float32 [0, 1] (``imfrombytes(float32=True)``) while
    resized, and rounded to 8 bits when saved.
    """

    size: int = 512
    id = "invsr-imagenet-shorter-side-area-centercrop"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Float arithmetic as upstream, step by step: INTER_AREA upsampling makes exact half-level
        # ties, so a one-ulp difference in the input would flip the final rounding.
        img = to_uint8(x).astype(np.float32) / 255.0  # imfrombytes(float32=True)
        h, w = img.shape[:2]
        scale = self.size / float(min(h, w))
        if scale != 1.0:
            new_h, new_w = round(h * scale), round(w * scale)
            img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
        top, left = (h - self.size) // 2, (w - self.size) // 2
        img = img[top : top + self.size, left : left + self.size]
        levels = (np.clip(img, 0, 1) * 255.0).round()  # tensor2img: float32 product, half-to-even
        return torch.from_numpy(levels.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def invsr_image_list(file_names: Sequence[str], num_images: int | None, shuffle_seed: int = 10000) -> list[str]:
    """InvSR's test-image selection (``scripts/prepare_sr_testing_syn.py``).

    ``sorted(files)``; ``random.seed(10000); random.shuffle(list)``; then, when ``num_imgs > 0``,
    ``random.sample(list, k=num_imgs)`` from the same generator. A private ``random.Random``
    seeded the same way draws the same stream as the module-level functions.
    """
    files = sorted(file_names)
    rng = random.Random(shuffle_seed)
    rng.shuffle(files)
    if num_images is not None and num_images > 0:
        if num_images > len(files):
            raise DatasetError(f"InvSR ImageNet-Test: asked for {num_images} images but only {len(files)} are present")
        files = rng.sample(files, k=num_images)
    return files


# ------------------------------------------------------------------------ random HR crops
def random_crop_positions(height: int, width: int, crop_size: int, count: int, *, seed: int,
                          where: str = "image") -> list[tuple[int, int]]:
    """``count`` crop corners ``(top, left)``, uniform over all positions, from a fixed seed.

    Like StableSR's ``random.randint(0, h − crop)`` (both ends inclusive), but from a private
    ``numpy.random.Generator`` so the positions are a function of ``seed`` alone. An image
    smaller than the crop is an error (StableSR pads with reflection; a benchmark should not).
    """
    if height < crop_size or width < crop_size:
        raise DatasetError(f"{where} is {width}×{height}, smaller than the {crop_size}×{crop_size} crop")
    rng = np.random.default_rng(seed)
    tops = rng.integers(0, height - crop_size, size=count, endpoint=True)
    lefts = rng.integers(0, width - crop_size, size=count, endpoint=True)
    return [(int(t), int(l)) for t, l in zip(tops, lefts)]


def crop_seed(dataset_id: str, stem: str, base_seed: int) -> int:
    """Seed of an image's crop positions: independent of the degradation seeds (different tag)."""
    return image_seed(base_seed, f"{dataset_id}/{stem}/crop-positions")


def crop(x: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    return x[..., top : top + size, left : left + size]
