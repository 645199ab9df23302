"""Scoring shared by ``srbench-bench`` and ``srbench score``: per-image rows and run summaries."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from srbench.results.store import STATUS_NONFINITE, STATUS_OK, STATUS_SKIPPED, parse_float

#: columns every per_image.csv carries besides the metric columns
BASE_COLUMNS = ["image", "seed", "status", "error"]
TIMING_COLUMNS = ["time_ms", "peak_mem_mb", "batch", "nfe"]


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
    """Means, CIs and counts per metric.

    Images whose SR was NaN/Inf (``nonfinite``) enter the metric statistics as NaN, so the
    set score is flagged invalid (protocols §7.4); images that could not be loaded
    (``skipped``) are counted apart. ``valid`` is False when either happened.
    """
    ok = [r for r in rows if r.get("status", STATUS_OK) == STATUS_OK]
    nonfinite = [r for r in rows if r.get("status") == STATUS_NONFINITE]
    skipped = [{"image": r["image"], "error": r.get("error", "")} for r in rows if r.get("status") == STATUS_SKIPPED]
    metrics: dict[str, Any] = {}
    for col in metric_columns:
        vals = [_as_float(r.get(col)) for r in ok + nonfinite]
        vals = [v for v in vals if v is not None]
        if vals:
            metrics[col] = summarize(vals)
    timing: dict[str, Any] = {}
    for col in ("time_ms", "peak_mem_mb", "nfe"):
        vals = [v for v in (_as_float(r.get(col)) for r in ok) if v is not None and math.isfinite(v)]
        if vals:
            timing[col] = {"mean": sum(vals) / len(vals), "max": max(vals)}
    valid = not skipped and not nonfinite and all(m.get("valid", True) for m in metrics.values())
    return {"n_images": len(ok), "n_skipped": len(skipped), "n_nonfinite": len(nonfinite), "valid": valid,
            "skipped": skipped, "nonfinite": [r["image"] for r in nonfinite], "metrics": metrics, "timing": timing}


def _as_float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return parse_float(v)
