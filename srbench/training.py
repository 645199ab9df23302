"""The contract between a trainable method and the training runner (``srbench-train``).

The runner owns the loop: data, optimizer, LR schedule, mixed precision (accelerate),
gradient accumulation and clipping, gradient averaging over processes, EMA, checkpoints,
exact resume, validation and logging. A method owns its losses: ``SRMethod.trainer(cfg)``
returns a :class:`Trainer` (``cfg`` is the whole resolved training config, so a trainer can
read e.g. ``cfg["method"]["stage"]``).

How the runner calls a Trainer, per optimizer step::

    for each of grad_accum micro-batches:
        with autocast(mixed_precision):
            losses = trainer.training_step(batch)        # dict; losses["loss"] is back-propagated
        backward(losses["loss"] / grad_accum)             # (with loss scaling for fp16)
    average gradients over processes; clip; optimizer.step(); lr schedule; EMA update

Rules for a Trainer:

* ``training_step`` computes losses only: no ``backward``, no optimizer step, no ``.item()``
  (the runner averages every returned scalar for logging without a device sync per step).
* Randomness (noise, timesteps) may come from the global torch/numpy/python RNGs: the runner
  seeds them per process and restores them exactly on resume. Validation never moves them.
* The runner moves ``modules()`` to the device, sets ``train()``/``eval()``, checkpoints their
  trainable parameters and buffers (frozen parameters come back from the method's own
  weights when the method is rebuilt), keeps the EMA of their trainable parameters, and
  averages gradients of ``parameter_groups`` across processes (no DDP wrapper: call your own
  module objects as usual).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class Trainer(abc.ABC):
    """What a method provides for training.

    ``batch`` is a dict with ``"hr"`` (B×3×H×W) and ``"lr"`` (B×3×h×w) float32 tensors in [0, 1]
    on the training device, plus ``"scale"`` (float), ``"names"`` (list of str, the source image
    of each patch) and ``"keys"`` (list of (epoch, index), the sample ids of the data stream).
    """

    @abc.abstractmethod
    def modules(self) -> Mapping[str, nn.Module]:
        """The modules whose state is trained and checkpointed (EMA is kept for each)."""

    def parameter_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups; default: every trainable parameter at ``base_lr``.

        A group may carry its own ``"lr"`` (e.g. ECDP trains its LR encoder at 1e-5); the
        runner's schedule multiplies every group's initial lr by the same factor.
        """
        params = [p for m in self.modules().values() for p in m.parameters() if p.requires_grad]
        return [{"params": params, "lr": base_lr}]

    @abc.abstractmethod
    def training_step(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Compute the losses of one batch; the runner back-propagates ``out["loss"]``.

        Every other entry (scalar tensors) is logged as an average over the logging interval.
        """

    @abc.abstractmethod
    def eval_method(self) -> Any:
        """An SRMethod that upscales with the *current* weights of ``modules()`` (for validation).

        The runner swaps EMA weights in before calling it when EMA is enabled.
        """

    def state_dict(self) -> dict[str, Any]:
        """Extra state to checkpoint besides ``modules()`` (e.g. a degradation queue); default none."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (called on resume)."""
