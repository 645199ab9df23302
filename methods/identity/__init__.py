"""Nearest-neighbour / no-op lower bound — see :mod:`methods.identity.method`."""

from methods.identity.method import Identity

__all__ = ["Identity"]
