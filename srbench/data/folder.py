"""``folder``: any folder of images.

* ``hr_dir`` only — HR images; LR made by MATLAB-exact bicubic (the default degradation), at
  any scale: a non-integer one (``dataset.scale=3.5``) crops the HR to a multiple of its
  numerator (:mod:`srbench.data.scales`).
* ``hr_dir`` + ``lr_dir`` — given pairs, matched by file stem (``<stem>`` or ``<stem>x<scale>``,
  the Set5/DIV2K naming). The size rule, 16-bit and grey/colour handling are those of
  :class:`srbench.data.paired.PairedDataset`.
* ``lr_dir`` only — LR-only: SR images are produced and only no-reference columns are scored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from srbench.data.base import DatasetError, SRSample
from srbench.data.io import list_images, quantize, read_image
from srbench.data.paired import MatlabBicubicLR, PairedDataset, PairItem, files_by_stem
from srbench.data.scales import is_integer_scale, parse_scale


def _check_dir(path: str | os.PathLike | None, key: str) -> Path | None:
    if path in (None, ""):
        return None
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DatasetError(f"folder: {key}={p} is not a directory (set dataset.{key}=/path/to/images)")
    return p


def match_pairs(hr_files: list[Path], lr_files: list[Path], scale: int) -> list[PairItem]:
    """Pair HR and LR files by stem; the LR may carry the ``x<scale>`` suffix. Unmatched → error."""
    by_stem = files_by_stem(lr_files, what="LR files")
    files_by_stem(hr_files, what="HR files")
    items, missing = [], []
    for hr in hr_files:
        lr = by_stem.get(hr.stem) or by_stem.get(f"{hr.stem}x{scale}")
        if lr is None:
            missing.append(hr.name)
        else:
            items.append(PairItem(hr.stem, hr, lr))
    used = {it.lr_path for it in items}
    extra = [p.name for p in lr_files if p not in used]
    if missing or extra:
        raise DatasetError(
            f"folder: HR/LR files do not pair up by name — HR without LR: {missing[:10]}"
            f"{'…' if len(missing) > 10 else ''}; LR without HR: {extra[:10]}{'…' if len(extra) > 10 else ''}"
        )
    return items


class FolderDataset(PairedDataset):
    name = "folder"

    def __init__(self, hr_dir: str | None = None, lr_dir: str | None = None, scale: float = 4,
                 degradation: str | None = None, max_images: int | None = None, name: str | None = None):
        s = parse_scale(scale, "folder")
        self.hr_dir, self.lr_dir = _check_dir(hr_dir, "hr_dir"), _check_dir(lr_dir, "lr_dir")
        if self.hr_dir is not None and self.lr_dir is not None and not is_integer_scale(s):
            raise DatasetError(f"folder: HR–LR pairs (hr_dir + lr_dir) need an integer scale (got ×{s:g}); a "
                               "non-integer scale needs HR only (LR made by MATLAB bicubic)")
        if self.hr_dir is None and self.lr_dir is None:
            raise DatasetError("folder: set dataset.hr_dir=/path/to/hr (and/or dataset.lr_dir=/path/to/lr)")
        # Which operator made the LR: known when we make it ourselves, or when the user says so.
        self.degradation = degradation or ("bicubic" if self.lr_dir is None else "unknown")
        if self.degradation not in ("bicubic", "unknown"):
            raise DatasetError(f"folder: degradation must be 'bicubic' or 'unknown' (got {self.degradation!r})")
        if self.hr_dir and self.lr_dir:
            items = match_pairs(list_images(self.hr_dir), list_images(self.lr_dir), s)
        elif self.hr_dir:
            items = [PairItem(p.stem, p) for p in list_images(self.hr_dir)]
        else:  # LR-only: the LR file stands where the HR would
            items = [PairItem(p.stem, p) for p in list_images(self.lr_dir)]
        if not items:
            raise DatasetError(f"folder: no images found in {self.hr_dir or self.lr_dir}")
        items = items[:max_images] if max_images else items
        lr_only = self.hr_dir is None
        super().__init__(
            name=name or "folder", items=items, scale=s,
            protocol_id=f"folder-x{s}-{'lr-only' if lr_only else 'given-lr' if self.lr_dir else 'matlab-bicubic'}",
            lr_generator=None if (lr_only or self.lr_dir) else MatlabBicubicLR(s), cache_dir=None,
            extra_describe={"hr_dir": str(self.hr_dir) if self.hr_dir else None,
                            "lr_dir": str(self.lr_dir) if self.lr_dir else None, "lr_operator": self.degradation})

    @property
    def has_hr(self) -> bool:
        return self.hr_dir is not None

    def load(self, index: int) -> SRSample:
        if self.hr_dir is not None:
            return super().load(index)
        item = self.items[index]
        img = read_image(item.hr_path)
        lr = quantize(img.tensor, 8) if img.bit_depth > 8 else img.tensor
        return SRSample(item.name, lr, None, float(self.scale),
                        {"was_gray": img.was_gray, "bit_depth": img.bit_depth, "lr_path": str(item.hr_path)})

    def degrade(self, hr: torch.Tensor) -> torch.Tensor | None:
        return MatlabBicubicLR(self.scale).operator(hr) if self.degradation == "bicubic" else None

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "hr_crop": "modcrop (top-left) to scale × LR (a multiple of the scale's numerator)"}
        if self.hr_dir is None:
            info.update(lr_generation="given (LR-only)", hr_crop=None, hr_rule=None)
            info.pop("hr_sizes", None)
        return info
