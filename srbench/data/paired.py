"""Generic HR(+LR) dataset that the benchmark datasets build on.

A :class:`PairedDataset` is a list of :class:`PairItem` (name, HR file, optional given LR
file) plus three rules:

* an HR rule (:mod:`srbench.data.protocols`) that turns the source file into the HR the
  protocol scores against (identity for DIV2K/Set5, centre crop + resize for ImageNet …);
* where the LR is given (official bicubic files, real camera pairs): the size check — HR must
  be exactly ``scale × LR``; an HR larger by less than ``scale`` pixels on each axis is
  mod-cropped to ``scale × LR`` from the top-left (the LR was made from the mod-cropped HR)
  and this is logged in the sample's meta; anything else is a one-line error naming both files;
* where the LR is generated: HR mod-cropped (top-left) to a multiple of the scale — of its
  numerator p for a non-integer scale p/q (×3.5: a multiple of 7), so HR = scale × LR exactly
  (:mod:`srbench.data.scales`) — then the LR made by an :class:`LRGenerator` through the
  :class:`~srbench.data.cache.LRCache`. Given LR files need an integer scale.

Bad input, handled once here for every dataset:

* missing files or a wrong count → :class:`DatasetError` naming what is missing (never a
  silently smaller set); a missing folder names the ``srbench data prepare`` command;
* a corrupt image → :class:`srbench.data.io.ImageReadError` from the reader (the runner's
  ``on_error`` decides);
* 16-bit PNG → read at full precision, then quantized to 8 bits (the standard profile; all
  released protocols read 8-bit images), ``meta["bit_depth"] == 16`` and a warning;
* CMYK / palette images → converted to RGB by the reader; grey images → 3 equal channels
  with ``meta["was_gray"]``; an HR/LR pair where one is grey and the other truly colour is
  an error.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from srbench.data.base import DatasetError, SRDataset, SRSample
from srbench.data.cache import LRCache
from srbench.data.io import image_size, quantize, read_image
from srbench.data.protocols import HRRule
from srbench.data.resize import imresize
from srbench.data.scales import hr_multiple, is_integer_scale, lr_size, modcrop_to_scale, parse_scale

__all__ = [
    "DegradationLR",
    "LRGenerator",
    "MatlabBicubicLR",
    "PairItem",
    "PairedDataset",
    "check_expected_files",
    "default_cache_dir",
    "files_by_stem",
    "fit_hr_to_lr",
    "require_dir",
]


# ------------------------------------------------------------------------------- helpers
def default_cache_dir() -> Path:
    """``$SRBENCH_DATA/cache`` (default ``data/cache``), the same root ``conf/bench.yaml`` uses."""
    return Path(os.environ.get("SRBENCH_DATA", "data")) / "cache"


def require_dir(path: str | os.PathLike, dataset: str, what: str = "folder") -> Path:
    """``path`` as a Path, or a one-line error saying how to lay the dataset out."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DatasetError(
            f"{dataset}: {what} {p} not found — run `srbench data prepare {dataset} --source PATH` "
            f"(`srbench data list` says what to put where), or point dataset.root at your copy"
        )
    return p


def check_expected_files(directory: Path, expected: Sequence[str], dataset: str, what: str = "") -> None:
    """Raise one line naming the missing files when ``directory`` lacks any of ``expected``."""
    present = set(os.listdir(directory))
    missing = [n for n in expected if n not in present]
    if missing:
        shown = ", ".join(missing[:8]) + (f", … ({len(missing) - 8} more)" if len(missing) > 8 else "")
        raise DatasetError(
            f"{dataset}: {len(missing)} of {len(expected)} {what + ' ' if what else ''}files missing in "
            f"{directory}: {shown} — a partial copy would give a different average; re-run "
            f"`srbench data prepare {dataset} --source PATH`"
        )


def fit_hr_to_lr(hr: torch.Tensor, lr: torch.Tensor, scale: int, hr_path: Path, lr_path: Path) -> tuple[torch.Tensor, bool]:
    """HR cropped (top-left) to exactly ``scale × LR`` when larger by less than ``scale``; else error."""
    (H, W), (h, w) = hr.shape[-2:], lr.shape[-2:]
    if (H, W) == (h * scale, w * scale):
        return hr, False
    if 0 <= H - h * scale < scale and 0 <= W - w * scale < scale:
        return hr[..., : h * scale, : w * scale], True
    raise DatasetError(
        f"size mismatch: HR {hr_path} is {W}×{H} but LR {lr_path} is {w}×{h}; at ×{scale} the HR must be "
        f"{w * scale}×{h * scale} (or larger by less than {scale} px, then it is mod-cropped)"
    )


