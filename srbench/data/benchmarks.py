"""The benchmark datasets and their protocols (``protocols.md`` §5).

Every class reads the layout that ``srbench data prepare NAME`` writes under ``data/NAME/``
(:mod:`srbench.data.catalog`), checks that no expected file is missing, and builds a
:class:`~srbench.data.paired.PairedDataset` with the protocol's HR rule and LR source:

==================  ======================================================  ===========================
name                protocol                                                LR
==================  ======================================================  ===========================
div2k               DIV2K val 0801–0900, full images, ×2/×3/×4/×8           official files or MATLAB
div2k_realesrgan    512² random crops of DIV2K val (StableSR DIV2K-Val      Real-ESRGAN (StableSR cfg),
                    style), count/seed/positions from the config            seeded per crop
imagenet            ECDP/SR3 64→256: centre square, MATLAB to 256           MATLAB 256→64
imagenet_invsr      InvSR ImageNet-Test: seeded list, area-resize to 512,   first-order Real-ESRGAN
                    centre crop                                              (InvSR test cfg)
celeba              ECDP 8×: aligned CelebA test split squeezed to 160²     MATLAB 160→20
celebahq_idm        IDM/SR3 faces 16→128: PIL bicubic from the source,      PIL, independent of HR
                    LR and HR independently
set5 … manga109     classic sets, HR as released                            official files or MATLAB
realsr, drealsr,    released LR–HR pairs (real camera / released synthetic)  given
div2k_val_stablesr,
imagenet_test_invsr
pairs               any two folders of LR–HR pairs matched by name          given
==================  ======================================================  ===========================

Registered lazily in ``srbench.data.base.BUILTIN_DATASETS`` as ``"srbench.data.benchmarks:<Class>"``.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from srbench.data import catalog
from srbench.data.base import DatasetError, SRSample
from srbench.data.io import image_size, list_images
from srbench.data.paired import (
    DegradationLR,
    MatlabBicubicLR,
    PairedDataset,
    PairItem,
    check_expected_files,
    require_dir,
)
from srbench.data.protocols import (
    EcdpCelebAHR,
    EcdpImageNetHR,
    InvSRImageNetHR,
    PilFacePair,
    crop,
    crop_seed,
    invsr_image_list,
    random_crop_positions,
)
from srbench.data.scales import parse_scale
from srbench.paths import CONF_DIR

__all__ = [
    "BSD100",
    "CelebAECDP",
    "CelebAHQIDM",
    "DRealSR",
    "Div2K",
    "Div2KRealESRGAN",
    "Div2KValStableSR",
    "ImageNetECDP",
    "ImageNetInvSR",
    "ImageNetTestInvSR",
    "Manga109",
    "Pairs",
    "RealSR",
    "Set5",
    "Set14",
    "Urban100",
    "build_degradation",
]

PathLike = str | os.PathLike


def _scale(value: float, allowed: Sequence[int], dataset: str, lr_source: str | None = None) -> int | float:
    """The dataset's scale: one of ``allowed`` (official LR files), or any scale (×3.5 too) when
    ``lr_source='matlab'`` makes the LR (HR crop rule: :mod:`srbench.data.scales`)."""
    if lr_source == "matlab":
        return parse_scale(value, dataset)
    if float(value) != int(value) or int(value) not in allowed:
        hint = " (or dataset.lr_source=matlab for any scale)" if lr_source == "official" else ""
        raise DatasetError(f"{dataset}: scale {value} is not offered; choose one of {', '.join(map(str, allowed))}"
                           + hint)
    return int(value)


def _first(names: Sequence[str], max_images: int | None) -> list[str]:
    return list(names if max_images is None else names[: int(max_images)])


def build_degradation(spec: str | Mapping[str, Any], seed: int | None = None) -> Any:
    """A Real-ESRGAN-family degradation from a config name (``conf/degradation/<name>.yaml``) or a
    mapping (a composed Hydra node); ``seed`` (the dataset's) replaces the config's base seed."""
    from omegaconf import OmegaConf

    from srbench.data.degradations import DegradationConfigError, RealESRGANDegradation

    if isinstance(spec, str):
        path = CONF_DIR / "degradation" / f"{spec}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in (CONF_DIR / "degradation").glob("*.yaml")))
            raise DatasetError(f"degradation config {path} not found (known: {known})")
        spec = OmegaConf.load(path)
    cfg = OmegaConf.to_container(OmegaConf.create(spec if OmegaConf.is_config(spec) else dict(spec)), resolve=True)
    if seed is not None:
        cfg["seed"] = int(seed)
    try:
        return RealESRGANDegradation.from_config(cfg)
    except DegradationConfigError as err:
        raise DatasetError(str(err)) from None


# ------------------------------------------------------------------------------------ DIV2K
class Div2K(PairedDataset):
    """DIV2K validation 0801–0900, full images (protocols.md §5.1; ECDP ``div2k_test.py``, IDM).

    ``lr_source='official'`` reads ``DIV2K_valid_LR_bicubic/X<s>/08xxx<s>.png`` (×8:
    ``DIV2K_valid_LR_x8``); ``'matlab'`` makes the LR with srbench's MATLAB-exact ``imresize``
    (uint8 semantics) through the LR cache. Either way the LR-PSNR operator is MATLAB bicubic.
    """

    name = "div2k"

    def __init__(self, root: PathLike, scale: int = 4, lr_source: str = "official", max_images: int | None = None,
                 cache_dir: PathLike | None = "default", name: str = "div2k"):
        s = _scale(scale, (2, 3, 4, 8), name, lr_source)
        if lr_source not in ("official", "matlab"):
            raise DatasetError(f"{name}: lr_source must be 'official' or 'matlab' (got {lr_source!r})")
        root = require_dir(root, "div2k", "DIV2K folder")
        hr_group = catalog.DIV2K.group("hr")
        hr_dir = require_dir(root / hr_group.subdir, "div2k", "HR folder")
        hr_names = _first(hr_group.names, max_images)  # type: ignore[arg-type]
        check_expected_files(hr_dir, hr_names, "div2k", "HR")
        items = [PairItem(Path(n).stem, hr_dir / n) for n in hr_names]
        if lr_source == "official":
            lr_dir = root / catalog.div2k_lr_group(s).subdir
            if not lr_dir.is_dir():
                raise DatasetError(
                    f"div2k: official ×{s} LR folder {lr_dir} not found — prepare from a copy that includes "
                    f"{catalog.div2k_lr_group(s).description.split('(')[-1].rstrip(')')}, or set "
                    "dataset.lr_source=matlab to make the LR with srbench's MATLAB-exact bicubic"
                )
            lr_names = [f"{it.name}x{s}.png" for it in items]
            check_expected_files(lr_dir, lr_names, "div2k", f"×{s} LR")
            for it, n in zip(items, lr_names):
                it.lr_path = lr_dir / n
        super().__init__(name=name, items=items, scale=s, protocol_id=f"div2k-x{s}-{lr_source}-lr",
                         lr_generator=MatlabBicubicLR(s), cache_dir=cache_dir, dataset_id=f"div2k-x{s}",
                         extra_describe={"lr_source": lr_source, "root": str(root)})


class Div2KRealESRGAN(PairedDataset):
    """StableSR-style DIV2K-Val regenerated: ``crops_per_image`` random ``crop_size``² HR crops per
    validation image, LR by a seeded Real-ESRGAN degradation (default: StableSR's test config).

    Crop corners come from ``seed`` and the image name (uniform, both ends inclusive, like
    StableSR's ``random.randint``), or from ``positions`` (a CSV ``name,source,top,left`` that
    pins them, e.g. to match another release). Crops are named ``<id>_pch_<k:05d>`` as in
    StableSR's release (``0801_pch_00001``). StableSR's released set is ``div2k_val_stablesr``;
    this regenerated set is a different dataset (protocols.md §5: never mixed).
    """

    name = "div2k_realesrgan"

    def __init__(self, root: PathLike, scale: int = 4, crop_size: int = 512, crops_per_image: int = 30,
                 seed: int = 0, degradation: str | Mapping[str, Any] = "stablesr", positions: PathLike | None = None,
                 max_images: int | None = None, cache_dir: PathLike | None = "default",
                 name: str = "div2k_realesrgan", source_images: int | None = None, lr_device: str = "cpu"):
        s = _scale(scale, (2, 4, 8), name)
        if crop_size % s:
            raise DatasetError(f"{name}: crop_size {crop_size} is not a multiple of the scale {s}")
        root = require_dir(root, "div2k", "DIV2K folder")
        hr_group = catalog.DIV2K.group("hr")
        hr_dir = require_dir(root / hr_group.subdir, "div2k", "HR folder")
        hr_names = _first(hr_group.names, source_images)  # type: ignore[arg-type]
        check_expected_files(hr_dir, hr_names, "div2k", "HR")
        self.crop_size = int(crop_size)
        dataset_id = f"{name}-c{crop_size}-n{crops_per_image}-s{seed}"
        if positions is not None:
            items = self._items_from_csv(Path(positions), hr_dir, name)
        else:
            items = []
            for fn in hr_names:
                stem = Path(fn).stem
                w, h = image_size(hr_dir / fn)
                corners = random_crop_positions(h, w, crop_size, crops_per_image, seed=crop_seed(dataset_id, stem, seed),
                                                where=f"{name}: HR {hr_dir / fn}")
                items += [PairItem(f"{stem}_pch_{k:05d}", hr_dir / fn, None, {"source": stem, "crop_top": t, "crop_left": l})
                          for k, (t, l) in enumerate(corners, start=1)]
        items = _first(items, max_images)
        deg = build_degradation(degradation, seed)
        self._memo: tuple[Path, torch.Tensor, dict[str, Any]] | None = None
        super().__init__(name=name, items=items, scale=s, protocol_id=f"div2k-realesrgan-{deg.cfg.profile}-x{s}",
                         lr_generator=DegradationLR(deg, s, dataset_id, lr_device), cache_dir=cache_dir,
                         dataset_id=dataset_id,
                         extra_describe={"crop_size": crop_size, "crops_per_image": crops_per_image, "seed": seed,
                                         "positions": str(positions) if positions else "from seed",
                                         "crop_positions_sha256": hashlib.sha256(
                                             self.positions_csv(items).encode()).hexdigest()})

    @staticmethod
    def positions_csv(items: Sequence[PairItem]) -> str:
        """The crop table as CSV text (``name,source,top,left``) — the format ``positions`` reads."""
        rows = ["name,source,top,left"] + [f"{it.name},{it.extra['source']},{it.extra['crop_top']},{it.extra['crop_left']}"
                                           for it in items]
        return "\n".join(rows) + "\n"

    def _items_from_csv(self, path: Path, hr_dir: Path, name: str) -> list[PairItem]:
        if not path.is_file():
            raise DatasetError(f"{name}: positions file {path} not found")
        items = []
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    src = hr_dir / f"{row['source']}.png"
                    items.append(PairItem(row["name"], src, None, {"source": row["source"], "crop_top": int(row["top"]),
                                                                   "crop_left": int(row["left"])}))
                except (KeyError, ValueError) as err:
                    raise DatasetError(f"{name}: {path} needs columns name,source,top,left ({err})") from None
        return items

    def read_source(self, item: PairItem) -> tuple[torch.Tensor, dict[str, Any]]:
        # 30 crops share one 2K PNG: keep the last decoded source (items are ordered by source).
        if self._memo is not None and self._memo[0] == item.hr_path:
            return self._memo[1], dict(self._memo[2])
        x, meta = super().read_source(item)
        self._memo = (item.hr_path, x, meta)
        return x, dict(meta)

    def prepare_hr(self, source: torch.Tensor, item: PairItem) -> torch.Tensor:
        t, l = item.extra["crop_top"], item.extra["crop_left"]
        h, w = source.shape[-2:]
        if t < 0 or l < 0 or t + self.crop_size > h or l + self.crop_size > w:
            raise DatasetError(f"{self.name}: crop {item.name} at ({t}, {l}) of size {self.crop_size} does not fit "
                               f"in {item.hr_path} ({w}×{h})")
        return crop(source, t, l, self.crop_size)


# --------------------------------------------------------------------------------- ImageNet
def _imagenet_val(root: PathLike) -> Path:
    root = require_dir(root, "imagenet", "ImageNet folder")
    return require_dir(root / catalog.IMAGENET.group("val").subdir, "imagenet", "validation folder")


class ImageNetECDP(PairedDataset):
    """ECDP/SR3 ImageNet 64→256 (protocols.md §5.4): every ``val`` image in sorted order, centre
    square (offset ``round((H−side)/2)``), MATLAB bicubic to 256², LR = MATLAB 256→64.

    ``max_images`` takes the first N of the sorted list (e.g. a 1k subset); the image-list hash
    in ``describe()`` tells runs on different lists apart. ``expected_files`` replaces the
    50,000 catalog names (tests and custom validation lists).
    """

    name = "imagenet"

    def __init__(self, root: PathLike, scale: int = 4, hr_size: int = 256, max_images: int | None = None,
                 cache_dir: PathLike | None = "default", name: str = "imagenet",
                 expected_files: Sequence[str] | None = None):
        s = int(scale)
        if hr_size % s:
            raise DatasetError(f"{name}: hr_size {hr_size} is not a multiple of the scale {s}")
        val = _imagenet_val(root)
        expected = list(expected_files) if expected_files is not None else list(catalog.IMAGENET.group("val").names)  # type: ignore[arg-type]
        files = _first(sorted(expected), max_images)
        check_expected_files(val, files, "imagenet", "validation")
        items = [PairItem(Path(f).stem, val / f) for f in files]
        super().__init__(name=name, items=items, scale=s, protocol_id=f"imagenet-ecdp-{hr_size // s}to{hr_size}",
                         hr_rule=EcdpImageNetHR(hr_size), lr_generator=MatlabBicubicLR(s), cache_dir=cache_dir,
                         dataset_id=f"imagenet-ecdp-{hr_size}-x{s}")


class ImageNetInvSR(PairedDataset):
    """InvSR ImageNet-Test regenerated (protocols.md §5.4): image list from InvSR's
    ``random.seed(10000)`` shuffle + sample over the sorted validation files, HR = shorter side
    to 512 (OpenCV area) + centre crop, LR 128 by the first-order Real-ESRGAN degradation of
    ``conf/degradation/invsr_test.yaml``, seeded per image (InvSR's own run was unseeded, so
    its released set — ``imagenet_test_invsr`` — cannot be regenerated bit-exactly).
    """

    name = "imagenet_invsr"

    def __init__(self, root: PathLike, scale: int = 4, hr_size: int = 512, num_images: int = 3000,
                 shuffle_seed: int = 10000, seed: int = 0, degradation: str | Mapping[str, Any] = "invsr_test",
                 max_images: int | None = None, cache_dir: PathLike | None = "default", name: str = "imagenet_invsr",
                 expected_files: Sequence[str] | None = None, lr_device: str = "cpu"):
        s = int(scale)
        val = _imagenet_val(root)
        expected = list(expected_files) if expected_files is not None else list(catalog.IMAGENET.group("val").names)  # type: ignore[arg-type]
        # The shuffle depends on the full list, so every file must be present, not just the chosen ones.
        check_expected_files(val, expected, "imagenet", "validation")
        files = _first(invsr_image_list(expected, num_images, shuffle_seed), max_images)
        items = [PairItem(Path(f).stem, val / f) for f in files]
        deg = build_degradation(degradation, seed)
        dataset_id = f"{name}-{hr_size}-n{num_images}-s{seed}"
        super().__init__(name=name, items=items, scale=s, protocol_id=f"imagenet-invsr-{hr_size // s}to{hr_size}",
                         hr_rule=InvSRImageNetHR(hr_size), lr_generator=DegradationLR(deg, s, dataset_id, lr_device),
                         cache_dir=cache_dir, dataset_id=dataset_id,
                         extra_describe={"shuffle_seed": shuffle_seed, "num_images": num_images, "seed": seed})


# ----------------------------------------------------------------------------------- faces
class CelebAECDP(PairedDataset):
    """ECDP CelebA 8× (protocols.md §5.5): the aligned test images squeezed to 160² with MATLAB
    bicubic (no crop), LR = MATLAB 160→20. Files in sorted order, as ECDP's ``ImageFolders``."""

    name = "celeba"

    def __init__(self, root: PathLike, scale: int = 8, hr_size: int = 160, max_images: int | None = None,
                 cache_dir: PathLike | None = "default", name: str = "celeba",
                 expected_files: Sequence[str] | None = None):
        s = int(scale)
        if hr_size % s:
            raise DatasetError(f"{name}: hr_size {hr_size} is not a multiple of the scale {s}")
        root = require_dir(root, "celeba", "CelebA folder")
        test = require_dir(root / catalog.CELEBA.group("test").subdir, "celeba", "test folder")
        expected = list(expected_files) if expected_files is not None else list(catalog.CELEBA.group("test").names)  # type: ignore[arg-type]
        files = _first(sorted(expected), max_images)
        check_expected_files(test, files, "celeba", "test")
        items = [PairItem(Path(f).stem, test / f) for f in files]
        super().__init__(name=name, items=items, scale=s, protocol_id=f"celeba-ecdp-{hr_size // s}to{hr_size}",
                         hr_rule=EcdpCelebAHR(hr_size), lr_generator=MatlabBicubicLR(s), cache_dir=cache_dir,
                         dataset_id=f"celeba-ecdp-{hr_size}-x{s}")


class CelebAHQIDM(PairedDataset):
    """IDM/SR3 faces (protocols.md §5.5): LR ``lr_size``² and HR ``hr_size``² each made from the
    source with PIL bicubic (shorter side, centre crop) — the LR is *not* a resize of the HR.

    IDM validates on the first ``num_images`` (100) of the prepared folder, whose names are the
    source stems zero-padded to 5 digits (``prepare_data.py``), so the sort key is
    ``stem.zfill(5)``. The source resolution (1024² release or a 256² copy) changes the result:
    it is recorded per image in ``meta['source_size']`` and in ``describe()``.
    """

    name = "celebahq_idm"

    def __init__(self, root: PathLike, lr_size: int = 16, hr_size: int = 128, num_images: int | None = 100,
                 max_images: int | None = None, name: str = "celebahq_idm", expected_count: int | None = None,
                 scale: float | None = None):
        # LR and HR are made independently from the source, so any hr/lr ratio works (16→56 is ×3.5);
        # ``scale`` (e.g. srbench-train's val.scale) is only checked against it.
        s = parse_scale(hr_size / lr_size, name)
        if scale is not None and abs(float(scale) - s) > 1e-9:
            raise DatasetError(f"{name}: scale {scale} does not match hr_size/lr_size = {hr_size}/{lr_size} = {s:g}; "
                               "set dataset.hr_size (and lr_size) instead")
        root = require_dir(root, "celebahq", "CelebA-HQ folder")
        images = require_dir(root / catalog.CELEBAHQ.group("images").subdir, "celebahq", "images folder")
        files = list_images(images)
        want = expected_count if expected_count is not None else catalog.CELEBAHQ.group("images").count
        if want is not None and len(files) != want:
            raise DatasetError(f"celebahq: {images} holds {len(files)} images, expected {want} — IDM takes the first "
                               f"images in sorted order, so a partial folder changes the test set; re-run "
                               f"`srbench data prepare celebahq --source PATH`")
        files = sorted(files, key=lambda p: p.name.split(".")[0].zfill(5))
        files = _first(_first(files, num_images), max_images)
        items = [PairItem(p.name.split(".")[0].zfill(5), p) for p in files]
        self.pair_rule = PilFacePair(lr_size, hr_size)
        super().__init__(name=name, items=items,
                         scale=s, protocol_id=f"celebahq-idm-{lr_size}to{hr_size}", cache_dir=None,
                         extra_describe={"pair_rule": self.pair_rule.describe(), "num_images": num_images})

    def load(self, index: int) -> SRSample:
        item = self.items[index]
        source, meta = self.read_source(item)
        lr, hr = self.pair_rule(source)
        meta.update({"hr_size": tuple(hr.shape[-2:]), "lr_generation": self.pair_rule.id, "hr_modcropped": False})
        return SRSample(item.name, lr, hr, float(self.scale), meta)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["lr_generation"] = self.pair_rule.id
        info["hr_rule"] = self.pair_rule.describe()
        info.pop("hr_fit", None)
        return info


# ------------------------------------------------------------------- classic benchmark sets
class _BenchmarkSet(PairedDataset):
    """Set5/Set14/BSD100/Urban100/Manga109: ``HR/<name>.png`` + official ``LRbicx<s>/<name>x<s>.png``."""

    entry: catalog.CatalogEntry

    def __init__(self, root: PathLike, scale: int = 4, lr_source: str = "official", max_images: int | None = None,
                 cache_dir: PathLike | None = "default", name: str | None = None):
        e = self.entry
        name = name or e.name
        s = _scale(scale, (2, 3, 4), name, lr_source)
        if lr_source not in ("official", "matlab"):
            raise DatasetError(f"{name}: lr_source must be 'official' or 'matlab' (got {lr_source!r})")
        root = require_dir(root, e.name, f"{e.title} folder")
        hr_group = e.group("hr")
        hr_dir = require_dir(root / hr_group.subdir, e.name, "HR folder")
        if hr_group.names is not None:
            hr_names = _first(hr_group.names, max_images)
            check_expected_files(hr_dir, hr_names, e.name, "HR")
        else:
            hr_names = [p.name for p in list_images(hr_dir)]
            if hr_group.count is not None and len(hr_names) != hr_group.count:
                raise DatasetError(f"{e.name}: {hr_dir} holds {len(hr_names)} images, expected {hr_group.count} — "
                                   f"re-run `srbench data prepare {e.name} --source PATH`")
        items = [PairItem(Path(n).stem, hr_dir / n) for n in _first(hr_names, max_images)]
        if lr_source == "official":
            lr_dir = root / e.group(f"lr_x{s}").subdir
            if not lr_dir.is_dir():
                raise DatasetError(f"{e.name}: official ×{s} LR folder {lr_dir} not found — add it with "
                                   f"`srbench data prepare {e.name} --source PATH`, or set dataset.lr_source=matlab")
            lr_names = [f"{it.name}x{s}.png" for it in items]
            check_expected_files(lr_dir, lr_names, e.name, f"×{s} LR")
            for it, n in zip(items, lr_names):
                it.lr_path = lr_dir / n
        super().__init__(name=name, items=items, scale=s, protocol_id=f"{e.name}-x{s}-{lr_source}-lr",
                         lr_generator=MatlabBicubicLR(s), cache_dir=cache_dir, dataset_id=f"{e.name}-x{s}",
                         extra_describe={"lr_source": lr_source, "root": str(root)})


class Set5(_BenchmarkSet):
    name = "set5"
    entry = catalog.SET5


class Set14(_BenchmarkSet):
    name = "set14"
    entry = catalog.SET14


class BSD100(_BenchmarkSet):
    name = "bsd100"
    entry = catalog.BSD100


class Urban100(_BenchmarkSet):
    name = "urban100"
    entry = catalog.URBAN100


class Manga109(_BenchmarkSet):
    name = "manga109"
    entry = catalog.MANGA109


# -------------------------------------------------------------------------- given LR pairs
def _pair_items(hr_dir: Path, lr_dir: Path, dataset: str, lr_pattern: str, scale: int,
                hr_suffix: str = "") -> list[PairItem]:
    """Pair every HR file with its LR by ``lr_pattern`` (fields: name, stem, base, scale); all or error."""
    lr_present = {p.name for p in list_images(lr_dir)}
    items, missing = [], []
    used: set[str] = set()
    for hr in list_images(hr_dir):
        base = hr.stem[: -len(hr_suffix)] if hr_suffix and hr.stem.endswith(hr_suffix) else hr.stem
        lr_name = lr_pattern.format(name=hr.name, stem=hr.stem, base=base, scale=scale)
        if lr_name in lr_present:
            items.append(PairItem(hr.stem, hr, lr_dir / lr_name))
            used.add(lr_name)
        else:
            missing.append(lr_name)
    extra = sorted(lr_present - used)
    if missing or extra:
        raise DatasetError(f"{dataset}: HR and LR files do not pair up ({lr_pattern!r}) — LR missing for "
                           f"{len(missing)}: {missing[:8]}; LR without HR: {len(extra)}: {extra[:8]}")
    if not items:
        raise DatasetError(f"{dataset}: no images in {hr_dir}")
    return items


class Pairs(PairedDataset):
    """Any two folders of LR–HR pairs (real or released degradations): ``hr_dir``, ``lr_dir``,
    LR file name from ``lr_pattern`` — a format string over ``name`` (HR file name), ``stem``,
    ``base`` (stem without ``hr_suffix``) and ``scale``; e.g. RealSR V3 originals:
    ``hr_suffix=_HR, lr_pattern={base}_LR{scale}.png`` (on the command line:
    ``dataset.hr_suffix=_HR 'dataset.lr_pattern="{base}_LR{scale}.png"'``, the inner quotes for
    Hydra's grammar). Every HR needs its LR and vice versa.
    No LR-PSNR operator (the degradation is unknown)."""

    name = "pairs"

    def __init__(self, hr_dir: PathLike, lr_dir: PathLike, scale: int = 4, lr_pattern: str = "{name}",
                 hr_suffix: str = "", max_images: int | None = None, name: str = "pairs", protocol_id: str | None = None):
        s = int(scale)
        hr = require_dir(hr_dir, name, "HR folder")
        lr = require_dir(lr_dir, name, "LR folder")
        items = _first(_pair_items(hr, lr, name, lr_pattern, s, hr_suffix), max_images)
        super().__init__(name=name, items=items, scale=s, protocol_id=protocol_id or f"{name}-x{s}-given-lr",
                         cache_dir=None, extra_describe={"hr_dir": str(hr), "lr_dir": str(lr), "lr_pattern": lr_pattern})


class _ReleasedPairs(PairedDataset):
    """A released LR–HR test set laid out as ``<root>/HR`` and ``<root>/LR`` with equal file names."""

    entry: catalog.CatalogEntry

    def __init__(self, root: PathLike, scale: int = 4, max_images: int | None = None, name: str | None = None):
        e = self.entry
        name = name or e.name
        root = require_dir(root, e.name, f"{e.title} folder")
        hr_dir = require_dir(root / e.group("hr").subdir, e.name, "HR folder")
        lr_dir = require_dir(root / e.group("lr").subdir, e.name, "LR folder")
        items = _pair_items(hr_dir, lr_dir, e.name, "{name}", int(scale))
        want = e.group("hr").count
        if want is not None and len(items) != want:
            raise DatasetError(f"{e.name}: {len(items)} pairs in {root}, expected {want} — re-run "
                               f"`srbench data prepare {e.name} --source PATH`")
        super().__init__(name=name, items=_first(items, max_images), scale=int(scale),
                         protocol_id=f"{e.name}-x{int(scale)}-released", cache_dir=None,
                         extra_describe={"root": str(root)})


class RealSR(_ReleasedPairs):
    name = "realsr"
    entry = catalog.REALSR


class DRealSR(_ReleasedPairs):
    name = "drealsr"
    entry = catalog.DREALSR


class Div2KValStableSR(_ReleasedPairs):
    name = "div2k_val_stablesr"
    entry = catalog.DIV2K_VAL_STABLESR


class ImageNetTestInvSR(_ReleasedPairs):
    name = "imagenet_test_invsr"
    entry = catalog.IMAGENET_TEST_INVSR


#: Entries for ``srbench.data.base.BUILTIN_DATASETS`` (name → "module:Class"), one per conf/dataset/*.yaml here.
BUILTIN: dict[str, str] = {
    cls.name: f"{__name__}:{cls.__name__}"
    for cls in (Div2K, Div2KRealESRGAN, ImageNetECDP, ImageNetInvSR, CelebAECDP, CelebAHQIDM, Set5, Set14, BSD100,
                Urban100, Manga109, RealSR, DRealSR, Div2KValStableSR, ImageNetTestInvSR, Pairs)
}
