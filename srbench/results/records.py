"""What a run writes — per-image rows, ``summary.json``, ``manifest.json`` — for every command.

One module so that ``srbench-bench``, ``srbench score``, ``srbench-train`` and failed sweep jobs
write the same fields the same way:

* :func:`per_image_columns` / :func:`write_rows` — the CSV layout (cells in
  :func:`srbench.results.store.format_cell`'s one format);
* :func:`summarize_rows` / :func:`build_summary` — the summary of a set of rows, **one row per
  image** whatever the CSV holds (a duplicated row never counts twice);
* :func:`provenance`, :func:`bench_manifest`, :func:`score_manifest`, :func:`train_manifest`,
  :func:`write_failure` — the manifests;
* :class:`RunRecord` — a bench run's rows in memory (read once from ``per_image.csv``),
  appended as batches finish, and the summary written at each state change
  (``running`` → ``complete``/``partial``/``failed``), never re-derived from the CSV.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from srbench.fsutil import atomic_write_json, atomic_write_text
from srbench.results.provenance import device_info, git_state, library_versions
from srbench.results.seeds import SEED_INDEX, average_over_seeds, row_key, seed_block
from srbench.results.store import (
    STATUS_NONFINITE,
    STATUS_OK,
    STATUS_SKIPPED,
    PerImageCSV,
    RunDir,
    format_cell,
    parse_float,
)

#: columns every per_image.csv carries before the metric columns
BASE_COLUMNS = ["image", "seed", "status", "error"]
#: a bench run's timing columns (``srbench score`` has none)
TIMING_COLUMNS = ["time_ms", "peak_mem_mb", "batch", "nfe"]
#: after the metrics: the method's per-image notes (precision guard), the input files' signature
#: (resume rescoring an image whose file changed), the metric profile
TRAILING_COLUMNS = ["notes", "source_stat", "source_sha256", "profile"]


def per_image_columns(metric_columns: Sequence[str], timing: bool = True, seeds: bool = False) -> list[str]:
    """``seeds``: more than one draw per image, so rows carry ``seed_index`` (srbench.results.seeds)."""
    base = [*BASE_COLUMNS[:2], SEED_INDEX, *BASE_COLUMNS[2:]] if seeds else BASE_COLUMNS
    return base + list(metric_columns) + (TIMING_COLUMNS if timing else []) + TRAILING_COLUMNS


def metric_columns(suite: Any, *, has_hr: bool, lr_psnr: bool) -> list[str]:
    """The metric columns a run writes: the suite's computable ones, LR-PSNR only where the LR
    operator is known (``lr_psnr``), only the no-reference ones for LR-only sets."""
    columns = [c for c in suite.columns if c not in suite.missing and (c != "lr_psnr" or lr_psnr)]
    if not has_hr:
        columns = [c for c in columns if c in suite.no_reference_columns]
    return columns


def write_rows(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A whole per-image table, written atomically (``srbench score``: nothing to resume)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    w.writerows({c: format_cell(r.get(c)) for c in columns} for r in rows)
    atomic_write_text(path, buf.getvalue())


def _as_float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return parse_float(v)


def one_per_image(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The last row of each image (of each (image, seed_index) with seeds=K), in first-seen order:
    a duplicated row never counts twice."""
    last: dict[tuple[str, int], Mapping[str, Any]] = {}
    for r in rows:
        key = row_key(r)
        last.pop(key, None)
        last[key] = r
    return list(last.values())