def files_by_stem(files: Sequence[Path], *, strip_suffix: str = "", what: str = "files") -> dict[str, Path]:
    """Index image files by stem (minus ``strip_suffix``); two files with one key is an error.

    ``a.png`` and ``a.jpg`` (or ``a.png`` and ``a_out.png`` with suffix ``_out``) would otherwise
    silently drop one of them.
    """
    index: dict[str, Path] = {}
    for p in files:
        key = p.stem[: -len(strip_suffix)] if strip_suffix and p.stem.endswith(strip_suffix) else p.stem
        if key in index:
            raise DatasetError(f"two {what} map to the name {key!r}: {index[key].name} and {p.name}")
        index[key] = p
    return index


def _truly_colour(x: torch.Tensor) -> bool:
    return not (torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]))


# ---------------------------------------------------------------------------- LR makers
class LRGenerator(Protocol):
    """Makes the LR of one prepared HR. ``key()`` goes into the cache key and the manifest."""

    id: str

    def key(self) -> dict[str, Any]: ...

    def __call__(self, hr: torch.Tensor, name: str) -> tuple[torch.Tensor, dict[str, Any]]: ...

    def operator(self, hr: torch.Tensor) -> torch.Tensor | None: ...


@dataclass(frozen=True)
class MatlabBicubicLR:
    """MATLAB ``imresize(uint8 HR, 1/s, 'bicubic')`` — the operator of the official LR files.

    A non-integer ``s = p/q`` needs an HR whose sides are multiples of p; the output is then
    ``HR·q/p``, the length MATLAB's ``ceil(n/s)`` gives, computed exactly (no float ``ceil``).
    """

    scale: float
    id: str = "matlab-bicubic-uint8"

    def key(self) -> dict[str, Any]:
        return {"id": self.id, "scale": self.scale}

    def __call__(self, hr: torch.Tensor, name: str) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.operator(hr), {}

    def operator(self, hr: torch.Tensor) -> torch.Tensor:
        """B×C×H×W (or C×H×W) in [0, 1] → the LR the dataset would make (for LR-PSNR)."""
        if is_integer_scale(self.scale):
            return imresize(hr, 1.0 / self.scale, quantize=True)
        return imresize(hr, size=lr_size(tuple(hr.shape[-2:]), self.scale), quantize=True)


@dataclass
class DegradationLR:
    """A seeded stochastic degradation (Real-ESRGAN family), one seed per image name.

    ``seed_i = degradation_seed(dataset_id, name, cfg.seed)`` (protocols.md §6), so an image's
    LR depends only on (HR, config incl. base seed, dataset id, name) — not on order, workers
    or batch. Generation runs on CPU in float32 (the reproducible path); there is no LR-PSNR
    operator for a stochastic degradation.
    """

    degradation: Any  # srbench.data.degradations.RealESRGANDegradation
    scale: int
    dataset_id: str
    device: str = "cpu"  # "cuda" is faster but its LR bytes differ slightly: a separate cache key

    @property
    def id(self) -> str:
        return f"realesrgan-{self.degradation.cfg.profile}"

    def key(self) -> dict[str, Any]:
        key = {"id": self.id, "config_hash": self.degradation.config_hash(self.scale), "scale": self.scale,
               "base_seed": int(self.degradation.cfg.seed), "dataset_id": self.dataset_id}
        if self.device != "cpu":
            key["device"] = self.device
        return key

    def __call__(self, hr: torch.Tensor, name: str) -> tuple[torch.Tensor, dict[str, Any]]:
        seed = self.degradation.seed_for(self.dataset_id, name)
        lr, params = self.degradation.degrade(hr.to(self.device, torch.float32), self.scale, seed)
        return lr.cpu(), params

    def operator(self, hr: torch.Tensor) -> None:
        return None


# ------------------------------------------------------------------------------- dataset
@dataclass
class PairItem:
    """One image: ``name`` (unique, used for seeds and results), HR file, optional given LR file."""

    name: str
    hr_path: Path
    lr_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. crop position


