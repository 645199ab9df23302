"""InvSR (Yue et al., CVPR 2025): diffusion inversion over SD-Turbo with a learned start-noise predictor.

``InvSR`` is resolved lazily so that importing the package (e.g. by ``srbench list``) does not import
torch or diffusers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["InvSR"]

if TYPE_CHECKING:
    from .method import InvSR


def __getattr__(name: str) -> Any:
    if name == "InvSR":
        from .method import InvSR

        return InvSR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
