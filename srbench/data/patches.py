"""Training data: random HR patches with the LR made on the fly, reproducible for exact resume.

Every random choice of a sample — crop position, flips, the Real-ESRGAN degradation — is
drawn from a generator seeded by ``(global seed, epoch, index)`` (:func:`patch_seed`), and the
order of an epoch is a permutation seeded by ``(global seed, epoch)`` (:class:`EpochSampler`).
The data stream is therefore a pure function of the number of samples consumed: the same
with 0 or N DataLoader workers, and restartable at any position without replaying it.

Per sample (ECDP ``lib/dataset/image_folders.py`` and ``augmented.py``):

1. HR image ``index % n_images`` (``repeat`` passes over the images make one epoch);
   optional random square crop of side min(H, W) and MATLAB-bicubic resize (ECDP ImageNet);
2. random ``patch_size`` crop at any position (an image smaller than the patch is an error,
   or reflect-101 padded with ``small_images=pad`` as InvSR does);
3. LR = ``bicubic``: MATLAB ``imresize(hr, 1/s)`` on 8-bit values (the operator of the
   official DIV2K LR), or ``realesrgan``/``stablesr``/``invsr_test``: the seeded
   Real-ESRGAN second-order degradation (``srbench.data.degradations``);
4. the same random h-flip (p = ½) and rot90 (k ∈ {0..3}) applied to HR and LR — after the LR
   is made, as ECDP does (MATLAB's height-then-width order makes bicubic of a rotated image
   differ from the rotated bicubic by a rounding step).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from srbench.data.base import DatasetError
from srbench.paths import CONF_DIR

#: degradations made by :class:`srbench.data.degradations.RealESRGANDegradation`, by config name
REALESRGAN_CONFIGS = ("realesrgan", "stablesr", "invsr_test")


def patch_seed(seed: int, epoch: int, index: int, stream: str = "crop") -> int:
    """Seed of one training sample: SHA-256 of ``"<seed>:<epoch>:<index>:<stream>"`` truncated to 63 bits.

    ``stream`` keeps independent draws apart: ``crop`` (crop and flips), ``degradation``
    (Real-ESRGAN parameters and noise), ``order`` (the permutation of an epoch, index −1).
    """
    digest = hashlib.sha256(f"{int(seed)}:{int(epoch)}:{int(index)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _randint(high: int, g: torch.Generator) -> int:
    """Uniform integer in [0, high)."""
    return int(torch.randint(high, (), generator=g))


# ----------------------------------------------------------------------------- HR sources
class _FileSource:
    """HR images read from files with :func:`srbench.data.io.read_image`."""

    def __init__(self, files: Sequence[Path]):
        self.files = list(files)
        self.names = [p.stem for p in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> torch.Tensor:
        from srbench.data.io import read_image

        return read_image(self.files[i]).tensor


class _DatasetSource:
    """HR images of a registered evaluation dataset (``hr_dataset: {name: samples, ...}``)."""

    def __init__(self, cfg: Mapping[str, Any]):
        from srbench.data.base import build_dataset

        self.dataset = build_dataset(cfg)
        if not self.dataset.has_hr:
            raise DatasetError(f"dataset {self.dataset.name!r} has no HR images and cannot give training patches")
        self.names = list(self.dataset.names)

    def __len__(self) -> int:
        return len(self.names)

    def load(self, i: int) -> torch.Tensor:
        return self.dataset[i].hr


# ----------------------------------------------------------------------------- dataset
class PairedPatchDataset(torch.utils.data.Dataset):
    """Random (HR, LR) patch pairs for training.

    Items are indexed by ``(epoch, index)`` (a plain ``index`` means epoch 0) and returned as
    ``{"hr": 3×P×P, "lr": 3×(P/s)×(P/s)}`` float32 tensors in [0, 1] plus ``"name"`` and ``"key"``.

    Args:
        hr_dir: folder of HR images (every file :func:`srbench.data.io.list_images` finds), or
        files: an explicit list of HR image paths, or
        hr_dataset: the config of a registered dataset whose HR images are used.
        scale: integer SR factor; ``patch_size`` must be a multiple of it.
        patch_size: HR patch side P.
        degradation: ``bicubic`` (MATLAB-exact on 8-bit values), a Real-ESRGAN config name
            (``realesrgan``, ``stablesr``, ``invsr_test``: ``conf/degradation/<name>.yaml``), or a
            mapping with that config's fields.
        hflip, rot90: random horizontal flip (p = ½) and rotation by k·90°, k uniform in {0..3}.
        repeat: passes over the images per epoch (epoch length = repeat × number of images).
        square_crop: ``random`` to first crop a random min(H, W) square (ECDP ImageNet training).
        resize_to: resize the HR (after ``square_crop``) to this side or (H, W) with MATLAB
            bicubic on 8-bit values (ECDP ImageNet 256, CelebA 160×160).
        small_images: ``error`` or ``pad`` (reflect-101) for HR smaller than the patch.
        cache_hr: keep decoded HR images in memory (per DataLoader worker) — for small sets
            whose decoding would dominate; a DIV2K-size set would need gigabytes per worker.
        seed: global seed; with (epoch, index) it fixes every random choice of a sample.
    """

    def __init__(self, hr_dir: str | os.PathLike | None = None, files: Sequence[str | os.PathLike] | None = None,
                 hr_dataset: Mapping[str, Any] | None = None, *, scale: int = 4, patch_size: int = 96,
                 degradation: str | Mapping[str, Any] = "bicubic", hflip: bool = True, rot90: bool = True,
                 repeat: int = 1, square_crop: str | None = None, resize_to: int | Sequence[int] | None = None,
                 small_images: str = "error", cache_hr: bool = False, seed: int = 0, name: str = "patches"):
        if sum(x is not None for x in (hr_dir, files, hr_dataset)) != 1:
            given = [k for k, v in (("hr_dir", hr_dir), ("files", files), ("hr_dataset", hr_dataset)) if v is not None]
            raise DatasetError(f"{name}: give exactly one HR source (dataset.hr_dir=/folder, dataset.files=[...] or "
                               f"dataset.hr_dataset={{name: ...}}); given: {', '.join(given) or 'none'}"
                               + (" — set the others to null, e.g. dataset.hr_dir=null" if len(given) > 1 else ""))
        if float(scale) != int(scale) or int(scale) < 1:
            raise DatasetError(f"{name}: scale must be a positive integer (got {scale})")
        self.scale, self.patch_size = int(scale), int(patch_size)
        if self.patch_size % self.scale:
            raise DatasetError(f"{name}: patch_size {self.patch_size} is not a multiple of scale {self.scale}")
        if small_images not in ("error", "pad"):
            raise DatasetError(f"{name}: small_images must be 'error' or 'pad' (got {small_images!r})")
        if square_crop not in (None, "random"):
            raise DatasetError(f"{name}: square_crop must be null or 'random' (got {square_crop!r})")
        if int(repeat) < 1:
            raise DatasetError(f"{name}: repeat must be ≥ 1 (got {repeat})")
        self.name = name
        self.hflip, self.rot90, self.repeat = bool(hflip), bool(rot90), int(repeat)
        self.square_crop, self.small_images, self.seed = square_crop, small_images, int(seed)
        self.cache_hr = bool(cache_hr)
        self._hr_cache: dict[int, torch.Tensor] = {}
        self.resize_to = None if resize_to is None else (
            (int(resize_to), int(resize_to)) if isinstance(resize_to, (int, float)) else tuple(int(v) for v in resize_to))

        if hr_dir is not None:
            from srbench.data.io import list_images

            folder = Path(hr_dir).expanduser()
            if not folder.is_dir():
                raise DatasetError(f"{name}: training images folder {folder} does not exist "
                                   "(set dataset.hr_dir=/path/to/hr_images)")
            self.source: _FileSource | _DatasetSource = _FileSource(list_images(folder))
            where = str(folder)
        elif files is not None:
            paths = [Path(f).expanduser() for f in files]
            absent = [str(p) for p in paths if not p.is_file()]
            if absent:
                raise DatasetError(f"{name}: training image(s) not found: {', '.join(absent[:5])}")
            self.source, where = _FileSource(paths), "dataset.files"
        else:
            self.source = _DatasetSource(hr_dataset)  # type: ignore[arg-type]
            where = f"dataset {hr_dataset.get('name')!r}"  # type: ignore[union-attr]
        if len(self.source) == 0:
            raise DatasetError(f"{name}: no images found in {where}")

        self.degradation_name, self._degradation = self._build_degradation(degradation)

    # ------------------------------------------------------------------ configuration
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], *, seed: int) -> PairedPatchDataset:
        """Build from a ``conf/dataset/train_*.yaml`` node (``seed`` comes from the run config)."""
        cfg = dict(cfg)
        name = cfg.pop("name", "patches")
        if "patch_size" not in cfg:
            raise DatasetError(
                f"dataset {name!r} is an evaluation set, not a training patch set; train on e.g. "
                "dataset=train_folder dataset.hr_dir=/path/to/hr_images"
            )
        return cls(**cfg, seed=seed, name=name)

    def _build_degradation(self, spec: str | Mapping[str, Any]) -> tuple[str, Any]:
        """``("bicubic", None)`` or (config id, :class:`~srbench.data.degradations.RealESRGANDegradation`)."""
        if isinstance(spec, str):
            if spec == "bicubic":
                return "bicubic", None
            if spec not in REALESRGAN_CONFIGS:
                raise DatasetError(f"{self.name}: unknown degradation {spec!r}; use bicubic or one of "
                                   f"{', '.join(REALESRGAN_CONFIGS)}")
            path = CONF_DIR / "degradation" / f"{spec}.yaml"
            if not path.is_file():
                raise DatasetError(f"{self.name}: degradation config {path} is missing")
            source: Any = str(path)
            label = spec
        else:
            if spec.get("name") == "bicubic":
                return "bicubic", None
            source, label = dict(spec), str(spec.get("profile") or spec.get("name"))
        from srbench.data.degradations import DegradationConfigError, RealESRGANDegradation

        try:
            return label, RealESRGANDegradation.from_config(source)
        except DegradationConfigError as exc:
            raise DatasetError(f"{self.name}: {exc}") from None

    # ------------------------------------------------------------------ items
    @property
    def num_images(self) -> int:
        return len(self.source)

    def __len__(self) -> int:
        """Samples per epoch."""
        return len(self.source) * self.repeat

    def __getitem__(self, key: int | tuple[int, int] | Sequence[int]) -> dict[str, Any]:
        epoch, index = (0, int(key)) if isinstance(key, int) else (int(key[0]), int(key[1]))
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples per epoch")
        g = _generator(patch_seed(self.seed, epoch, index))
        image_index = index % len(self.source)
        hr = self._prepare_hr(self._load_hr(image_index), g)
        hr, crop = self._random_crop(hr, g, image_index)
        lr = self._make_lr(hr, patch_seed(self.seed, epoch, index, "degradation"))
        hr, lr, aug = self._augment(hr, lr, g)
        return {"hr": hr.contiguous(), "lr": lr.contiguous(), "name": self.source.names[image_index],
                "key": (epoch, index), "crop": crop, "aug": aug}

    def _load_hr(self, i: int) -> torch.Tensor:
        if not self.cache_hr:
            return self.source.load(i)
        if i not in self._hr_cache:
            self._hr_cache[i] = self.source.load(i)
        return self._hr_cache[i]

    def _prepare_hr(self, hr: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.square_crop == "random":
            h, w = hr.shape[-2:]
            side = min(h, w)
            top, left = _randint(h - side + 1, g), _randint(w - side + 1, g)
            hr = hr[:, top: top + side, left: left + side]
        if self.resize_to is not None and tuple(hr.shape[-2:]) != self.resize_to:
            from srbench.data.resize import imresize

            hr = imresize(hr, size=self.resize_to, quantize=True)
        return hr

    def _random_crop(self, hr: torch.Tensor, g: torch.Generator, i: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """A ``patch_size`` square at a uniform position; returns it and its (top, left)."""
        p = self.patch_size
        h, w = hr.shape[-2:]
        if h < p or w < p:
            if self.small_images == "error":
                raise DatasetError(f"{self.name}: image {self.source.names[i]} is {w}×{h}, smaller than "
                                   f"patch_size {p} (use a smaller patch or dataset.small_images=pad)")
            pad_h, pad_w = max(p - h, 0), max(p - w, 0)
            if pad_h >= h or pad_w >= w:
                raise DatasetError(f"{self.name}: image {self.source.names[i]} is {w}×{h}, too small to "
                                   f"reflect-pad to patch_size {p}")
            # bottom/right padding, reflect without repeating the edge (cv2 BORDER_REFLECT_101, InvSR)
            hr = F.pad(hr[None], (0, pad_w, 0, pad_h), mode="reflect")[0]
            h, w = hr.shape[-2:]
        top, left = _randint(h - p + 1, g), _randint(w - p + 1, g)
        return hr[:, top: top + p, left: left + p], (top, left)

    def _make_lr(self, hr: torch.Tensor, seed: int) -> torch.Tensor:
        if self._degradation is None:
            from srbench.data.paired import MatlabBicubicLR

            return MatlabBicubicLR(self.scale).operator(hr)
        lr, _params = self._degradation.degrade(hr, self.scale, seed)
        return lr

    def _augment(self, hr: torch.Tensor, lr: torch.Tensor, g: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, tuple[bool, int]]:
        """Same h-flip then rot90 on HR and LR; returns them and (flipped, k)."""
        # Draw both choices every time so a sample's other random numbers do not depend on the flags.
        flip_draw, k_draw = bool(torch.rand((), generator=g) < 0.5), _randint(4, g)
        flip, k = flip_draw and self.hflip, k_draw if self.rot90 else 0
        if flip:
            hr, lr = hr.flip(-1), lr.flip(-1)
        if k:
            hr, lr = torch.rot90(hr, k, dims=(-2, -1)), torch.rot90(lr, k, dims=(-2, -1))
        return hr, lr, (flip, k)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "num_images": self.num_images, "samples_per_epoch": len(self),
                "scale": self.scale, "patch_size": self.patch_size, "degradation": self.degradation_name,
                "hflip": self.hflip, "rot90": self.rot90, "square_crop": self.square_crop,
                "resize_to": self.resize_to, "image_list_sha256":
                    hashlib.sha256("\n".join(self.source.names).encode()).hexdigest()}


def collate_patches(items: Sequence[Mapping[str, Any]], scale: float | None = None) -> dict[str, Any]:
    """Batch for :meth:`srbench.training.Trainer.training_step`: ``hr`` B×3×P×P, ``lr``, ``names``, ``keys``."""
    return {"hr": torch.stack([it["hr"] for it in items]), "lr": torch.stack([it["lr"] for it in items]),
            "names": [it["name"] for it in items], "keys": [tuple(it["key"]) for it in items],
            **({"scale": float(scale)} if scale is not None else {})}


class PatchCollator:
    """Picklable collate function that adds the dataset's scale to each batch (DataLoader workers)."""

    def __init__(self, scale: float):
        self.scale = float(scale)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return collate_patches(items, self.scale)


