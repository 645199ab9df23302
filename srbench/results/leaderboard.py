"""The leaderboard: one table of run summaries, used by ``srbench-bench``, ``srbench score`` and
``srbench report`` alike, so the same run reads the same everywhere.

:func:`frame` turns summaries into a pandas frame (one row per run): status, n, skipped and
non-finite counts, ``valid``, every metric's mean with its 95 % CI half-width, its own ``n`` and
its count of infinite values (left out of the mean: PSNR of an SR equal to its HR), ms/img and
NFE. Metric columns are every metric any summary has, the common ones first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: metrics in their usual table order; any other metric follows, alphabetically
METRIC_ORDER = ("psnr", "ssim", "lpips", "lpips_vgg", "lr_psnr", "fid", "patch_fid")
LABELS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "lpips_vgg": "LPIPS-VGG", "lr_psnr": "LR-PSNR",
          "fid": "FID", "patch_fid": "pFID"}
_DIGITS = {"psnr": 3, "ssim": 4, "lpips": 4, "lpips_vgg": 4, "lr_psnr": 2, "fid": 2, "patch_fid": 2}


def num(v: Any) -> float:
    try:
        return float(v)  # "inf"/"nan" strings (JSON) come back as floats
    except (TypeError, ValueError):
        return math.nan


def metric_columns(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every metric a summary has or reports missing (a missing one reads "—", not absent)."""
    present = {m for s in summaries for m in [*(s.get("metrics") or {}), *(s.get("missing_metrics") or {}),
                                              *(s.get("dataset_metrics") or {})]}
    return [m for m in METRIC_ORDER if m in present] + sorted(present - set(METRIC_ORDER))


def record(summary: Mapping[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    """One leaderboard row of a run summary."""
    rec: dict[str, Any] = {"method": summary.get("method") or summary.get("sr_dir"),
                           "status": summary.get("status"), "n": summary.get("n_images"),
                           "skipped": summary.get("n_skipped", 0), "nonfinite": summary.get("n_nonfinite", 0),
                           "valid": summary.get("valid")}
    for m in metrics:
        dataset_level = (summary.get("dataset_metrics") or {}).get(m)
        if dataset_level is not None:  # FID, patch-FID: one value, its N, marked when N is short
            rec[m] = num(dataset_level.get("value"))
            rec[f"{m}_ci95"], rec[f"{m}_n_inf"] = math.nan, 0
            rec[f"{m}_n"], rec[f"{m}_low_n"] = dataset_level.get("n"), bool(dataset_level.get("low_n"))
            continue
        stats = (summary.get("metrics") or {}).get(m)
        rec[m] = num(stats.get("mean")) if stats else math.nan
        rec[f"{m}_ci95"] = (num(stats.get("ci95_high")) - num(stats.get("ci95_low"))) / 2 if stats else math.nan
        rec[f"{m}_n"] = stats.get("n") if stats else None
        rec[f"{m}_n_inf"] = stats.get("n_inf", 0) if stats else 0
    rec["ms_per_img"] = num((summary.get("timing") or {}).get("time_ms", {}).get("mean"))
    rec["nfe"] = summary.get("nfe")
    return rec


def frame(summaries: Sequence[Mapping[str, Any]], extra: Sequence[Mapping[str, Any]] | None = None) -> Any:
    """The leaderboard frame; ``extra`` (one mapping per summary) adds columns such as dataset or run."""
    import pandas as pd

    metrics = metric_columns(summaries)
    records = [record(s, metrics) | dict((extra or [{}] * len(summaries))[i]) for i, s in enumerate(summaries)]
    df = pd.DataFrame.from_records(records)
    df.attrs["metrics"] = metrics
    return df


def metric_cell(row: Mapping[str, Any], m: str) -> str:
    """``27.721``, or ``27.721 (n=2, 1 inf)`` when the mean is over fewer images than the run has."""
    v = row.get(m)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    text = f"{v:.{_DIGITS.get(m, 4)}f}"
    if f"{m}_low_n" in row:  # dataset-level (FID): always its N; "low N" below the guard
        return text + f" (N={row.get(f'{m}_n')}" + (", low N)" if row[f"{m}_low_n"] else ")")
    n, n_inf, n_run = row.get(f"{m}_n"), row.get(f"{m}_n_inf") or 0, row.get("n")
    if n is not None and (n_inf or (n_run is not None and n != n_run)):
        text += f" (n={n}" + (f", {n_inf} inf" if n_inf else "") + ")"
    return text


def console(df: Any) -> str:
    """The table ``srbench-bench`` and ``srbench score`` print."""
    import pandas as pd

    metrics = df.attrs.get("metrics", [])
    out = pd.DataFrame({
        "method": df["method"], "status": df["status"], "n": df["n"], "skip": df["skipped"], "NaN": df["nonfinite"],
        "valid": df["valid"].map(lambda v: "yes" if v is True else ("no" if v is False else "—")),
        **{LABELS.get(m, m): [metric_cell(r, m) for r in df.to_dict("records")] for m in metrics},
        "ms/img": df["ms_per_img"].map(lambda v: "—" if math.isnan(v) else f"{v:.1f}"),
    })
    return out.to_string(index=False, na_rep="—")


def markdown(df: Any) -> str:
    def cell(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else ("—" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
