"""The logger interface shared by the bench and train runners."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class Logger:
    """Receives scalars, per-image tables and the final summary. All methods are optional."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_table(self, name: str, rows: Sequence[Mapping[str, Any]], images: Mapping[str, Any] | None = None) -> None:
        pass

    def log_images(self, images: Mapping[str, Any]) -> None:
        """{key: image file path}: figures (e.g. the report's plots)."""

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


class NullLogger(Logger):
    """``logger=none``."""