# ----------------------------------------------------------------------------- order
class EpochSampler(torch.utils.data.Sampler):
    """Endless ``(epoch, index)`` stream: a fresh permutation per epoch, restartable at any sample.

    Each epoch is ``torch.randperm(n)`` seeded by ``(seed, epoch)``, cut to a multiple of
    ``global_batch`` (the samples one optimizer step consumes over all processes) — the
    ``drop_last`` of ECDP's loader, so every epoch has the same number of steps.

    Args:
        num_samples: samples per epoch of the dataset (``len(dataset)``).
        global_batch: batch size × processes (× 1; gradient accumulation does not change it).
        seed: global seed.
        start: samples already consumed (resume); the stream continues from there.
        shuffle: ``False`` keeps 0..n−1 order in every epoch.
    """

    def __init__(self, num_samples: int, *, global_batch: int, seed: int = 0, start: int = 0, shuffle: bool = True):
        if num_samples < global_batch:
            raise DatasetError(f"training set has {num_samples} samples per epoch, fewer than one batch over all "
                               f"processes ({global_batch}); raise dataset.repeat or lower batch_size")
        self.num_samples, self.global_batch = int(num_samples), int(global_batch)
        self.seed, self.start, self.shuffle = int(seed), int(start), bool(shuffle)

    @property
    def samples_per_epoch(self) -> int:
        return self.num_samples // self.global_batch * self.global_batch

    def epoch_order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_samples)
        g = _generator(patch_seed(self.seed, epoch, -1, "order"))
        return torch.randperm(self.num_samples, generator=g)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.samples_per_epoch)
        while True:
            order = self.epoch_order(epoch)[: self.samples_per_epoch].tolist()
            for index in order[offset:]:
                yield epoch, index
            epoch, offset = epoch + 1, 0
