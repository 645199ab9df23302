"""ECDP's user-facing errors: the runners print them as one line and exit 2, no stack trace.

* :class:`ECDPConfigError` — a bad ``method.*`` setting (solver, stage, encoder/U-Net shape, dtype,
  a missing stage input); the message names the setting and what to set it to.
* :class:`CheckpointError` — srbench's one checkpoint error (:mod:`srbench.errors`): a checkpoint
  that exists but does not fit the configured model or holds no weights; absent files are
  :class:`srbench.weights.MissingWeightsError`.
"""

from __future__ import annotations

from srbench.errors import CheckpointError, ConfigError

__all__ = ["CheckpointError", "ECDPConfigError"]


class ECDPConfigError(ConfigError):
    """A bad ECDP setting; ``str(err)`` is one line naming the setting."""