def summarize_rows(rows: Sequence[Mapping[str, Any]], metric_columns: Sequence[str],
                   summarize: Callable[[Sequence[float]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Means, CIs and counts per metric over one row per image.

    Images whose SR was NaN/Inf (``nonfinite``) enter the metric statistics as NaN, so the set
    score is flagged invalid (protocols §7.4); images that could not be loaded (``skipped``) are
    counted apart. ``valid`` is False when either happened. Per metric, ``n`` counts the finite
    values the mean is over and ``n_inf`` the infinite ones left out (PSNR of SR = HR).
    """
    if summarize is None:
        from srbench.metrics.stats import summarize
    rows = one_per_image(rows)
    ok = [r for r in rows if r.get("status", STATUS_OK) == STATUS_OK]
    nonfinite = [r for r in rows if r.get("status") == STATUS_NONFINITE]
    skipped = [{"image": r["image"], "error": r.get("error", "")} for r in rows if r.get("status") == STATUS_SKIPPED]
    metrics: dict[str, Any] = {}
    for col in metric_columns:
        vals = [v for v in (_as_float(r.get(col)) for r in ok + nonfinite) if v is not None]
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


def build_summary(rows: Sequence[Mapping[str, Any]], metric_columns: Sequence[str], *, names: Sequence[str],
                  status: str | None, header: Mapping[str, Any], started: float,
                  error: str | None = None, seeds: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json`` of a run over ``names``: ``header`` (method, dataset, scale, profile, metric ids…)
    plus the statistics of the rows of those images; ``status`` None → complete/partial by coverage.

    ``seeds`` (``requested``, ``draws``, ``deterministic``): with draws > 1 the statistics over images
    are over each image's mean over its draws, and ``summary["seeds"]`` holds the per-seed means and
    the std across seeds (:func:`srbench.results.seeds.seed_block`).
    """
    wanted = set(names)
    mine = one_per_image(r for r in rows if r["image"] in wanted)
    draws = int((seeds or {}).get("draws", 1))
    body = summarize_rows(average_over_seeds(mine, [*metric_columns, *TIMING_COLUMNS], draws), metric_columns)
    covered = len(mine) if draws > 1 else body["n_images"] + body["n_skipped"] + body["n_nonfinite"]
    if status is None:
        status = "complete" if covered >= len(names) * draws else "partial"
    if status == "failed":  # no score of a failed run is a valid set score, even over the images it did
        body["valid"] = False
    summary = {**header, "status": status, "n_total": len(names), **body,
               "nfe": body["timing"].get("nfe", {}).get("mean"), "wall_time_s": time.time() - started}
    if seeds and int(seeds.get("requested", 1)) > 1:
        summary["seeds"] = seed_block(mine, metric_columns, requested=int(seeds["requested"]), draws=draws,
                                      deterministic=bool(seeds.get("deterministic")))
    if error:
        summary["error"] = error
    return summary


# ----------------------------------------------------------------------------- manifests
def provenance(device: Any = None) -> dict[str, Any]:
    """When, how and where: time, command line, git state, library versions, device."""
    out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv, "git": git_state(),
           "libraries": library_versions()}
    if device is not None:
        out["device"] = device_info(device)
    return out


def bench_manifest(*, run_name: str, config: Mapping[str, Any], method: Mapping[str, Any],
                   dataset: Mapping[str, Any], metrics: Mapping[str, Any], identity: Mapping[str, Any],
                   device: Any, dtype: Any, world: int, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """A bench run's manifest; a resumed run keeps its first manifest and appends the resumption."""
    now = provenance(device)
    if previous is not None:  # a resumed run keeps where its first rows came from
        resumption = {k: now[k] for k in ("time", "command", "git", "device")} | {"world_size": world}
        return {**previous, "resumes": [*previous.get("resumes", []), resumption]}
    return {"run_name": run_name, "created": now["time"], "command": now["command"], "git": now["git"],
            "identity": identity, "config": config, "method": method, "dataset": dataset, "metrics": metrics,
            "libraries": now["libraries"], "device": now["device"], "dtype": str(dtype), "world_size": world}


def score_manifest(args: Mapping[str, Any], device: Any, metrics: Mapping[str, Any]) -> dict[str, Any]:
    now = provenance(device)
    return {"created": now["time"], "command": now["command"], "git": now["git"], "args": dict(args),
            "metrics": metrics, "libraries": now["libraries"], "device": now["device"]}


def train_manifest(*, run_name: str, config: Mapping[str, Any], method: Mapping[str, Any],
                   dataset: Mapping[str, Any], device: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    now = provenance(device)
    return {"run_name": run_name, "created": now["time"], "command": now["command"], "git": now["git"],
            "config": config, "method": method, "dataset": dataset, "libraries": now["libraries"],
            "device": now["device"], **extra}


def write_failure(run: RunDir, *, method: str, dataset: str, scale: Any, profile: str, overrides: Sequence[str],
                  config: Mapping[str, Any], error: str, error_type: str) -> None:
    """A sweep job that failed: its manifest (overrides, config) and a ``failed`` summary."""
    now = provenance()
    run.write_manifest({"created": now["time"], "command": now["command"], "overrides": list(overrides),
                        "git": now["git"], "config": config})
    run.write_summary({"method": method, "dataset": dataset, "scale": scale, "profile": profile, "status": "failed",
                       "error": error, "error_type": error_type, "n_images": 0})


# ----------------------------------------------------------------------------- a bench run's rows
class RunRecord:
    """A bench run's per-image rows (one per image, or per (image, seed_index) with ``seeds=K``, in
    memory) and its summary writes.

    ``per_image.csv`` is read once, when the record opens: duplicate rows (two writers, a torn
    merge) collapse to the last one per image and the file is rewritten that way; rows that are
    not ``ok`` (skipped, NaN) are dropped so those images are tried again.
    """

    def __init__(self, run: RunDir, columns: Sequence[str], metric_columns: Sequence[str], *,
                 header: Mapping[str, Any], names: Sequence[str], started: float,
                 seeds: Mapping[str, Any] | None = None):
        self.run, self.metric_columns, self.header = run, list(metric_columns), dict(header)
        self.names, self.started, self.seeds = list(names), started, seeds
        self.table = PerImageCSV(run.per_image_path, columns)
        #: dataset-level metrics (FID, patch-FID): column → value, N, guard verdict; set before the last summary
        self.dataset_metrics: dict[str, dict[str, Any]] = {}
        stored = self.table.rows()
        self.rows: dict[tuple[str, int], dict[str, Any]] = {row_key(r): dict(r) for r in one_per_image(stored)
                                                             if r["status"] == STATUS_OK}
        if len(self.rows) != len(stored):
            self.rewrite()

    def done(self) -> set[tuple[str, int]]:
        """The (image, seed_index) pairs scored (seed_index 0 for single-draw runs)."""
        return set(self.rows)

    def drop(self, images: Iterable[str]) -> None:
        """Forget the rows of ``images`` (every draw; they are scored again) and rewrite the table."""
        gone = set(images)
        for key in [k for k in self.rows if k[0] in gone]:
            del self.rows[key]
        self.rewrite()

    def rewrite(self) -> None:
        self.table.replace(self.rows.values())

    def add(self, rows: Sequence[Mapping[str, Any]], *, table: PerImageCSV | None = None) -> None:
        """Record finished rows: appended to ``table`` (default ``per_image.csv``; a shard under torchrun)."""
        (table or self.table).append(rows)
        self.remember(rows)

    def remember(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for r in rows:
            key = row_key(r)
            self.rows.pop(key, None)
            self.rows[key] = {c: format_cell(v) if isinstance(v, float) else v for c, v in r.items()}

    def summary(self, status: str | None = None, error: str | None = None) -> dict[str, Any]:
        summary = build_summary(list(self.rows.values()), self.metric_columns, names=self.names, status=status,
                                header=self.header, started=self.started, error=error, seeds=self.seeds)
        if self.dataset_metrics:  # not per-image: one value per run, each with its N and guard note
            summary["dataset_metrics"] = self.dataset_metrics
            notes = [m["note"] for m in self.dataset_metrics.values() if m.get("note")]
            if notes:
                summary["notes"] = [*summary.get("notes", []), *notes]
        return summary

    def write_summary(self, status: str | None = None, error: str | None = None) -> dict[str, Any]:
        summary = self.summary(status, error)
        self.run.write_summary(summary)
        return summary

    def ordered_rows(self) -> list[dict[str, Any]]:
        position = {n: i for i, n in enumerate(self.names)}
        return sorted(self.rows.values(), key=lambda r: (position.get(r["image"], len(position)), row_key(r)[1]))


def write_score_record(out: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
                       summary: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
    write_rows(out / "per_image.csv", columns, rows)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_json(out / "manifest.json", manifest)
