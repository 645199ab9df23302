"""Scoring shared by ``srbench-bench`` and ``srbench score``: per-image rows and run summaries."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from srbench.results.store import STATUS_OK, STATUS_SKIPPED, parse_float

#: columns every per_image.csv carries besides the metric columns
BASE_COLUMNS = ["image", "seed", "status", "error"]
TIMING_COLUMNS = ["time_ms", "peak_mem_mb"]


def per_image_columns(metric_columns: Sequence[str], timing: bool = True) -> list[str]:
    return BASE_COLUMNS + list(metric_columns) + (TIMING_COLUMNS if timing else []) + ["profile"]


def score_batch(suite: Any, sr: torch.Tensor, hr: torch.Tensor | None, lr: torch.Tensor | None, *, scale: float,
                degrade: Callable[[torch.Tensor], torch.Tensor] | None, gray: Sequence[bool] | None = None,
                names: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Per-image metric values of one equal-size batch, as Python floats by column."""
    values = suite(sr, hr, lr, scale=scale, degrade=degrade, gray=gray, names=names)
    return {col: [float(v) for v in t.detach().cpu().tolist()] for col, t in values.items()}


def summarize_rows(rows: Sequence[Mapping[str, Any]], metric_columns: Sequence[str],
                   summarize: Callable[[Sequence[float]], dict[str, Any]]) -> dict[str, Any]:
    """Means, CIs and counts per metric over the ``ok`` rows; skipped images are counted apart."""
    ok = [r for r in rows if r.get("status", STATUS_OK) == STATUS_OK]
    skipped = [{"image": r["image"], "error": r.get("error", "")} for r in rows if r.get("status") == STATUS_SKIPPED]
    metrics: dict[str, Any] = {}
    for col in metric_columns:
        vals = [_as_float(r.get(col)) for r in ok]
        vals = [v for v in vals if v is not None]
        if vals:
            metrics[col] = summarize(vals)
    timing: dict[str, Any] = {}
    for col in TIMING_COLUMNS:
        vals = [v for v in (_as_float(r.get(col)) for r in ok) if v is not None and math.isfinite(v)]
        if vals:
            timing[col] = {"mean": sum(vals) / len(vals), "max": max(vals)}
    return {"n_images": len(ok), "n_skipped": len(skipped), "skipped": skipped, "metrics": metrics,
            "timing": timing}


def _as_float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return parse_float(v)
