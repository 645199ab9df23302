"""``logger=csv``: step-wise scalars appended to a CSV file (flushed per row)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

from srbench.fsutil import atomic_path
from srbench.tracking.base import Logger


class CSVLogger(Logger):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                self._fields = next(csv.reader(f), None)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        if self._fields is None:
            self._fields = list(row)
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self._fields)
        new = [k for k in row if k not in self._fields]
        if new:  # a new metric appeared: rewrite the header once, keep old rows
            self._rewrite_with(self._fields + new)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._fields).writerow(row)
            f.flush()

    def _rewrite_with(self, fields: list[str]) -> None:
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        self._fields = fields
