"""The released ``osediff.pkl`` format (written by the authors' ``OSEDiff_gen.save_model``,
``osediff.py:131-140``) — read strictly, and written the same way for tests and our trainer.

Keys: ``vae_lora_encoder_modules``, ``unet_lora_{encoder,decoder,others}_modules`` (target lists),
``rank_unet``, ``rank_vae`` (4), ``state_dict_unet`` (every UNet state-dict entry whose key contains
"lora" or "conv_in" — so the trained ``conv_in.base_layer`` weight and bias too) and
``state_dict_vae`` (VAE entries containing "lora").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from methods.osediff.lora import UNET_ADAPTERS, add_osediff_adapters

__all__ = [
    "CheckpointMismatch",
    "fill_trained_random",
    "load_osediff_checkpoint",
    "osediff_state",
    "save_osediff_checkpoint",
]

_LIST_KEYS = {
    "default_encoder": "unet_lora_encoder_modules",
    "default_decoder": "unet_lora_decoder_modules",
    "default_others": "unet_lora_others_modules",
}


class CheckpointMismatch(ValueError):
    """A checkpoint whose keys or shapes do not match the adapters built from it."""


def _unet_keys(unet: torch.nn.Module) -> list[str]:
    return [k for k in unet.state_dict() if "lora" in k or "conv_in" in k]


def _vae_keys(vae: torch.nn.Module) -> list[str]:
    return [k for k in vae.state_dict() if "lora" in k]


def osediff_state(
    unet: torch.nn.Module, vae: torch.nn.Module, unet_targets: dict[str, list[str]], vae_targets: list[str], rank: int = 4
) -> dict[str, Any]:
    """The dict ``save_model`` writes, from models that already carry the adapters."""
    usd, vsd = unet.state_dict(), vae.state_dict()
    return {
        "vae_lora_encoder_modules": list(vae_targets),
        **{_LIST_KEYS[a]: list(unet_targets[a]) for a in UNET_ADAPTERS},
        "rank_unet": rank,
        "rank_vae": rank,
        "state_dict_unet": {k: usd[k] for k in _unet_keys(unet)},
        "state_dict_vae": {k: vsd[k] for k in _vae_keys(vae)},
    }


def save_osediff_checkpoint(path: str | Path, *args: Any, **kwargs: Any) -> Path:
    torch.save(osediff_state(*args, **kwargs), path)
    return Path(path)


def _copy_strict(model: torch.nn.Module, wanted: list[str], state: dict[str, torch.Tensor], what: str) -> None:
    missing = sorted(set(wanted) - set(state))
    unused = sorted(set(state) - set(wanted))
    if missing or unused:
        raise CheckpointMismatch(
            f"osediff.pkl {what}: {len(missing)} parameters missing (e.g. {missing[:3]}), "
            f"{len(unused)} keys unused (e.g. {unused[:3]})"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k in wanted:
            src, dst = state[k], params[k]
            if src.shape != dst.shape:
                raise CheckpointMismatch(f"osediff.pkl {what}: {k} has shape {tuple(src.shape)}, model {tuple(dst.shape)}")
            dst.copy_(src)


def load_osediff_checkpoint(unet: torch.nn.Module, vae: torch.nn.Module, ckpt: dict[str, Any] | str | Path) -> dict[str, Any]:
    """Add the checkpoint's adapters to fresh SD ``unet``/``vae`` and fill them; every key consumed.

    Returns the checkpoint's non-tensor facts (ranks, target-list sizes) for the manifest.
    """
    if not isinstance(ckpt, dict):
        ckpt = torch.load(ckpt, map_location="cpu", weights_only=True)
    if ckpt["rank_unet"] != ckpt["rank_vae"]:
        raise CheckpointMismatch(f"osediff.pkl: rank_unet {ckpt['rank_unet']} != rank_vae {ckpt['rank_vae']}")
    unet_targets = {a: list(dict.fromkeys(ckpt[_LIST_KEYS[a]])) for a in UNET_ADAPTERS}
    vae_targets = list(dict.fromkeys(ckpt["vae_lora_encoder_modules"]))
    add_osediff_adapters(unet, vae, rank=ckpt["rank_unet"], unet_targets=unet_targets, vae_targets=vae_targets)
    _copy_strict(unet, _unet_keys(unet), ckpt["state_dict_unet"], "state_dict_unet")
    _copy_strict(vae, _vae_keys(vae), ckpt["state_dict_vae"], "state_dict_vae")
    return {
        "rank": ckpt["rank_unet"],
        "unet_targets": {a: len(v) for a, v in unet_targets.items()},
        "vae_targets": len(vae_targets),
    }


@torch.no_grad()
def fill_trained_random(
    unet: torch.nn.Module, vae: torch.nn.Module, *, seed: int, scale: float = 0.05, conv_in: bool = True
) -> None:
    """Fill what OSEDiff trains (every LoRA tensor, and UNet ``conv_in`` when ``conv_in``) with
    ``scale``·N(0, 1) from one seeded generator: a synthetic "trained" model for tests and parity
    runs (peft zero-initialises B, which would make every adapter a no-op)."""
    g = torch.Generator().manual_seed(seed)
    for model in (unet, vae):
        for n, p in model.named_parameters():
            if "lora" in n or (conv_in and model is unet and "conv_in.base_layer" in n):
                p.copy_(scale * torch.randn(p.shape, generator=g))
