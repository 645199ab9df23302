"""Exponential moving average (EMA) of a model's weights, used for validation, test and export.

After every optimizer step (Polyak averaging; ECDP ``lib/trainer.py`` "param_running_avg")::

    p_avg ← β·p_avg + (1 − β)·p            β = 1 − 1/N    (ECDP: N = 1000; IQ fine-tune N = 10)

optionally with the decay warm-up of InvSR (``trainer.py``, k = number of earlier updates)::

    β_k = min(β, (1 + k) / (10 + k))

Only parameters that require grad are averaged: frozen ones never change, so their average is
themselves and storing a copy would double the memory of a LoRA-tuned Stable Diffusion U-Net.
Floating-point buffers (e.g. BatchNorm running statistics) follow the live model by default
(``average_buffers=False``) or are averaged like parameters. The average is kept in float32
whatever the parameter dtype, because with β = 0.999 a bf16 average would drop most updates.

``torch.optim.swa_utils.AveragedModel`` is not used because it deep-copies whole models
(frozen weights included) and replaces the average by the live weights on its first update,
whereas ECDP initialises ``p_avg`` from the model and averages from the first step on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn


class EMA:
    """EMA of the trainable parameters (and optionally buffers) of one or several modules.

    Args:
        modules: a module, or name → module (names prefix the keys of :meth:`state_dict`).
        decay: β in ``p_avg ← β·p_avg + (1 − β)·p``; give either ``decay`` or ``n``.
        n: ECDP's N, β = 1 − 1/N (the update then uses the weight 1/N exactly, as ECDP does).
        warmup: use β_k = min(β, (1 + k)/(10 + k)) (InvSR) instead of a constant β.
        average_buffers: average floating-point buffers too; otherwise they are copied from the
            live model when the average is applied.
    """

    def __init__(self, modules: nn.Module | Mapping[str, nn.Module], *, decay: float | None = None,
                 n: float | None = None, warmup: bool = False, average_buffers: bool = False):
        if (decay is None) == (n is None):
            raise ValueError("EMA: give exactly one of decay (β) or n (β = 1 − 1/N)")
        if n is not None and n < 1:
            raise ValueError(f"EMA: n must be ≥ 1 (got {n})")
        if decay is not None and not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1) (got {decay})")
        self.modules = {"": modules} if isinstance(modules, nn.Module) else dict(modules)
        self.n = None if n is None else float(n)
        self.decay = 1.0 - 1.0 / self.n if self.n is not None else float(decay)
        self.warmup = bool(warmup)
        self.average_buffers = bool(average_buffers)
        self.num_updates = 0
        self._live = self._tracked_tensors()
        self.shadow: dict[str, torch.Tensor] = {
            k: t.detach().to(torch.float32, copy=True) for k, t in self._live.items()
        }

    # ------------------------------------------------------------------ what is tracked
    def _tracked_tensors(self) -> dict[str, torch.Tensor]:
        tracked: dict[str, torch.Tensor] = {}
        for prefix, module in self.modules.items():
            pre = f"{prefix}." if prefix else ""
            for name, p in module.named_parameters():
                if p.requires_grad:
                    tracked[pre + name] = p
            if self.average_buffers:
                for name, b in module.named_buffers():
                    if b.is_floating_point():
                        tracked[pre + name] = b
        if not tracked:
            raise ValueError("EMA: the modules have no trainable parameters to average")
        return tracked

    def current_decay(self) -> float:
        """β used by the next :meth:`update`."""
        if self.warmup:
            return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        return self.decay

    # ------------------------------------------------------------------ update / apply
    @torch.no_grad()
    def update(self) -> None:
        """One EMA step from the live weights; call after each optimizer step."""
        beta = self.current_decay()
        # ECDP writes the weight of the new value as 1/N; keep that float exactly when N is given
        alpha = 1.0 / self.n if (self.n is not None and not self.warmup) else 1.0 - beta
        shadow = list(self.shadow.values())
        live = [t.detach().to(torch.float32) for t in self._live.values()]
        torch._foreach_mul_(shadow, beta)
        torch._foreach_add_(shadow, live, alpha=alpha)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self) -> None:
        """Write the average into the live modules (e.g. to fine-tune from the EMA weights)."""
        for key, live in self._live.items():
            live.copy_(self.shadow[key])

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Run a block with the average in the live modules; the trained weights come back after.

        ``with ema.swapped(): validate(model)``
        """
        with torch.no_grad():
            backup = {k: t.detach().clone() for k, t in self._live.items()}
            self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for key, live in self._live.items():
                    live.copy_(backup[key])

    def averaged_state_dict(self, name: str = "") -> dict[str, torch.Tensor]:
        """The full ``state_dict`` of module ``name`` with averaged values where tracked (for export)."""
        module = self.modules[name]
        pre = f"{name}." if name else ""
        out = {}
        for key, value in module.state_dict().items():
            avg = self.shadow.get(pre + key)
            out[key] = value.detach().clone() if avg is None else avg.to(value.dtype, copy=True)
        return out

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "n": self.n, "warmup": self.warmup, "average_buffers": self.average_buffers,
                "num_updates": self.num_updates, "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        shadow = state["shadow"]
        missing = sorted(set(self.shadow) - set(shadow))
        unexpected = sorted(set(shadow) - set(self.shadow))
        if missing or unexpected:
            raise KeyError(
                f"EMA state does not match the model: missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}"
            )
        for key, value in shadow.items():
            if value.shape != self.shadow[key].shape:
                raise ValueError(f"EMA state for {key} has shape {tuple(value.shape)}, model has "
                                 f"{tuple(self.shadow[key].shape)}")
            self.shadow[key].copy_(value)
        self.num_updates = int(state.get("num_updates", 0))
