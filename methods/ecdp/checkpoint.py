"""Load ECDP checkpoints written by the authors' trainer (Yuan-Yutao/ECDP ``lib/trainer.py``).

Their ``checkpoint.pt`` is ``{"model": sd, "model_avg": sd (EMA, when param_running_avg is
set), "optim_model", "sched_model", "sample_fixed_latent", "epoch", "epoch_length"}`` where
``sd`` is the state dict of ``ConditionalDensityModel``: keys ``model.diffusion.network.*``,
``model.diffusion.{betas,alphas,alpha_bars}``, ``model.lr_feats.*`` (ECDP) or ``model.rrdb.*``,
``model.final.*`` (regressor). Their README extracts the regressor into
``pretrained-rrdbnet-<dataset>.pt`` = the bare ``RRDBNet`` state dict (``rrdb.*``, ``final.*``).
DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) prefixes are stripped.

srbench reads the same layout (:func:`save_ecdp_checkpoint` writes it) and also the
checkpoints of ``srbench-train`` (``{"format": "srbench-train-checkpoint/1", "modules":
{"model" | "regressor": sd}, "ema": {"shadow": …}}``), taking the EMA weights where kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from srbench.weights import MissingWeightsError, sha256_file

#: the authors' ConditionalDensityModel attribute holding ECDP / RRDBNet
WRAPPER_PREFIX = "model."
#: sub-dicts tried, in order, when a file holds more than a state dict
EMA_KEYS = ("model_avg", "ema")
RAW_KEYS = ("model", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint cannot be used for this model; the message is one line for the user."""


def strip_wrapper_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop leading ``module.`` (DDP) and every ``_orig_mod.`` (torch.compile) path component."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        while parts and parts[0] == "module":
            parts = parts[1:]
        out[".".join(p for p in parts if p != "_orig_mod")] = value
    return out


def read_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load`` on CPU with one-line errors.

    Weights-only unpickling first; a file that needs more is tried as a ``srbench-train``
    checkpoint (the runner's own loader, which also restores RNG states and the config).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(
            f"ECDP checkpoint {path} not found; no weights are published — train one with "
            "`make train METHOD=ecdp DATASET=…` (see methods/ecdp/README.md) or point method.weights at yours"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is the same user problem
        from srbench.runners.train import load_checkpoint

        try:
            obj = load_checkpoint(path)
        except Exception:  # noqa: BLE001
            msg = f"ECDP checkpoint {path} cannot be read ({type(err).__name__}: {err})"
            raise CheckpointError(msg.splitlines()[0]) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"ECDP checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def select_state_dict(
    obj: Mapping, *, prefer_ema: bool = True, where: str = "checkpoint", module: str = "model"
) -> tuple[dict, str]:
    """Pick the weights in a checkpoint: EMA (``model_avg``) first when ``prefer_ema``, else ``model``.

    A bare state dict (all values tensors) is returned as is; a ``srbench-train`` checkpoint
    gives its ``modules[module]`` with the EMA shadow laid over it. Returns (state dict, source).
    """
    if str(obj.get("format", "")).startswith("srbench-train-checkpoint"):
        if module not in obj.get("modules", {}):
            raise CheckpointError(
                f"ECDP {where} is a srbench-train checkpoint without module {module!r} "
                f"(it has {', '.join(obj.get('modules', {})) or 'none'}): wrong training stage?"
            )
        state = dict(obj["modules"][module])
        use_ema = prefer_ema and bool(obj.get("ema"))
        if use_ema:
            pre = module + "."
            state.update({k[len(pre) :]: v for k, v in obj["ema"]["shadow"].items() if k.startswith(pre)})
        return strip_wrapper_prefixes(state), f"srbench-train:{module}{' (ema)' if use_ema else ''}"
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return strip_wrapper_prefixes(obj), "state_dict"
    order = (*EMA_KEYS, *RAW_KEYS) if prefer_ema else (*RAW_KEYS, *EMA_KEYS)
    for key in order:
        sub = obj.get(key)
        if isinstance(sub, Mapping) and sub:
            return strip_wrapper_prefixes(sub), key
    raise CheckpointError(
        f"ECDP {where} has no weights: expected a state dict or one of the keys "
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


def load_ecdp_weights(net: nn.Module, path: str | os.PathLike, *, prefer_ema: bool = True) -> dict:
    """Load an ECDP checkpoint (authors' or srbench's) into ``net`` (an ``ECDPNet``), strictly.

    Returns provenance for ``describe()``: path, sha256, which sub-dict was used.
    """
    obj = read_checkpoint(path)
    state, source = select_state_dict(obj, prefer_ema=prefer_ema, where=f"checkpoint {path}")
    load_into(net, drop_prefix(state, WRAPPER_PREFIX), f"ECDP checkpoint {path}")
    return {"path": str(path), "sha256": sha256_file(path), "weights": source}


def load_regressor_weights(module: nn.Module, path: str | os.PathLike, *, encoder_only: bool) -> dict:
    """Load a stage-(a) regressor into an ``RRDBRegressor`` or (``encoder_only``) an ``RRDBEncoder``.

    Accepts the authors' ``checkpoint.pt`` of an ``rrdbnet`` run, their extracted
    ``pretrained-rrdbnet-*.pt``, or srbench's regressor checkpoint. With ``encoder_only`` the
    ``final.*`` tail is discarded, as ECDP's constructor does (``self.lr_feats = rrdbnet.rrdb``).
    """
    obj = read_checkpoint(path)
    state, source = select_state_dict(
        obj, prefer_ema=True, where=f"regressor checkpoint {path}", module="regressor"
    )
    state = drop_prefix(state, WRAPPER_PREFIX)
    if encoder_only:
        state = {k[len("rrdb.") :]: v for k, v in state.items() if k.startswith("rrdb.")}
    load_into(module, state, f"RRDB regressor checkpoint {path}")
    return {"path": str(path), "sha256": sha256_file(path), "weights": source}


def save_ecdp_checkpoint(
    path: str | os.PathLike,
    model: Mapping[str, torch.Tensor],
    model_avg: Mapping[str, torch.Tensor] | None = None,
    **extra,
) -> None:
    """Write ``{"model": …, "model_avg": …}`` with the authors' ``model.`` key prefix (atomic)."""
    path = Path(path)
    obj = {"model": {WRAPPER_PREFIX + k: v for k, v in model.items()}, **extra}
    if model_avg is not None:
        obj["model_avg"] = {WRAPPER_PREFIX + k: v for k, v in model_avg.items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
