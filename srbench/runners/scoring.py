"""The scoring call shared by ``srbench-bench``, ``srbench score`` and training validation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def score_batch(suite: Any, sr: torch.Tensor, hr: torch.Tensor | None, lr: torch.Tensor | None, *, scale: float,
                degrade: Callable[[torch.Tensor], torch.Tensor] | None, gray: Sequence[bool] | None = None,
                names: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Per-image metric values of one equal-size batch, as Python floats by column."""
    values = suite(sr, hr, lr, scale=scale, degrade=degrade, gray=gray, names=names)
    return {col: [float(v) for v in t.detach().cpu().tolist()] for col, t in values.items()}
