"""Checkpoint files of a training run and its CSV log (reading them is :mod:`srbench.training`)."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from srbench.errors import CheckpointError
from srbench.fsutil import atomic_path
from srbench.training import list_checkpoints


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`srbench.fsutil.atomic_path` (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / f"step_{step:08d}.pt"


def prune(ckpt_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (0: keep all)."""
    if keep > 0:
        for _, old in list_checkpoints(ckpt_dir)[:-keep]:
            old.unlink(missing_ok=True)


def module_state(module: torch.nn.Module, which: str) -> dict[str, torch.Tensor]:
    """State to checkpoint: everything, or all but frozen parameters (they come from the method's weights)."""
    sd = module.state_dict()
    if which == "all":
        return sd
    frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
    return {k: v for k, v in sd.items() if k not in frozen}


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    result = module.load_state_dict(dict(state), strict=False)
    if result.unexpected_keys:
        raise CheckpointError(f"{what}: keys not in the model: {', '.join(result.unexpected_keys[:5])}"
                              f"{'…' if len(result.unexpected_keys) > 5 else ''} (different method or config?)")


def truncate_log(path: Path, last_step: int) -> None:
    """Drop rows logged after ``last_step`` (a killed run logged steps the resumed run will redo)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    if not fields:
        return
    keep = [r for r in rows if not r.get("step") or float(r["step"]) <= last_step]
    if len(keep) == len(rows):
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(keep)
