"""The bicubic baseline (MATLAB ``imresize``) — see :mod:`methods.bicubic.method`."""

from methods.bicubic.method import Bicubic

__all__ = ["Bicubic"]
