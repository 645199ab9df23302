"""Load ECDP checkpoints written by the authors' trainer (Yuan-Yutao/ECDP ``lib/trainer.py``).

Their ``checkpoint.pt`` is ``{"model": sd, "model_avg": sd (EMA, when param_running_avg is
set), "optim_model", "sched_model", "sample_fixed_latent", "epoch", "epoch_length"}`` where
``sd`` is the state dict of ``ConditionalDensityModel``: keys ``model.diffusion.network.*``,
``model.diffusion.{betas,alphas,alpha_bars}``, ``model.lr_feats.*`` (ECDP) or ``model.rrdb.*``,
``model.final.*`` (regressor). Their README extracts the regressor into
``pretrained-rrdbnet-<dataset>.pt`` = the bare ``RRDBNet`` state dict (``rrdb.*``, ``final.*``).
DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) prefixes are stripped
(:func:`srbench.weights.strip_prefixes`).

srbench also reads the checkpoints of ``srbench-train`` (``srbench.training``: ``{"format":
"srbench-train-checkpoint/1", "modules": {"model" | "regressor": sd}, "ema": {"shadow": …}}``),
taking the EMA weights where kept. Every file is read with :func:`srbench.weights.load_checkpoint`
(``weights_only`` unpickling: tensors, containers, numbers and numpy arrays, never code).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from srbench import training
from srbench.weights import (
    MissingWeightsError,
    WeightsFormatError,
    load_checkpoint,
    strip_prefixes,
)

from .errors import CheckpointError

#: the authors' ConditionalDensityModel attribute holding ECDP / RRDBNet
WRAPPER_PREFIX = "model."
#: sub-dicts tried, in order, when a file holds more than a state dict
EMA_KEYS = ("model_avg", "ema")
RAW_KEYS = ("model", "state_dict")


def read_checkpoint(path: str | os.PathLike, setting: str) -> tuple[Mapping, str]:
    """(contents, sha256) of an existing checkpoint file, on CPU, with one-line errors.

    ``setting`` names the config key the path came from (``method.weights``,
    ``method.train.regressor_weights``), so an error tells the user what to fix.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(f"{setting}={path}: no such file")
    try:
        obj, digest = load_checkpoint(path)
    except WeightsFormatError as err:
        raise CheckpointError(f"{setting}: {err}") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{setting}={path} holds a {type(obj).__name__}, not a state dict")
    return obj, digest


def select_state_dict(
    obj: Mapping, *, prefer_ema: bool = True, where: str = "checkpoint", module: str = "model"
) -> tuple[dict, str]:
    """Pick the weights in a checkpoint: EMA (``model_avg``) first when ``prefer_ema``, else ``model``.

    A bare state dict (all values tensors) is returned as is; a ``srbench-train`` checkpoint
    gives its ``modules[module]`` with the EMA shadow laid over it. Returns (state dict, source).
    """
    if obj.get("format") in training.CHECKPOINT_FORMATS:
        if module not in obj.get("modules", {}):
            raise CheckpointError(
                f"{where} is a srbench-train checkpoint without module {module!r} "
                f"(it has {', '.join(obj.get('modules', {})) or 'none'}): wrong training stage?"
            )
        use_ema = prefer_ema and bool(obj.get("ema"))
        state = training.checkpoint_weights(obj, module, use_ema=use_ema)
        return strip_prefixes(state), f"srbench-train:{module}{' (ema)' if use_ema else ''}"
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return strip_prefixes(obj), "state_dict"
    order = (*EMA_KEYS, *RAW_KEYS) if prefer_ema else (*RAW_KEYS, *EMA_KEYS)
    for key in order:
        sub = obj.get(key)
        if isinstance(sub, Mapping) and sub:
            return strip_prefixes(sub), key
    raise CheckpointError(
        f"{where} has no weights: expected a state dict or one of the keys "
        f"{', '.join(order)}; found {', '.join(map(str, obj)) or 'nothing'}"
    )


def drop_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from keys that have it (the authors' ``model.`` wrapper); keep the rest."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` whose failure is one line naming what differs."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} with other shapes (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})"
            )
        hint = (
            "only keys are missing: a srbench-train checkpoint saved with checkpoint_params=trainable "
            "lacks frozen weights (train with checkpoint_params=all)"
            if missing and not unexpected and not shapes
            else "check the method variant (encoder depth/selection, U-Net widths) matches the one it was trained with"
        )
        raise CheckpointError(f"{where} does not fit the configured model: {'; '.join(parts)} — {hint}")
    module.load_state_dict(state, strict=True)


def load_ecdp_weights(
    net: nn.Module, path: str | os.PathLike, *, prefer_ema: bool = True, setting: str = "method.weights"
) -> dict:
    """Load an ECDP checkpoint (authors' or srbench's) into ``net`` (an ``ECDPNet``), strictly.

    ``path``: an existing file (``ECDP.from_config`` finds it with :func:`srbench.weights.resolve`).
    Returns provenance for ``describe()``: path, sha256, which sub-dict was used.
    """
    obj, digest = read_checkpoint(path, setting)
    state, source = select_state_dict(obj, prefer_ema=prefer_ema, where=f"{setting}={path}")
    load_into(net, drop_prefix(state, WRAPPER_PREFIX), f"ECDP checkpoint {path}")
    return {"path": str(path), "sha256": digest, "weights": source}


def regressor_checkpoint_path(path: str | os.PathLike, setting: str) -> Path:
    """The stage-(a) checkpoint file for ``path``: the file itself, or a srbench-train run's newest."""
    p = Path(path).expanduser()
    if p.is_dir():  # a srbench-train run directory or its checkpoints/ folder
        newest = training.newest_checkpoint(p)
        if newest is None:
            raise MissingWeightsError(f"{setting}={p}: no checkpoints/step_*.pt in that folder")
        return newest
    if not p.is_file():
        raise MissingWeightsError(
            f"{setting}={p}: no such file; point it at the stage-a regressor (a srbench-train run folder or "
            "its step_*.pt, the authors' checkpoint.pt or pretrained-rrdbnet-*.pt)"
        )
    return p


def load_regressor_weights(
    module: nn.Module,
    path: str | os.PathLike,
    *,
    encoder_only: bool,
    setting: str = "method.train.regressor_weights",
) -> dict:
    """Load a stage-(a) regressor into an ``RRDBRegressor`` or (``encoder_only``) an ``RRDBEncoder``.

    Accepts the authors' ``checkpoint.pt`` of an ``rrdbnet`` run, their extracted
    ``pretrained-rrdbnet-*.pt``, or srbench's regressor checkpoint (file or run folder). With
    ``encoder_only`` the ``final.*`` tail is discarded, as ECDP's constructor does
    (``self.lr_feats = rrdbnet.rrdb``).
    """
    path = regressor_checkpoint_path(path, setting)
    obj, digest = read_checkpoint(path, setting)
    state, source = select_state_dict(obj, prefer_ema=True, where=f"{setting}={path}", module="regressor")
    state = drop_prefix(state, WRAPPER_PREFIX)
    if encoder_only:
        state = {k[len("rrdb.") :]: v for k, v in state.items() if k.startswith("rrdb.")}
    load_into(module, state, f"RRDB regressor checkpoint {path} ({setting})")
    return {"path": str(path), "sha256": digest, "weights": source}
