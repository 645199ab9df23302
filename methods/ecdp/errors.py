"""ECDP's user-facing errors: the runners print them as one line and exit 2, no stack trace.

* :class:`ECDPConfigError` — a bad ``method.*`` setting (solver, stage, encoder/U-Net shape, dtype,
  a missing stage input); the message names the setting and what to set it to.
* :class:`CheckpointError` — a checkpoint that exists but does not fit the configured model or
  holds no weights (a :class:`srbench.weights.WeightsFormatError`); absent files are
  :class:`srbench.weights.MissingWeightsError`.

``srbench.runners.errors`` is imported for ``UserError`` only (a dependency-free module); a method
never imports the runners themselves.
"""

from __future__ import annotations

from srbench.runners.errors import UserError
from srbench.weights import WeightsFormatError


class ECDPConfigError(UserError, ValueError):
    """A bad ECDP setting; ``str(err)`` is one line naming the setting."""


class CheckpointError(WeightsFormatError):
    """A checkpoint that cannot be used for this model; ``str(err)`` is one line."""
