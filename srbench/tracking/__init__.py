"""Experiment loggers: ``none``, ``csv`` and ``wandb`` (a sink, never the source of truth).

The results store (``srbench.results``) is what a run leaves on disk; loggers mirror it to a
dashboard. Both runners (bench, train) talk to loggers through :class:`Logger` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from srbench.tracking.base import Logger, NullLogger
from srbench.tracking.csv_logger import CSVLogger


def build_logger(cfg: Mapping[str, Any] | None, *, run_dir: Path, run_name: str, group: str,
                 config: Mapping[str, Any] | None = None) -> Logger:
    """Build the logger named ``cfg['name']`` (``none`` when cfg is empty)."""
    name = (cfg or {}).get("name", "none")
    if name == "none":
        return NullLogger()
    if name == "csv":
        return CSVLogger(run_dir / (cfg or {}).get("filename", "log.csv"))
    if name == "wandb":
        from srbench.tracking.wandb_logger import WandbLogger  # wandb is imported only when asked for

        return WandbLogger(dict(cfg or {}), run_dir=run_dir, run_name=run_name, group=group, config=config)
    raise ValueError(f"unknown logger {name!r}; available: none, csv, wandb")


__all__ = ["CSVLogger", "Logger", "NullLogger", "build_logger"]
