"""LoRA wiring of OSEDiff, named exactly as the authors' code builds it (cswry/OSEDiff @ fcc4f09).

Target lists come from module *names* only (``osediff.py:17-67``), so the same lists are derived
from any SD-2.x-shaped VAE/UNet (tiny, random-sd2 or the real SD-2.1-base):

* VAE: every non-bias, non-norm parameter of ``encoder.*`` whose name contains a conv/attention
  pattern, plus ``quant_conv`` (not ``post_quant_conv``). The authors append inside a loop over
  patterns without ``break``, so their list repeats names; peft's matching is set-like, we dedupe.
* UNet: first matching pattern wins; ``down_blocks``/``conv_in`` → encoder list, ``up_blocks``/
  ``conv_out`` → decoder list, the rest (mid block) → others.

Each list becomes its own peft adapter (``default_encoder``/``default_decoder``/``default_others``
on the UNet, ``default_encoder`` on the VAE) with ``LoraConfig(r=4, init_lora_weights="gaussian")``
and every other field at peft defaults: ``lora_alpha=8`` → scaling ``alpha / r = 2.0``.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "UNET_ADAPTERS",
    "VAE_ADAPTER",
    "add_osediff_adapters",
    "lora_layers",
    "merge_lora",
    "unet_lora_targets",
    "unmerge_lora",
    "vae_lora_targets",
]

UNET_ADAPTERS = ("default_encoder", "default_decoder", "default_others")
VAE_ADAPTER = "default_encoder"

_VAE_PATTERNS = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "to_k", "to_q", "to_v", "to_out.0")
_UNET_PATTERNS = (
    "to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in",
    "conv_shortcut", "conv_out", "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj",
)  # fmt: skip


def _weight_names(model: torch.nn.Module) -> list[str]:
    """Module names owning a weight (parameter name minus ``.weight``), skipping bias and norms."""
    return [n.removesuffix(".weight") for n, _ in model.named_parameters() if "bias" not in n and "norm" not in n]


def vae_lora_targets(vae: torch.nn.Module) -> list[str]:
    """The VAE-encoder adapter's target modules (``osediff.py:17-36``), deduplicated, in order."""
    out: list[str] = []
    for name in _weight_names(vae):
        in_encoder = "encoder" in name and any(p in name for p in _VAE_PATTERNS)
        is_quant = "quant_conv" in name and "post_quant_conv" not in name
        if (in_encoder or is_quant) and name not in out:
            out.append(name)
    return out


def unet_lora_targets(unet: torch.nn.Module) -> dict[str, list[str]]:
    """The three UNet adapters' target modules (``osediff.py:39-67``), keyed by adapter name."""
    lists: dict[str, list[str]] = {a: [] for a in UNET_ADAPTERS}
    for name in _weight_names(unet):
        if not any(p in name for p in _UNET_PATTERNS):
            continue
        if "down_blocks" in name or "conv_in" in name:
            lists["default_encoder"].append(name)
        elif "up_blocks" in name or "conv_out" in name:
            lists["default_decoder"].append(name)
        else:
            lists["default_others"].append(name)
    return lists


def _config(rank: int, targets: list[str]) -> Any:
    from peft import LoraConfig

    # alpha, dropout, bias left at peft defaults on purpose: the published weights were trained so
    return LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=list(targets))


def add_osediff_adapters(
    unet: torch.nn.Module,
    vae: torch.nn.Module | None,
    *,
    rank: int = 4,
    unet_targets: dict[str, list[str]] | None = None,
    vae_targets: list[str] | None = None,
) -> None:
    """Inject the authors' adapters (in place) and activate all of them (``osediff.py:284-301``)."""
    unet_targets = unet_targets or unet_lora_targets(unet)
    for adapter in UNET_ADAPTERS:
        unet.add_adapter(_config(rank, unet_targets[adapter]), adapter_name=adapter)
    unet.set_adapter(list(UNET_ADAPTERS))
    if vae is not None:
        vae.add_adapter(_config(rank, vae_targets or vae_lora_targets(vae)), adapter_name=VAE_ADAPTER)
        vae.set_adapter([VAE_ADAPTER])


def lora_layers(model: torch.nn.Module) -> dict[str, Any]:
    """Every peft LoRA layer of ``model`` by module name."""
    from peft.tuners.lora import LoraLayer

    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def merge_lora(model: torch.nn.Module) -> None:
    """Fold every active adapter into its base weight (``W' = W + 2·B·A``): no per-call LoRA cost.

    Reversible with :func:`unmerge_lora` (training keeps the unmerged path).
    """
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: torch.nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.unmerge()
