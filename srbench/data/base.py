"""Samples, the dataset base class, per-image seeds and the dataset registry.

A dataset is (HR source) × (degradation) × (protocol: crop/resize rules). Every dataset
yields :class:`SRSample` records with tensors in [0, 1], C×H×W, float32, and knows the
operator that made its LR (``degrade``), which the LR-consistency metric reuses.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as importlib_metadata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from srbench.errors import UserError

DATASET_ENTRY_POINT_GROUP = "srbench.datasets"

#: Built-in datasets, resolved lazily ("module:Class"); plugins add more via entry points.
BUILTIN_DATASETS: dict[str, str] = {
    "samples": "srbench.data.samples:SamplesDataset",
    "folder": "srbench.data.folder:FolderDataset",
    "div2k": "srbench.data.benchmarks:Div2K",
    "div2k_realesrgan": "srbench.data.benchmarks:Div2KRealESRGAN",
    "imagenet": "srbench.data.benchmarks:ImageNetECDP",
    "imagenet_invsr": "srbench.data.benchmarks:ImageNetInvSR",
    "celeba": "srbench.data.benchmarks:CelebAECDP",
    "celebahq_idm": "srbench.data.benchmarks:CelebAHQIDM",
    "set5": "srbench.data.benchmarks:Set5",
    "set14": "srbench.data.benchmarks:Set14",
    "bsd100": "srbench.data.benchmarks:BSD100",
    "urban100": "srbench.data.benchmarks:Urban100",
    "manga109": "srbench.data.benchmarks:Manga109",
    "realsr": "srbench.data.benchmarks:RealSR",
    "drealsr": "srbench.data.benchmarks:DRealSR",
    "div2k_val_stablesr": "srbench.data.benchmarks:Div2KValStableSR",
    "imagenet_test_invsr": "srbench.data.benchmarks:ImageNetTestInvSR",
    "pairs": "srbench.data.benchmarks:Pairs",
}


class DatasetError(UserError, ValueError):
    """A dataset cannot be used as configured; the message is one line for the user."""


class UnknownDataset(DatasetError):
    pass


@dataclass
class SRSample:
    """One evaluation image. ``lr``/``hr``: C×H×W float32 in [0, 1] (``hr`` None for LR-only sets)."""

    name: str
    lr: torch.Tensor
    hr: torch.Tensor | None
    scale: float
    meta: dict[str, Any] = field(default_factory=dict)


def image_seed(global_seed: int, name: str) -> int:
    """Per-image seed from (global seed, image name): independent of order, batch and shard.

    SHA-256 of ``"<seed>:<name>"`` truncated to 63 bits (fits a torch.Generator seed).
    """
    digest = hashlib.sha256(f"{int(global_seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class SRDataset(torch.utils.data.Dataset):
    """Base class: a list of image names and a way to build each :class:`SRSample`.

    Subclasses set ``self.scale`` and ``self.names`` and implement ``load(index)``.
    """

    #: registry name, e.g. "samples"
    name: str = ""
    scale: float
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> SRSample:
        return self.load(index)

    def load(self, index: int) -> SRSample:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def has_hr(self) -> bool:
        return True

    def source_files(self, index: int) -> list[Path]:
        """The files image ``index`` is read from (HR, given LR); a resumed run rescores it when they
        change. Empty for images that are not files (``samples``)."""
        return []

    def degrade(self, hr: torch.Tensor) -> torch.Tensor | None:
        """Re-apply the operator that made the LR to a B×C×H×W batch in [0, 1] (for LR-PSNR).

        Return ``None`` when the degradation is not a deterministic function of the HR
        (real pairs, stochastic Real-ESRGAN), and LR-PSNR is then left out.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """Protocol facts for the manifest: protocol id, LR generation id, image-list hash."""
        return {
            "name": self.name,
            "scale": self.scale,
            "num_images": len(self.names),
            "image_list_sha256": hashlib.sha256("\n".join(self.names).encode()).hexdigest(),
        }


def lr_operator(dataset: SRDataset) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``dataset.degrade`` when it is a deterministic operator, else ``None`` (LR-PSNR is left out).

    Probed once on a small blank batch, so datasets only implement ``degrade``.
    """
    side = round(float(dataset.scale) * 4)
    probe = dataset.degrade(torch.zeros(1, 3, side, side))
    return None if probe is None else dataset.degrade


def dataset_registry() -> dict[str, str]:
    """Name → "module:Class" for built-in and entry-point datasets (nothing imported)."""
    reg = dict(BUILTIN_DATASETS)
    for ep in importlib_metadata.entry_points(group=DATASET_ENTRY_POINT_GROUP):
        reg.setdefault(ep.name, ep.value)
    return dict(sorted(reg.items()))


def register_dataset(name: str, target: str) -> None:
    """Register a built-in dataset class lazily ("module:Class")."""
    BUILTIN_DATASETS[name] = target


def build_dataset(cfg: Mapping[str, Any]) -> SRDataset:
    """Build the dataset named ``cfg['name']`` with the remaining keys as keyword arguments."""
    cfg = dict(cfg)
    name = cfg.pop("name")
    reg = dataset_registry()
    if name not in reg:
        raise UnknownDataset(f"unknown dataset {name!r}; available datasets: {', '.join(reg)}")
    module_name, _, attr = reg[name].partition(":")
    cls: Callable[..., SRDataset] = getattr(importlib.import_module(module_name), attr)
    return cls(**cfg)


def collate_samples(samples: Sequence[SRSample]) -> list[SRSample]:
    """DataLoader collate: keep a list (sizes may differ); the runner batches equal sizes."""
    return list(samples)
