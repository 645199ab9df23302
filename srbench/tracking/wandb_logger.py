"""``logger=wandb``: project ``srbench``, group = dataset, run name = method + overrides.

Without an API key (or with ``WANDB_MODE=offline``) the run is written offline under the run
directory and the closing line says how to upload it with ``wandb sync``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from srbench.tracking.base import Logger

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


class WandbLogger(Logger):
    def __init__(self, cfg: Mapping[str, Any], *, run_dir: Path, run_name: str, group: str,
                 config: Mapping[str, Any] | None = None):
        import hashlib

        import wandb

        mode = cfg.get("mode") or os.environ.get("WANDB_MODE") or ("online" if _has_api_key() else "offline")
        self._wandb = wandb
        self.run = wandb.init(
            project=cfg.get("project", "srbench"),
            entity=cfg.get("entity"),
            group=group,
            name=run_name,
            dir=str(run_dir),
            mode=mode,
            config=dict(config or {}),
            tags=list(cfg.get("tags", []) or []),
            reinit="finish_previous",
            # a stable id per run directory: a resumed run continues the same W&B run
            id=hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16],
            resume="allow",
        )
        self.offline = mode == "offline"

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.run.log(dict(metrics), step=step)

    def log_table(self, name: str, rows: Sequence[Mapping[str, Any]], images: Mapping[str, Any] | None = None) -> None:
        """A ``wandb.Table`` with the union of the rows' keys as columns (first-seen order). A cell
        holding a :class:`pathlib.Path` to an image file is logged as a ``wandb.Image``; ``images``
        ({image name: array}) adds an ``sr`` column matched by each row's ``image``."""
        if not rows:
            return
        columns = list(dict.fromkeys(k for row in rows for k in row))
        # W&B types a column by its first value and rejects a later one of another kind: a column
        # mixing text and numbers (e.g. "best" among p-values) is logged as text throughout
        mixed = {c for c in columns
                 if len({type(r.get(c)) for r in rows if r.get(c) is not None} - {int, float, bool}) > 0
                 and any(isinstance(r.get(c), (int, float)) for r in rows)}
        rows = [{c: (str(r[c]) if c in mixed and r.get(c) is not None else r.get(c)) for c in columns} for r in rows]
        extra = ["sr"] if images else []
        table = self._wandb.Table(columns=columns + extra)
        for row in rows:
            cells = [self._cell(row.get(c)) for c in columns]
            if images:
                img = images.get(row.get("image"))
                cells.append(self._wandb.Image(img) if img is not None else None)
            table.add_data(*cells)
        self.run.log({name: table})

    def _cell(self, v: Any) -> Any:
        if isinstance(v, Path) and v.suffix.lower() in _IMAGE_SUFFIXES:
            return self._wandb.Image(str(v))
        return str(v) if isinstance(v, Path) else v

    def log_images(self, images: Mapping[str, Any]) -> None:
        if images:
            self.run.log({k: self._wandb.Image(str(v) if isinstance(v, Path) else v) for k, v in images.items()})

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        for k, v in summary.items():
            self.run.summary[k] = v

    def finish(self) -> None:
        run_dir = getattr(self.run, "dir", None)
        self.run.finish()
        if self.offline and run_dir:
            print(f"wandb: run saved offline; upload with `wandb sync {Path(run_dir).parent}`")
