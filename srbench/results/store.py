"""The results store: ``results/<dataset>/<method>/<run>/{per_image.csv, summary.json, manifest.json}``.

* ``per_image.csv`` — one row per image, appended and fsync'ed per batch. On restart the rows
  already present are skipped (resume). A row cut short by a crash (no trailing newline) is
  dropped when the store is opened, so it is recomputed rather than half-counted.
* ``summary.json`` / ``manifest.json`` — written atomically (temp file + rename). The summary's
  ``status`` is ``complete`` only when every image of the dataset has a row; a killed run
  leaves ``running``/``partial``, a crashed one ``failed``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from srbench.errors import UserError
from srbench.fsutil import atomic_path, atomic_write_json

STATUS_OK = "ok"
STATUS_SKIPPED = "skipped"  # could not be loaded / scored (on_error=skip)
STATUS_NONFINITE = "nonfinite"  # the method returned NaN/Inf (on_error=skip); metrics are NaN


class ResultsError(UserError, RuntimeError):
    pass


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


class PerImageCSV:
    """Append-only per-image table with crash-safe resume."""

    def __init__(self, path: str | os.PathLike, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            self._repair_and_check_header()
        else:
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)
                f.flush()
                os.fsync(f.fileno())

    def _repair_and_check_header(self) -> None:
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):  # a row torn by a crash: drop it, it will be recomputed
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
        with open(self.path, newline="") as f:
            header = next(csv.reader(f), None)
        if header != self.columns:
            raise ResultsError(
                f"{self.path} has columns {header} but this run writes {self.columns}; "
                "use a new run_name or delete the old run directory"
            )

    def rows(self) -> list[dict[str, str]]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def done(self) -> set[tuple[str, int]]:
        """The (image, seed_index) pairs present (seed_index 0 for single-draw runs)."""
        from srbench.results.seeds import row_key

        return {row_key(r) for r in self.rows()}

    def keep(self, predicate: Any) -> None:
        """Rewrite the table (atomically) with only the rows for which ``predicate(row)`` holds."""
        rows = self.rows()
        kept = [r for r in rows if predicate(r)]
        if len(kept) != len(rows):
            self.replace(kept)

    def replace(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rewrite the whole table with ``rows`` in one atomic step."""
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="raise")
            w.writeheader()
            w.writerows({c: format_cell(row.get(c)) for c in self.columns} for row in rows)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="raise")
            for row in rows:
                w.writerow({c: format_cell(row.get(c)) for c in self.columns})
            f.flush()
            os.fsync(f.fileno())


def format_cell(v: Any) -> Any:
    """The one CSV cell format of the results store: floats at full precision (``repr``, so
    ``inf``/``nan`` round-trip through ``float()``), None as empty."""
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def parse_float(s: str) -> float:
    return float(s) if s not in ("", None) else math.nan


class RunDir:
    """One run's directory in the results store."""

    def __init__(self, root: str | os.PathLike, dataset: str, method: str, run_name: str):
        self.path = Path(root) / dataset / method / run_name
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def per_image_path(self) -> Path:
        return self.path / "per_image.csv"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    def per_image(self, columns: Sequence[str]) -> PerImageCSV:
        return PerImageCSV(self.per_image_path, columns)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_json(self.summary_path, summary)

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        atomic_write_json(self.manifest_path, manifest)
