"""Classic SR baselines (Real-ESRGAN, SwinIR, HAT, RCAN, …) through spandrel — see :mod:`methods.spandrel.method`."""

from methods.spandrel.method import Spandrel

__all__ = ["Spandrel"]