class PairedDataset(SRDataset):
    """HR files (+ given or generated LR) → :class:`SRSample` (see the module docstring).

    Args:
        items: the images, in benchmark order.
        scale: SR factor; non-integer (e.g. 3.5) only with generated LR.
        protocol_id: e.g. ``div2k-x4-official-lr`` (goes into results rows via ``describe``).
        hr_rule: HR preparation (``None``: the file as it is).
        lr_generator: makes the LR when items have no ``lr_path``.
        cache_dir: LR cache root (default ``$SRBENCH_DATA/cache``); ``None`` keeps LR in memory only.
        dataset_id: cache folder / seed namespace (default: ``name``).
    """

    def __init__(self, *, name: str, items: Sequence[PairItem], scale: float, protocol_id: str,
                 hr_rule: HRRule | None = None, lr_generator: LRGenerator | None = None,
                 cache_dir: str | os.PathLike | None = "default", dataset_id: str | None = None,
                 extra_describe: Mapping[str, Any] | None = None):
        self.name = name
        self.scale = parse_scale(scale, name)  # int, or float for a non-integer scale
        self.items = list(items)
        if not self.items:
            raise DatasetError(f"{name}: no images")
        if not is_integer_scale(self.scale) and any(it.lr_path is not None for it in self.items):
            raise DatasetError(f"{name}: given LR files need an integer scale (got ×{self.scale:g}); "
                               "a non-integer scale needs generated LR (MATLAB bicubic)")
        self.names = [it.name for it in self.items]
        if len(set(self.names)) != len(self.names):
            raise DatasetError(f"{name}: image names are not unique")
        self.protocol_id = protocol_id
        self.hr_rule = hr_rule
        self.lr_generator = lr_generator
        self.dataset_id = dataset_id or name
        self._extra_describe = dict(extra_describe or {})
        self._warned_16bit = False
        needs_lr = any(it.lr_path is None for it in self.items)
        if needs_lr and lr_generator is None and type(self).load is PairedDataset.load:
            raise DatasetError(f"{name}: some images have no LR file and no LR generator is configured")
        self.cache: LRCache | None = None
        if needs_lr and lr_generator is not None and cache_dir is not None:
            root = default_cache_dir() if cache_dir == "default" else Path(cache_dir)
            self.cache = LRCache(root, self.dataset_id, self.cache_key())

    # ------------------------------------------------------------ hooks for subclasses
    def source_files(self, index: int) -> list[Path]:
        item = self.items[index]
        return [item.hr_path] + ([item.lr_path] if item.lr_path is not None else [])

    def read_source(self, item: PairItem) -> tuple[torch.Tensor, dict[str, Any]]:
        """Read the HR source file → (3×H×W on the 8-bit grid, meta)."""
        img = read_image(item.hr_path)
        meta: dict[str, Any] = {"was_gray": img.was_gray, "bit_depth": img.bit_depth, "hr_path": str(item.hr_path)}
        x = img.tensor
        if img.bit_depth > 8:
            if not self._warned_16bit:
                warnings.warn(f"{self.name}: {item.hr_path} is {img.bit_depth}-bit; quantized to 8 bits "
                              "(the standard profile)", stacklevel=3)
                self._warned_16bit = True
            x = quantize(x, 8)
            meta["quantized_to_8bit"] = True
        meta["source_size"] = tuple(x.shape[-2:])
        return x, meta

    def prepare_hr(self, source: torch.Tensor, item: PairItem) -> torch.Tensor:
        """Protocol HR from the source image (default: the HR rule, or the source unchanged)."""
        return self.hr_rule(source) if self.hr_rule is not None else source

    # ------------------------------------------------------------------------- loading
    def load(self, index: int) -> SRSample:
        item = self.items[index]
        source, meta = self.read_source(item)
        hr = self.prepare_hr(source, item)
        meta["hr_size_prepared"] = tuple(hr.shape[-2:])
        if item.lr_path is not None:
            lr_img = read_image(item.lr_path)
            lr = lr_img.tensor
            if lr_img.bit_depth > 8:
                lr = quantize(lr, 8)
            if meta["was_gray"] != lr_img.was_gray and _truly_colour(hr if lr_img.was_gray else lr):
                raise DatasetError(f"{self.name}: channel mismatch — HR {item.hr_path} is "
                                   f"{'grey' if meta['was_gray'] else 'colour'} but LR {item.lr_path} is "
                                   f"{'grey' if lr_img.was_gray else 'colour'}")
            hr, meta["hr_modcropped"] = fit_hr_to_lr(hr, lr, self.scale, item.hr_path, item.lr_path)
            meta["lr_path"] = str(item.lr_path)
            meta["lr_generation"] = "given"
        else:
            h, w = hr.shape[-2:]
            m = hr_multiple(self.scale)
            if min(h, w) < m:
                need = "" if m == self.scale else f" needs (HR sides are cropped to multiples of {m})"
                raise DatasetError(f"{self.name}: {item.hr_path} is {w}×{h} pixels, smaller than the scale "
                                   f"×{self.scale:g}{need}: its LR would be empty (remove the image or use a "
                                   "smaller scale)")
            meta["hr_modcropped"] = bool(h % m or w % m)
            hr = modcrop_to_scale(hr, self.scale)
            lr, lr_meta = self._generate_lr(item.name, hr)
            meta.update(lr_meta)
        meta["hr_size"] = tuple(hr.shape[-2:])
        meta.update(item.extra)
        return SRSample(item.name, lr, hr, float(self.scale), meta)

    def _generate_lr(self, name: str, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        assert self.lr_generator is not None
        gen = self.lr_generator
        if self.cache is None:
            lr, params = gen(hr, name)
            return lr, {"lr_generation": gen.id, "lr_cache": None, "lr_params": params}
        entry = self.cache.get(name, hr, lambda x: gen(x, name))
        return entry.lr, {"lr_generation": gen.id, "lr_cache": "hit" if entry.hit else "miss",
                          "lr_params": entry.params, "lr_sha256": entry.lr_sha256}

    def materialize(self, progress: bool = False) -> dict[str, Any]:
        """Generate (or verify) every LR in the cache and write its manifest; returns the manifest."""
        if self.cache is None:
            raise DatasetError(f"{self.name}: nothing to cache (the LR is given, or the cache is off)")
        indices = range(len(self))
        if progress:
            from tqdm import tqdm

            indices = tqdm(indices, desc=f"LR cache {self.name}", unit="img")
        for i in indices:
            self.load(i)
        self.cache.write_manifest(self.names)
        return self.cache.manifest(self.names)

    # --------------------------------------------------------------------------- info
    def degrade(self, hr: torch.Tensor) -> torch.Tensor | None:
        """The deterministic LR operator for LR-PSNR (MATLAB bicubic), or ``None`` (real/stochastic LR)."""
        if self.lr_generator is not None:
            return self.lr_generator.operator(hr)
        return None

    def cache_key(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "protocol": self.protocol_id,
                "hr_rule": self.hr_rule.describe() if self.hr_rule is not None else None,
                "lr": self.lr_generator.key() if self.lr_generator is not None else None}

    def _cache_summary(self, limit: int = 5000) -> dict[str, Any]:
        """Whether every LR is cached, and the manifest hash — from ``manifest.json`` for large sets
        (written by :meth:`materialize`), else from the per-image records."""
        if len(self.names) > limit:
            path = self.cache.dir / "manifest.json"  # type: ignore[union-attr]
            try:
                m = json.loads(path.read_text())
            except (OSError, ValueError):
                return {"complete": None, "manifest_sha256": None, "note": "run materialize() to write manifest.json"}
            complete = m.get("complete") and set(m.get("entries", {})) >= set(self.names)
            return {"complete": bool(complete), "manifest_sha256": m.get("sha256") if complete else None}
        m = self.cache.manifest(self.names)  # type: ignore[union-attr]
        return {"complete": m["complete"], "manifest_sha256": m["sha256"] if m["complete"] else None}

    def source_sizes(self, limit: int = 2000) -> list[tuple[str, int, int]] | None:
        """(file name, width, height) of each distinct HR source file, from its header (None past ``limit``)."""
        paths = list(dict.fromkeys(it.hr_path for it in self.items))
        if len(paths) > limit:
            return None
        out = []
        for p in paths:
            try:
                out.append((p.name, *image_size(p)))
            except (OSError, SyntaxError, ValueError):  # unreadable: reported when the image is loaded
                out.append((p.name, -1, -1))
        return out

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        made_by = self.lr_generator.id if self.lr_generator is not None else "custom"
        lr_ids = {"given" if it.lr_path is not None else made_by for it in self.items}
        info.update({
            "protocol": self.protocol_id,
            "lr_generation": "+".join(sorted(lr_ids)),
            "lr_generator": self.lr_generator.key() if self.lr_generator is not None else None,
            "hr_rule": self.hr_rule.describe() if self.hr_rule is not None else "as stored",
            "hr_fit": f"mod-crop top-left to a multiple of {hr_multiple(self.scale)} (generated LR) or to "
                      f"{self.scale}×LR when larger by < {self.scale} px (given LR)",
            "sixteen_bit": "quantized to 8 bits",
            "pillow": importlib.metadata.version("pillow"),
        })
        if self.cache is not None:
            info["lr_cache"] = {"dir": str(self.cache.dir), "key_hash": self.cache.hash, **self._cache_summary()}
        sizes = self.source_sizes()
        if sizes is not None:
            s = hr_multiple(self.scale)
            # The HR is the (mod-cropped) file itself only without an HR rule or a subclass's own preparation.
            as_stored = (self.hr_rule is None and type(self).prepare_hr is PairedDataset.prepare_hr
                         and type(self).load is PairedDataset.load)
            info["hr_sizes"] = [
                {"file": n, "source": [h, w], **({"after_modcrop": [h - h % s, w - w % s]} if as_stored else {})}
                for n, w, h in sizes
            ]
            info["hr_sizes_sha256"] = hashlib.sha256(repr(sizes).encode()).hexdigest()
        info.update(self._extra_describe)
        return info


