"""The learning-rate schedule: linear warm-up, then step decay at milestones (ECDP ``lib/lr_sched.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from srbench.errors import ConfigError


def lr_factor(step: int, *, warmup_steps: int, milestones: Sequence[int], gamma: float) -> float:
    """Multiplier of every group's initial lr for optimizer step ``step`` (0-based).

    ECDP ``lib/lr_sched.py``: ``min(step + 1, warmup) / warmup · γ^#{milestones ≤ step}``,
    with milestones already converted to steps.
    """
    warm = min(step + 1, warmup_steps) / warmup_steps if warmup_steps > 0 else 1.0
    return warm * gamma ** sum(1 for m in milestones if m <= step)


def milestone_steps(schedule: Mapping[str, Any], steps_per_epoch: int) -> list[int]:
    unit = schedule.get("milestone_unit", "steps")
    if unit not in ("steps", "epochs"):
        raise ConfigError(f"schedule.milestone_unit must be steps or epochs (got {unit!r})")
    per = steps_per_epoch if unit == "epochs" else 1
    return sorted(int(m) * per for m in schedule.get("milestones") or [])


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: Mapping[str, Any],
                    milestones: Sequence[int]) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying :func:`lr_factor` to every parameter group of ``optimizer``."""
    warmup, gamma = int(schedule.get("warmup_steps", 0) or 0), float(schedule.get("gamma", 0.5))
    fixed = list(milestones)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup_steps=warmup, milestones=fixed, gamma=gamma))
