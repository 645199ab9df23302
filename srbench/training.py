"""The contract between a trainable method and the training runner (``srbench-train``).

The runner owns the loop: data, optimizer, LR schedule, mixed precision (accelerate),
gradient accumulation and clipping, gradient averaging over processes, EMA, checkpoints,
exact resume, validation and logging. A method owns its losses: ``SRMethod.trainer(cfg)``
returns a :class:`Trainer` (``cfg`` is the whole resolved training config, so a trainer can
read e.g. ``cfg["method"]["stage"]``).

How the runner calls a Trainer, per optimizer step (one optimizer, the default)::

    for each of grad_accum micro-batches:
        with autocast(mixed_precision):
            losses = trainer.training_step(batch)        # dict; losses["loss"] is back-propagated
        backward(losses["loss"] / grad_accum)             # (with loss scaling for fp16)
    average gradients over processes; clip; optimizer.step(); lr schedule; EMA update

Several optimizers (a GAN discriminator, OSEDiff's fake-score UNet): the trainer names them in
:meth:`Trainer.optimizer_groups` (``{"generator": [...], "discriminator": [...]}``) and the
config gives each its optimizer (``optimizers.<name>``: ``_target_``, lr, betas …, and
``optimizers.<name>.clip`` — see ``conf/train.yaml``). One optimizer step is then, for each
name of :meth:`Trainer.phases` in order::

    zero this optimizer's gradients
    for each micro-batch (the same micro-batches for every phase of the step):
        losses = trainer.training_step(batch, phase=name)   # None: this optimizer skips the step
        backward(losses["loss"] / grad_accum)
    average gradients; clip (this optimizer's setting); step this optimizer; its lr schedule
    then, once per step: EMA update of ema_modules(); log; validate; checkpoint

Gradients a phase leaves on another optimizer's parameters are discarded (each phase starts
from zeroed gradients of its own parameters); freezing what a phase does not train
(``requires_grad_(False)`` on a discriminator during the generator phase) is the trainer's
choice, for speed. A trainer may keep tensors from one phase to the next within a step
(e.g. the generator's output, detached, for the fake-score phase). Every optimizer, its
schedule and the loss scaler are checkpointed and restored exactly.

Rules for a Trainer:

* ``training_step`` computes losses only: no ``backward``, no optimizer step, no ``.item()``
  (the runner averages every returned scalar for logging without a device sync per step;
  with several phases, entry ``k`` of phase ``p`` is logged as ``k/p``, e.g. ``loss/discriminator``).
* Randomness (noise, timesteps) may come from the global torch/numpy/python RNGs: the runner
  seeds them per process and restores them exactly on resume. Validation never moves them.
* The runner moves ``modules()`` to the device, sets ``train()``/``eval()``, checkpoints their
  trainable parameters and buffers (frozen parameters come back from the method's own
  weights when the method is rebuilt), keeps the EMA of the trainable parameters of
  ``ema_modules()`` (default: all of ``modules()``), and averages gradients across processes
  (no DDP wrapper: call your own module objects as usual).
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import CheckpointError

#: format tag of checkpoints written by ``srbench-train`` (read by methods to start from them)
CHECKPOINT_FORMAT = "srbench-train-checkpoint/2"
#: formats this version reads (/1: one optimizer, keys ``optimizer`` / ``scheduler``; /2: ``optimizers`` /
#: ``schedulers`` by name)
CHECKPOINT_FORMATS = ("srbench-train-checkpoint/1", CHECKPOINT_FORMAT)
_CKPT_RE = re.compile(r"^step_(\d+)\.pt$")


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

    def optimizer_groups(self, base_lrs: Mapping[str, float]) -> dict[str, list[dict[str, Any]]]:
        """Parameter groups per optimizer name; default one optimizer, ``main``, of :meth:`parameter_groups`.

        ``base_lrs`` holds each configured optimizer's lr by name. Override (together with
        ``optimizers.<name>`` in the config) for several optimizers; every name returned must
        have a config and vice versa.
        """
        return {"main": self.parameter_groups(base_lrs["main"])}

    def phases(self) -> Sequence[str]:
        """The optimizer names in the order they are stepped within one training step."""
        return ("main",)

    def ema_modules(self) -> Mapping[str, nn.Module]:
        """The modules whose trainable parameters have an EMA (default: all of :meth:`modules`)."""
        return self.modules()

    @abc.abstractmethod
    def training_step(self, batch: Mapping[str, Any], phase: str = "main") -> dict[str, torch.Tensor] | None:
        """Compute the losses of one batch for optimizer ``phase``; the runner back-propagates ``out["loss"]``.

        Every other entry (scalar tensors) is logged as an average over the logging interval.
        Return ``None`` when this optimizer does not step now (e.g. a discriminator before its
        start step); its gradients stay zero and its schedule still advances.
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


# ----------------------------------------------------------------------------- srbench-train checkpoints
def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``folder`` as (step, path), oldest first (temp files are ignored)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT_RE.match(p.name))]
    return sorted(found)


def newest_checkpoint(folder: Path) -> Path | None:
    """The newest ``step_*.pt`` of a run directory or of its ``checkpoints/`` folder, if any."""
    found = list_checkpoints(folder / "checkpoints") or list_checkpoints(folder)
    return found[-1][1] if found else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path).expanduser()
    if path.is_dir():  # a run directory or its checkpoints/ folder
        newest = newest_checkpoint(path)
        if newest is None:
            raise CheckpointError(f"no checkpoint (checkpoints/step_*.pt) in {path}")
        path = newest
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    from srbench.weights import load_checkpoint as read_weights_only

    # weights_only unpickling: a checkpoint is data, never code (RNG states are numpy arrays);
    # an unreadable file raises WeightsFormatError, a CheckpointError
    ckpt, _ = read_weights_only(path, hash_file=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in CHECKPOINT_FORMATS:
        raise CheckpointError(f"{path} is not a srbench-train checkpoint (format {CHECKPOINT_FORMAT})")
    ckpt["path"] = str(path)
    return ckpt


def checkpoint_weights(ckpt: Mapping[str, Any], module: str, *, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """Weights of ``module`` in a srbench-train checkpoint, with the EMA averages where kept.

    With the default ``checkpoint_params=trainable`` frozen parameters are absent: load the
    result with ``strict=False`` over the method's own base weights.
    """
    if module not in ckpt["modules"]:
        raise CheckpointError(f"checkpoint {ckpt.get('path')} has no module {module!r} (it has {', '.join(ckpt['modules'])})")
    state = dict(ckpt["modules"][module])
    if use_ema:
        if not ckpt.get("ema"):
            raise CheckpointError(f"checkpoint {ckpt.get('path')} has no EMA weights (use the trained ones: use_ema=false)")
        prefix = module + "."
        state.update({k[len(prefix):]: v for k, v in ckpt["ema"]["shadow"].items() if k.startswith(prefix)})
    return state
