"""Read ``noise_predictor_sd_turbo_v5.pth`` strictly into our :class:`NoisePredictor`.

The authors' ``reload_model`` (``utils/util_net.py:86-98``) unwraps a ``state_dict`` entry and the
``module.`` (DDP) / ``_orig_mod.`` (torch.compile) prefixes, then copies every model key. We do the same,
but also refuse unused keys and shape mismatches: a file that loads partly is a wrong file. Every failure
is one line (srbench ``CheckpointError`` / ``MissingWeightsError``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from methods.invsr.predictor import NoisePredictor
from srbench.errors import CheckpointError
from srbench.weights import MissingWeightsError

__all__ = ["PREDICTOR_FILE", "load_predictor", "predictor_state_dict"]

PREDICTOR_FILE = "noise_predictor_sd_turbo_v5.pth"
_PREFIXES = ("module.", "_orig_mod.")


def _strip(key: str) -> str:
    changed = True
    while changed:  # DDP around compile or compile around DDP: strip in any order
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def predictor_state_dict(obj: object, where: str = PREDICTOR_FILE) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded file: ``state_dict`` unwrapped, prefixes stripped."""
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{where}: not a noise-predictor state dict (expected a dict of tensors)")
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        name = _strip(str(k))
        if name in out:
            raise CheckpointError(f"{where}: key {name!r} appears twice after stripping module./_orig_mod.")
        out[name] = v
    return out


def load_predictor(
    model: NoisePredictor, source: str | Path | Mapping[str, torch.Tensor], where: str | None = None
) -> NoisePredictor:
    """Fill ``model`` from a file path or an already-loaded dict; every key used, every shape equal."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        where = where or str(path)
        if not path.is_file():
            raise MissingWeightsError(
                f"InvSR noise predictor {PREDICTOR_FILE} not found at {path}; download "
                f"https://huggingface.co/OAOA/InvSR/resolve/main/{PREDICTOR_FILE} (or run `srbench weights download invsr`)"
            )
        try:
            source = torch.load(path, map_location="cpu", weights_only=True)
        except (
            pickle.UnpicklingError,
            RuntimeError,
            EOFError,
            OSError,
            ValueError,
        ) as exc:  # corrupt / not torch
            raise CheckpointError(f"{where}: cannot be read by torch.load ({type(exc).__name__})") from None
    where = where or PREDICTOR_FILE
    state = predictor_state_dict(source, where)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unused = sorted(set(state) - set(own))
    if missing or unused:
        raise CheckpointError(
            f"{where}: {len(missing)} predictor keys missing (e.g. {missing[:2]}), {len(unused)} unused (e.g. {unused[:2]})"
        )
    for k, v in own.items():
        if state[k].shape != v.shape:
            raise CheckpointError(
                f"{where}: {k} has shape {tuple(state[k].shape)}, model expects {tuple(v.shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model
