"""ECDP (Yuan & Yuan, AAAI 2024) re-implemented for srbench; see README.md.

``ECDP`` is resolved lazily so that importing the package (e.g. by ``srbench list``) does not
import torch or torchdiffeq.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ECDP"]

if TYPE_CHECKING:
    from .method import ECDP


def __getattr__(name: str) -> Any:
    if name == "ECDP":
        from .method import ECDP

        return ECDP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
