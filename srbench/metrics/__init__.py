"""The scoring harness: per-image PSNR, SSIM, LPIPS and LR-PSNR under one named profile.

    suite = build_metrics("standard", lpips_nets=("alex",))
    scores = suite(sr, hr, lr, scale=4, degrade=dataset.degrade)   # {"psnr": Tensor[B], ...}
    suite.ids["psnr"]                                              # "psnr@basicsr-y-crop4"

Functional cores (batched torch on the inputs' device, per-image float64 results):
:func:`psnr`, :func:`ssim`, :func:`rgb_to_y`, :func:`lr_psnr`, :class:`LPIPS`; set statistics
in :mod:`srbench.metrics.stats`. Conventions and their sources: docs/protocols.md §1–3.

Grey images. The loader replicates grey files (e.g. Set14 ``bridge``, PNG mode L) to RGB and
sets ``was_gray``; pass it as ``gray=``. Y-space profiles then score such an image as
protocols.md §1.1 says, on its single channel (BasicSR's ``to_y_channel`` leaves 1-channel
images alone; MATLAB evaluation scripts skip ``rgb2ycbcr`` for them). The luma of the grey
replicated to RGB would be 16 + 219/255·v: every error shrinks by 219/255, +1.32 dB on that
image. Measured on Set5/Set14 ×4 bicubic (tests/test_metrics_set5_set14.py): Set14 standard
is 25.994 / 0.7029 with the flag (the published 26.00 / 0.7027) and 26.088 / 0.7048 without it
(what BasicSR's test pipeline gives, since it reads every file as 3-channel BGR). The
``pyiqa-ycbcr`` profile ignores the flag, as pyiqa reads every file as RGB. RGB profiles and
LPIPS are unaffected (three equal channels score as one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from srbench.metrics.color import quantize_8bit, rgb_to_y
from srbench.metrics.colour_shift import colour_shift
from srbench.metrics.colour_shift import metric_id as colour_shift_id
from srbench.metrics.fid import FIDCollector, FIDSettings, InceptionFeatures
from srbench.metrics.iqa import PyiqaMetric
from srbench.metrics.lpips import LPIPS, LPIPS_VERSION
from srbench.metrics.lr_psnr import lr_psnr
from srbench.metrics.planes import ShapeMismatchError, check_pair, crop_for_scale
from srbench.metrics.profiles import PROFILES, MetricProfile, UnknownProfile, get_profile
from srbench.metrics.psnr import psnr
from srbench.metrics.ssim import ssim
from srbench.metrics.stats import paired_bootstrap, summarize
from srbench.weights import MissingWeightsError

__all__ = [
    "LPIPS", "PROFILES", "MetricProfile", "MetricSuite", "ShapeMismatchError", "UnknownProfile",
    "build_metrics", "crop_for_scale", "get_profile", "lr_psnr", "paired_bootstrap", "psnr",
    "quantize_8bit", "rgb_to_y", "ssim", "summarize",
]


def lpips_column(net: str) -> str:
    """Results column of LPIPS(net): ``lpips`` for alex (srbench-standard), ``lpips_<net>`` otherwise."""
    return "lpips" if net == "alex" else f"lpips_{net}"


@dataclass
class MetricSuite:
    """Every metric of one profile, built once; call it on batches.

    Attributes:
        profile: the PSNR/SSIM definition (see :mod:`srbench.metrics.profiles`).
        scale: the scale fixed at build (``None``: any; ids follow the latest call).
        columns: columns this suite computes, in table order (LPIPS columns whose weights
            are missing are not among them).
        missing: column → one-line reason it cannot be computed (e.g. LPIPS backbone absent).
        ids: column → metric id recorded with each result (missing columns included).
        higher_is_better: column → direction.
    """

    #: the suite takes ``gray=`` (runners check this before passing it)
    accepts_gray: ClassVar[bool] = True

    profile: MetricProfile
    lpips: dict[str, LPIPS] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    scale: float | None = None
    lpips_nets: dict[str, str] = field(default_factory=dict)  # column → net, including missing ones
    iqa: dict[str, PyiqaMetric] = field(default_factory=dict)  # metrics.extra: column → pyiqa metric
    iqa_names: dict[str, str] = field(default_factory=dict)  # column → pyiqa name, including missing ones
    colour: bool = False  # the colour_shift column (srbench.metrics.colour_shift; needs LR and scale)
    fid: FIDSettings = field(default_factory=FIDSettings)  # dataset-level FID / patch-FID (run summary)
    inception: InceptionFeatures | None = None  # their feature extractor (None: off or weights missing)

    def __post_init__(self) -> None:
        self._last_scale: float | None = None
        self._lpips_ids = {
            col: self.lpips[col].metric_id if col in self.lpips else f"lpips@{net}-v{LPIPS_VERSION}"
            for col, net in self.lpips_nets.items()
        }

    @property
    def columns(self) -> list[str]:
        return ["psnr", "ssim", *self.lpips, *self.iqa, *(["colour_shift"] if self.colour else []), "lr_psnr"]

    @property
    def no_reference_columns(self) -> tuple[str, ...]:
        """Columns that need no HR (LR-only datasets, ``srbench score`` without HR)."""
        return (*(c for c, m in self.iqa.items() if not m.full_reference),
                *(["colour_shift"] if self.colour else []), "lr_psnr")

    @property
    def ids(self) -> dict[str, str]:
        """Ids for the scale fixed at build, else for the scale of the latest call, else ``crop{s}``."""
        return self.ids_for(self.scale if self.scale is not None else self._last_scale)

    def ids_for(self, scale: float | None) -> dict[str, str]:
        return {
            "psnr": self.profile.metric_id("psnr", scale),
            "ssim": self.profile.metric_id("ssim", scale),
            **self._lpips_ids,
            **{c: self.iqa[c].metric_id if c in self.iqa else f"{n}@pyiqa" for c, n in self.iqa_names.items()},
            **({"colour_shift": colour_shift_id(scale) if scale else "colour_shift@ciede2000"} if self.colour else {}),
            "lr_psnr": "lr_psnr@basicsr-rgb-crop0",
        }

    @property
    def higher_is_better(self) -> dict[str, bool]:
        return {"psnr": True, "ssim": True, **{c: False for c in self._lpips_ids},
                **{c: m.higher_is_better for c, m in self.iqa.items()},
                **({"colour_shift": False} if self.colour else {}), "lr_psnr": True}

    def describe(self) -> dict[str, Any]:
        """Facts for the run manifest."""
        return {
            "profile": self.profile.name,
            "profile_description": self.profile.description,
            "ids": self.ids,
            "missing": dict(self.missing),
            "lpips_random_backbone": {c: m.random_backbone for c, m in self.lpips.items()},
            "stochastic": [c for c, m in self.iqa.items() if m.stochastic],
            "dataset_metrics": self.dataset_metric_ids,
        }

    @property
    def dataset_metric_ids(self) -> dict[str, str]:
        """Dataset-level metrics (FID, patch-FID): column → id; their values go in the run summary."""
        base = self.inception.metric_id if self.inception is not None else "pyiqa-clean-inception2048"
        return {**({"fid": f"fid@{base}"} if self.fid.fid else {}),
                **({"patch_fid": f"patch_fid@{base}-tile{self.fid.patch_size}-seed{self.fid.seed}"}
                   if self.fid.patch_size else {})}

    def fid_collector(self, directory: Any) -> FIDCollector | None:
        """A run's FID feature store under ``directory`` (None when FID is off or cannot be computed)."""
        return FIDCollector(self.inception, self.fid, directory) if self.inception is not None else None

    def __call__(
        self,
        sr: Tensor,
        hr: Tensor | None,
        lr: Tensor | None = None,
        *,
        scale: float | None,
        degrade: Callable[[Tensor], Tensor] | None = None,
        gray: Tensor | Sequence[bool] | None = None,
        names: Sequence[str] | None = None,
    ) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            sr: B×C×H×W float in [0, 1] (values outside are clamped by the 8-bit quantization).
            hr: B×C×H×W float in [0, 1], or ``None`` for LR-only sets (full-reference columns
                are then left out).
            lr: B×C×h×w float in [0, 1]; with ``degrade`` gives ``lr_psnr``.
            scale: the SR scale (sets the border crop of ``crop = scale`` profiles; may be ``None``
                for profiles that crop nothing).
            degrade: the dataset's LR operator (``SRDataset.degrade``), or ``None``.
            gray: B bools, True for grey images replicated to RGB (see module docstring).
            names: image names, for error messages.

        Returns:
            column → B float64 tensor on the CPU, only for the columns computed for this call.
        """
        if self.scale is not None and scale is not None and float(scale) != float(self.scale):
            raise ValueError(f"this metric suite was built for x{self.scale:g}, called with scale x{scale:g}")
        self._last_scale = None if scale is None else float(scale)
        gray_mask = None if gray is None else torch.as_tensor(gray, dtype=torch.bool).flatten()
        out: dict[str, Tensor] = {}
        if hr is not None:
            hr = hr.to(sr.device)
            check_pair(sr, hr, scale=scale, names=names)
            out["psnr"], out["ssim"] = self.profile.psnr_ssim(sr, hr, scale=scale, gray=gray_mask)
            if self.lpips:
                # LPIPS sees the same 8-bit images as the other metrics (ECDP does this too).
                sr8, hr8 = quantize_8bit(sr, torch.float32) / 255.0, quantize_8bit(hr, torch.float32) / 255.0
                for col, module in self.lpips.items():
                    out[col] = module(sr8, hr8)
        # pyiqa metrics see the same [0, 1] RGB the caller passed (pyiqa's own contract).
        for col, metric in self.iqa.items():
            if metric.full_reference and hr is None:
                continue
            out[col] = metric(sr.clamp(0, 1), None if hr is None else hr.clamp(0, 1))
        if self.colour and lr is not None and scale is not None and sr.shape[1] == 3:
            out["colour_shift"] = colour_shift(sr, lr, scale)
        if lr is not None and degrade is not None:
            out["lr_psnr"] = lr_psnr(sr, lr.to(sr.device), degrade, names=names)
        return {k: v.detach().to("cpu", torch.float64) for k, v in out.items()}


def build_metrics(
    profile: str = "standard",
    *,
    lpips_nets: Sequence[str] = ("alex",),
    lpips_weights: str | Mapping[str, str] | None = None,
    device: torch.device | str | None = None,
    scale: float | None = None,
    extra: Sequence[str] = (),
    extra_random_init: bool = False,
    seed: int = 0,
    colour: bool = False,
    fid: bool = False,
    patch_fid: int | None = None,
    fid_seed: int = 0,
    fid_random_init: bool = False,
) -> MetricSuite:
    """Build the metrics of ``profile``; never fails because LPIPS weights are missing.

    Args:
        profile: a name in :data:`PROFILES` (``standard``, ``matlab``, ``pyiqa-ycbcr``,
            ``piq-rgb``, ``basicsr-rgb``).
        lpips_nets: LPIPS backbones to score with (``alex`` → column ``lpips``, ``vgg`` →
            ``lpips_vgg``); empty for none.
        lpips_weights: where the torchvision backbone files are: a directory (or, per net,
            a mapping net → file/dir); ``None`` for ``torch.hub.get_dir()/checkpoints``;
            ``"random"`` for random backbones (tests and perf only; ids say so).
        device: where to build LPIPS first (it follows the inputs' device anyway).
        scale: fix the scale, so :attr:`MetricSuite.ids` are concrete.
        extra: pyiqa metric names (``dists``, ``clipiqa``, ``musiq``, ``maniqa-pipal``, ``niqe``, …),
            each a column of that name with ``-`` → ``_``; missing weights → ``suite.missing``.
        extra_random_init: random-initialised pyiqa networks (tests and perf only; ids say so).
        seed: seed of random init and of stochastic pyiqa metrics.
        colour: add the ``colour_shift`` column (ΔE00 of low-passed SR vs bicubic-up LR).
        fid, patch_fid: dataset-level FID of SR vs HR and patch-FID over ``patch_fid``² tiles
            (:mod:`srbench.metrics.fid`; pyiqa's clean-fid Inception; the grid seeded by
            ``fid_seed``); missing Inception weights → ``suite.missing``.
        fid_random_init: random Inception (tests and perf only; ids say so).
    """
    prof = get_profile(profile)
    modules: dict[str, LPIPS] = {}
    missing: dict[str, str] = {}
    nets: dict[str, str] = {}
    for net in lpips_nets:
        col = lpips_column(net)
        nets[col] = net
        where = lpips_weights.get(net) if isinstance(lpips_weights, Mapping) else lpips_weights
        try:
            module = LPIPS(net, backbone_weights=where)
        except MissingWeightsError as err:
            missing[col] = str(err)
            continue
        modules[col] = module.to(device) if device is not None else module
    iqa: dict[str, PyiqaMetric] = {}
    iqa_names: dict[str, str] = {}
    for name in extra:
        col = iqa_column(name)
        iqa_names[col] = name
        try:
            iqa[col] = PyiqaMetric(name, device=device or "cpu", random_init=extra_random_init, seed=seed)
        except MissingWeightsError as err:
            missing[col] = str(err)
        except ImportError as err:
            missing[col] = (f"{name}: pyiqa is not installed; pip install 'srbench[iqa]'" if err.name == "pyiqa"
                            else f"{name}: pyiqa needs the module {err.name!r}, not installed; pip install it")
    settings = FIDSettings(fid=bool(fid), patch_size=int(patch_fid) if patch_fid else None, seed=int(fid_seed))
    inception = None
    if settings.enabled:
        try:
            inception = InceptionFeatures(device or "cpu", random_init=fid_random_init)
        except MissingWeightsError as err:
            for col in (["fid"] if settings.fid else []) + (["patch_fid"] if settings.patch_size else []):
                missing[col] = str(err)
        except ImportError as err:
            for col in (["fid"] if settings.fid else []) + (["patch_fid"] if settings.patch_size else []):
                missing[col] = f"{col}: needs {err.name!r} (pip install 'srbench[iqa]')"
    return MetricSuite(prof, modules, missing, scale, nets, iqa, iqa_names, colour, settings, inception)


def iqa_column(name: str) -> str:
    """Results column of pyiqa metric ``name``: ``maniqa-pipal`` → ``maniqa_pipal``."""
    return name.replace("-", "_").replace("+", "_plus")
