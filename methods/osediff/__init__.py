"""OSEDiff (Wu et al., NeurIPS 2024): one-step SD-2.1-base super-resolution with LoRA adapters."""

from .method import OSEDiff

__all__ = ["OSEDiff"]
