"""The trainer's optimizers: one (``main``, from ``optimizer:``) or several (``optimizers.<name>``).

Each named optimizer has its parameter groups (from :meth:`srbench.training.Trainer.optimizer_groups`),
its own lr schedule (the one ``schedule:`` rule applied to its initial lrs), its clipping
(``optimizers.<name>.clip`` or the global ``clip:``) and its state in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from srbench.errors import ConfigError, UserError

from .schedule import build_scheduler

CLIP_MODES = ("none", "value", "norm")


@dataclass
class NamedOptimizer:
    name: str
    optimizer: Any  # torch optimizer, or accelerate's wrapper of it
    scheduler: torch.optim.lr_scheduler.LambdaLR
    params: list[torch.nn.Parameter]
    clip_mode: str
    clip_value: float

    @property
    def torch_optimizer(self) -> torch.optim.Optimizer:
        return getattr(self.optimizer, "optimizer", self.optimizer)


class _LrTable(dict):
    def __missing__(self, key: str) -> float:
        return self["main"]


def _clip_settings(clip: Mapping[str, Any] | None, where: str) -> tuple[str, float]:
    clip = clip or {}
    mode = clip.get("mode", "none") or "none"
    if mode not in CLIP_MODES:
        raise ConfigError(f"{where}.mode must be one of {', '.join(CLIP_MODES)} (got {mode!r})")
    value = float(clip.get("value", 0.0) or 0.0)
    if mode != "none" and not value > 0:
        raise ConfigError(f"{where}.value must be > 0 with {where}.mode={mode} (got {value})")
    return mode, value


def _instantiate(opt_cfg: Mapping[str, Any], groups: list[dict[str, Any]], where: str) -> torch.optim.Optimizer:
    from hydra.utils import instantiate

    spec = {k: v for k, v in opt_cfg.items() if k != "clip"}
    if "_target_" not in spec:
        raise ConfigError(f"{where} needs _target_ (e.g. torch.optim.AdamW)")
    spec.setdefault("_partial_", True)
    return instantiate(spec)(groups)


def build_optimizers(trainer: Any, cfg: Mapping[str, Any], milestones: Sequence[int],
                     method_name: str) -> dict[str, NamedOptimizer]:
    """The optimizers ``trainer`` asks for, configured from ``cfg`` (``optimizer:`` / ``optimizers:``), in phase order."""
    named_cfg = dict(cfg.get("optimizers") or {})
    main_lr = float(cfg["optimizer"]["lr"])
    # an unconfigured name reads the main lr here, so the check below can name every missing one
    base_lrs = _LrTable({"main": main_lr, **{n: float((c or {}).get("lr", main_lr)) for n, c in named_cfg.items()}})
    groups_by_name = dict(trainer.optimizer_groups(base_lrs))
    phases = list(trainer.phases())
    if set(groups_by_name) == {"main"}:
        if named_cfg:
            raise ConfigError(f"optimizers.{', optimizers.'.join(named_cfg)} set, but method {method_name!r} trains "
                              "with one optimizer (configure it as optimizer: …)")
        configs = {"main": (cfg["optimizer"], cfg.get("clip"), "optimizer", "clip")}
    else:
        missing = [n for n in groups_by_name if n not in named_cfg]
        extra = [n for n in named_cfg if n not in groups_by_name]
        if missing or extra:
            raise ConfigError(f"method {method_name!r} steps the optimizers {', '.join(groups_by_name)}: set "
                              f"optimizers.<name> for each (missing: {', '.join(missing) or 'none'}; not used: "
                              f"{', '.join(extra) or 'none'})")
        configs = {n: (named_cfg[n], named_cfg[n].get("clip", cfg.get("clip")), f"optimizers.{n}",
                       f"optimizers.{n}.clip" if "clip" in named_cfg[n] else "clip") for n in groups_by_name}
    if sorted(phases) != sorted(groups_by_name):
        raise UserError(f"{type(trainer).__name__}.phases() = {phases} must name each optimizer of optimizer_groups() "
                        f"once ({', '.join(groups_by_name)})")
    out: dict[str, NamedOptimizer] = {}
    for name in phases:
        groups = groups_by_name[name]
        params = [p for g in groups for p in g["params"]]
        if not params:
            raise UserError(f"method {method_name!r}: optimizer {name!r} has no trainable parameters")
        opt_cfg, clip_cfg, where, clip_where = configs[name]
        optimizer = _instantiate(opt_cfg, groups, where)
        mode, value = _clip_settings(clip_cfg, clip_where)
        out[name] = NamedOptimizer(name, optimizer, build_scheduler(optimizer, cfg.get("schedule", {}) or {},
                                                                    milestones), params, mode, value)
    return out


def optimizers_state(optimizers: Mapping[str, NamedOptimizer]) -> dict[str, Any]:
    return {"optimizers": {n: o.torch_optimizer.state_dict() for n, o in optimizers.items()},
            "schedulers": {n: o.scheduler.state_dict() for n, o in optimizers.items()}}


def load_optimizers_state(optimizers: Mapping[str, NamedOptimizer], ckpt: Mapping[str, Any]) -> None:
    """Restore every optimizer and schedule (format /1 checkpoints hold one, ``main``)."""
    if "optimizers" in ckpt:
        opt_states, sched_states = ckpt["optimizers"], ckpt["schedulers"]
    else:
        opt_states, sched_states = {"main": ckpt["optimizer"]}, {"main": ckpt["scheduler"]}
    if set(opt_states) != set(optimizers):
        raise UserError(f"checkpoint {ckpt.get('path')} holds optimizers {', '.join(opt_states)}, this run has "
                        f"{', '.join(optimizers)}")
    for name, opt in optimizers.items():
        opt.optimizer.load_state_dict(opt_states[name])
        opt.scheduler.load_state_dict(sched_states[name])


def average_gradients(params: Sequence[torch.nn.Parameter], world: int) -> None:
    """Mean of the gradients over processes, as DDP computes it, in one flattened all-reduce.

    A parameter without a gradient on some processes (but not all) counts as zero there.
    """
    if world <= 1:
        return
    import torch.distributed as td

    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    td.all_reduce(has)
    active = []
    for p, n in zip(params, has.tolist()):
        if n == 0:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        active.append(p)
    if not active:
        return
    for dtype in {p.grad.dtype for p in active}:
        grads = [p.grad for p in active if p.grad.dtype == dtype]
        flat = torch._utils._flatten_dense_tensors(grads)
        td.all_reduce(flat)
        flat /= world
        for g, synced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
            g.copy_(synced)
