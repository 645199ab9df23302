"""``srbench-train``: train or fine-tune a registered method; the runner owns the loop.

    srbench-train method=ecdp dataset=train_folder dataset.hr_dir=/data/DF2K_HR dataset.patch_size=160
    srbench-train method=ecdp ... mixed_precision=bf16 grad_accum=2 logger=wandb
    accelerate launch --num_processes 4 -m srbench.runners.train method=ecdp ...     # multi-GPU

A method gives its losses through ``SRMethod.trainer(cfg)`` (:class:`srbench.training.Trainer`).
One optimizer step is::

    for each of grad_accum micro-batches:              (accelerate: autocast, loss scaling)
        losses = trainer.training_step(batch);  backward(losses["loss"] / grad_accum)
    average gradients over processes;  clip (value | norm);  optimizer step
    lr ← lr₀ · min(step+1, warmup)/warmup · γ^(milestones passed)      (ECDP lib/lr_sched.py)
    EMA update;  log / validate (EMA weights, metrics harness) / checkpoint when due

Exact resume: a checkpoint holds the trained weights, optimizer, lr schedule, EMA, loss
scaler, trainer state, step, the number of samples consumed and every process's RNG states
(python, numpy, torch, CUDA). The data stream is a pure function of (seed, samples consumed)
(:mod:`srbench.data.patches`), so a killed run restarted with the same command reproduces the
uninterrupted run bit for bit on CPU.

Multi-GPU: gradients are averaged by the runner (one flattened all-reduce per step), not by a
DDP wrapper, because a Trainer calls its own module objects and would bypass the wrapper.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srbench.config import to_container
from srbench.devices import DTYPES
from srbench.errors import UserError, is_user_error, one_line
from srbench.fsutil import atomic_path, atomic_write_text
from srbench.method import SRMethod, UnknownMethod, get_method, method_entries
from srbench.paths import CONF_DIR
from srbench.training import CHECKPOINT_FORMAT, checkpoint_weights, list_checkpoints, load_checkpoint

#: config keys that do not change the trained weights (left out of the default run name and resume check)
_RUN_INDEPENDENT = ("max_steps", "checkpoint_every", "keep_checkpoints", "validate_every", "val_max_images",
                    "log_every", "num_workers", "logger", "results_dir", "run_name", "resume", "val", "metrics",
                    "hydra", "paths", "device", "checkpoint_params")


# ----------------------------------------------------------------------------- method lookup
def _overrides_trainer(cls: type[SRMethod]) -> bool:
    return getattr(cls, "trainer", None) is not SRMethod.trainer


def trainable_methods() -> list[str]:
    """Names of registered methods whose class implements ``trainer`` (imports each method)."""
    names = []
    for name, entry in method_entries().items():
        try:
            cls = entry.load()
        except Exception:  # noqa: BLE001, S112 - a broken plugin is not trainable; get_method reports it
            continue
        if _overrides_trainer(cls):
            names.append(name)
    return names


def resolve_trainable(name: str) -> type[SRMethod]:
    """The class of a trainable method, or a one-line :class:`UserError` listing the trainable ones."""
    try:
        cls = get_method(name)
    except UnknownMethod:
        raise UserError(f"unknown method {name!r}; trainable methods: {', '.join(trainable_methods()) or 'none'}") from None
    if not _overrides_trainer(cls):
        raise UserError(f"method {name!r} cannot be trained (it has no trainer); trainable methods: "
                        f"{', '.join(trainable_methods()) or 'none'}")
    return cls


# ----------------------------------------------------------------------------- lr schedule
def lr_factor(step: int, *, warmup_steps: int, milestones: Sequence[int], gamma: float) -> float:
    """Multiplier of every group's initial lr for optimizer step ``step`` (0-based).

    ECDP ``lib/lr_sched.py``: ``min(step + 1, warmup) / warmup · γ^#{milestones ≤ step}``,
    with milestones already converted to steps.
    """
    warm = min(step + 1, warmup_steps) / warmup_steps if warmup_steps > 0 else 1.0
    return warm * gamma ** sum(1 for m in milestones if m <= step)


def milestone_steps(schedule: Mapping[str, Any], steps_per_epoch: int) -> list[int]:
    unit = schedule.get("milestone_unit", "steps")
    if unit not in ("steps", "epochs"):
        raise UserError(f"schedule.milestone_unit must be steps or epochs (got {unit!r})")
    per = steps_per_epoch if unit == "epochs" else 1
    return sorted(int(m) * per for m in schedule.get("milestones") or [])


# ----------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """Every global RNG a training step may draw from (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (validation) without moving the training RNG streams."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- checkpoints
def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`srbench.fsutil.atomic_path` (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def module_state(module: torch.nn.Module, which: str) -> dict[str, torch.Tensor]:
    """State to checkpoint: everything, or all but frozen parameters (they come from the method's weights)."""
    sd = module.state_dict()
    if which == "all":
        return sd
    frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
    return {k: v for k, v in sd.items() if k not in frozen}


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    result = module.load_state_dict(dict(state), strict=False)
    if result.unexpected_keys:
        raise UserError(f"{what}: keys not in the model: {', '.join(result.unexpected_keys[:5])}"
                        f"{'…' if len(result.unexpected_keys) > 5 else ''} (different method or config?)")


# ----------------------------------------------------------------------------- gradients
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


# ----------------------------------------------------------------------------- config helpers
def _mixed_precision(value: Any) -> str:
    # YAML 1.1 reads an unquoted `no` as false
    mp = "no" if value in (None, False, "no", "none", "fp32") else str(value)
    if mp not in ("no", "fp16", "bf16"):
        raise UserError(f"mixed_precision must be no, bf16 or fp16 (got {value!r})")
    return mp


def run_fingerprint(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the config that changes the trained weights."""
    return {k: v for k, v in cfg.items() if k not in _RUN_INDEPENDENT}


def default_run_name(cfg: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(run_fingerprint(cfg), sort_keys=True, default=str).encode()).hexdigest()
    return f"x{cfg['dataset'].get('scale', '?')}-{digest[:10]}"


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def truncate_log(path: Path, last_step: int) -> None:
    """Drop rows logged after ``last_step`` (a killed run logged steps the resumed run will redo)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    if not fields:
        return
    keep = [r for r in rows if not r.get("step") or float(r["step"]) <= last_step]
    if len(keep) == len(rows):
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(keep)


# ----------------------------------------------------------------------------- validation
def validate(method: SRMethod, dataset: Any, suite: Any, *, seed: int, device: torch.device,
             max_images: int | None) -> dict[str, float]:
    """Mean of each metric over the first ``max_images`` images of ``dataset`` (one image per call)."""
    from srbench.data.base import image_seed
    from srbench.runners.scoring import score_batch

    n = len(dataset) if max_images is None else min(len(dataset), int(max_images))
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for i in range(n):
        sample = dataset[i]
        lr = sample.lr[None].to(device)
        hr = None if sample.hr is None else sample.hr[None].to(device)
        with torch.inference_mode():
            sr = method.upscale(lr, sample.scale, seeds=[image_seed(seed, sample.name)])
        sr = sr.float().clamp(0, 1)
        values = score_batch(suite, sr, hr, lr, scale=sample.scale, degrade=dataset.degrade,
                             gray=[bool(sample.meta.get("was_gray", False))])
        for col, vals in values.items():
            for v in vals:
                if math.isfinite(v):
                    sums[col] = sums.get(col, 0.0) + v
                    counts[col] = counts.get(col, 0) + 1
    return {f"val/{c}": sums[c] / counts[c] for c in sums}


# ----------------------------------------------------------------------------- the run
@dataclass
class TrainResult:
    run_dir: Path
    step: int
    history: list[dict[str, float]] = field(default_factory=list)  # logged rows of this process
    validation: dict[str, float] = field(default_factory=dict)     # last validation means
    resumed_from: str | None = None
    is_main: bool = True


class _Run:
    """One training run: builds everything from the config, then :meth:`loop`."""

    def __init__(self, cfg: Mapping[str, Any]):
        from accelerate import Accelerator

        self.cfg = cfg
        self.mp = _mixed_precision(cfg.get("mixed_precision"))
        self.accum = int(cfg.get("grad_accum", 1))
        if self.accum < 1:
            raise UserError(f"grad_accum must be ≥ 1 (got {self.accum})")
        device = cfg.get("device", "auto")
        if device not in ("auto", "cpu"):
            raise UserError(f"device must be auto or cpu (got {device!r}); pick GPUs with accelerate launch or "
                            "CUDA_VISIBLE_DEVICES")
        self.accelerator = Accelerator(mixed_precision=self.mp, gradient_accumulation_steps=self.accum,
                                       cpu=device == "cpu", log_with=None)
        self.device = self.accelerator.device
        if self.mp != "no" and not self.accelerator.native_amp:
            raise UserError(f"mixed_precision={self.mp} is not available on {self.device.type} (accelerate would "
                            "silently train in fp32); use mixed_precision=bf16 or no")
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        self.is_main = self.accelerator.is_main_process
        self.seed = int(cfg.get("seed", 0))
        self.batch_size = int(cfg["batch_size"])

        method_cfg = dict(cfg["method"])
        self.method_cls = resolve_trainable(method_cfg["name"])
        dtype_name = cfg.get("dtype", "fp32")
        if dtype_name not in DTYPES:
            raise UserError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype_name!r})")
        method_dtype = method_cfg.get("dtype")
        if method_dtype not in (None, "auto") and DTYPES.get(str(method_dtype)) != DTYPES[dtype_name]:
            # method.dtype is the bench's inference precision; here it would be silently ignored
            raise UserError(f"method.dtype={method_dtype} does not apply to training: the model is built in "
                            f"dtype={dtype_name}; set dtype=… (weights) or mixed_precision=bf16|fp16 (autocast)")

        # Data first: a wrong folder or scale is reported before a large model is built.
        from srbench.data.patches import PairedPatchDataset

        self.dataset = PairedPatchDataset.from_config(cfg["dataset"], seed=self.seed)
        self.method_cls.check_scale(self.dataset.scale)

        seed_everything(self.seed)  # identical initial weights on every process
        self.method = self.method_cls.from_config(method_cfg, self.device, DTYPES[dtype_name])
        try:
            self.trainer = self.method.trainer(cfg)
        except NotImplementedError as exc:
            raise UserError(f"method {method_cfg['name']!r} cannot be trained with this config: {one_line(exc)}") from None
        self.modules = dict(self.trainer.modules())
        for m in self.modules.values():
            m.to(self.device)
            m.train()
        if cfg.get("init", {}).get("checkpoint"):
            self._init_from(cfg["init"])
        if self.world > 1:
            self._broadcast_modules()

        base_lr = float(cfg["optimizer"]["lr"])
        groups = self.trainer.parameter_groups(base_lr)
        self.params = [p for g in groups for p in g["params"]]
        if not self.params:
            raise UserError(f"method {method_cfg['name']!r}: the trainer has no trainable parameters")
        from hydra.utils import instantiate

        self.optimizer = instantiate(cfg["optimizer"])(groups)

        self.samples_per_step = self.batch_size * self.world * self.accum
        from srbench.data.patches import EpochSampler

        probe = EpochSampler(len(self.dataset), global_batch=self.batch_size * self.world)
        self.steps_per_epoch = max(1, probe.samples_per_epoch // self.samples_per_step)
        sched = cfg.get("schedule", {})
        self.milestones = milestone_steps(sched, self.steps_per_epoch)
        warmup, gamma = int(sched.get("warmup_steps", 0) or 0), float(sched.get("gamma", 0.5))
        milestones = self.milestones
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup_steps=warmup, milestones=milestones, gamma=gamma))

        self.ema = self._build_ema(cfg.get("ema", {}))
        self.step, self.samples_seen = 0, 0
        self.resumed_from: str | None = None
        self.run_name = cfg.get("run_name") or default_run_name(cfg)
        self.run_dir = Path(cfg.get("results_dir", "results")) / "train" / self.method_cls.name / self.run_name
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._rng_to_restore: dict[str, Any] | None = None
        self._maybe_resume(cfg.get("resume", "auto"))

        self.optimizer = self.accelerator.prepare(self.optimizer)
        self.loader = self._build_loader()
        self.val_dataset = self.suite = None

    # ------------------------------------------------------------------ building blocks
    def _build_ema(self, ema_cfg: Mapping[str, Any]) -> Any:
        if not ema_cfg.get("enabled", False):
            return None
        from srbench.nn.ema import EMA

        n, decay = ema_cfg.get("n"), ema_cfg.get("decay")
        if (n is None) == (decay is None):
            raise UserError("ema: set exactly one of ema.n (ECDP's N) or ema.decay (β)")
        return EMA(self.modules, n=n, decay=decay, warmup=bool(ema_cfg.get("warmup", False)),
                   average_buffers=bool(ema_cfg.get("average_buffers", False)))

    def _build_loader(self) -> Any:
        from srbench.data.patches import EpochSampler, PatchCollator

        sampler = EpochSampler(len(self.dataset), global_batch=self.batch_size * self.world, seed=self.seed,
                               start=self.samples_seen)
        workers = int(self.cfg.get("num_workers", 0))
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=sampler, collate_fn=PatchCollator(self.dataset.scale),
            num_workers=workers, persistent_workers=workers > 0, pin_memory=self.device.type == "cuda",
            # its own generator, so creating the iterator does not draw from the global torch RNG
            generator=torch.Generator())
        # accelerate shards the batch stream over processes (batch k → process k mod world)
        return self.accelerator.prepare(loader)

    def _broadcast_modules(self) -> None:
        import torch.distributed as td

        with torch.no_grad():
            for m in self.modules.values():
                for t in list(m.parameters()) + list(m.buffers()):
                    td.broadcast(t.data, src=0)

    def _init_from(self, init_cfg: Mapping[str, Any]) -> None:
        ckpt = load_checkpoint(init_cfg["checkpoint"])
        src_method = ckpt.get("config", {}).get("method", {}).get("name")
        if src_method != self.method_cls.name:
            raise UserError(f"init.checkpoint {ckpt['path']} was trained with method {src_method!r}, "
                            f"not {self.method_cls.name!r}")
        shared = [name for name in self.modules if name in ckpt["modules"]]
        if not shared:
            raise UserError(f"init.checkpoint {ckpt['path']} holds modules {', '.join(ckpt['modules'])}, none of "
                            f"which this trainer trains ({', '.join(self.modules)})")
        for name in shared:
            state = checkpoint_weights(ckpt, name, use_ema=bool(init_cfg.get("use_ema", True)))
            load_module_state(self.modules[name], state, f"init.checkpoint {ckpt['path']}")

    # ------------------------------------------------------------------ resume
    def _maybe_resume(self, resume: Any) -> None:
        if resume in (None, False, "never", "no"):
            return
        if resume == "auto":
            found = list_checkpoints(self.ckpt_dir)
            if not found:
                return
            ckpt = load_checkpoint(found[-1][1])
        else:
            ckpt = load_checkpoint(resume)
        differ = _diff_keys(run_fingerprint(ckpt.get("config", {})), run_fingerprint(self.cfg))
        if differ:
            raise UserError(f"cannot resume from {ckpt['path']}: the config differs in {', '.join(differ[:8])}; "
                            "use the same settings, another run_name, or resume=never")
        for name, module in self.modules.items():
            load_module_state(module, ckpt["modules"][name], f"checkpoint {ckpt['path']}")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.ema is not None:
            if not ckpt.get("ema"):
                raise UserError(f"checkpoint {ckpt['path']} has no EMA state but ema.enabled=true")
            self.ema.load_state_dict(ckpt["ema"])
        if ckpt.get("trainer") and hasattr(self.trainer, "load_state_dict"):
            self.trainer.load_state_dict(ckpt["trainer"])
        if ckpt.get("scaler") is not None and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.samples_seen = int(ckpt["step"]), int(ckpt["samples_seen"])
        states = ckpt["rng"]
        if len(states) != self.world:
            print(f"[srbench-train] checkpoint was written by {len(states)} process(es), this run has {self.world}: "
                  "RNG streams are reseeded, the run is no longer bitwise reproducible", file=sys.stderr)
            self._rng_to_restore = None
            seed_everything(self.seed + 1_000_003 * self.step + self.rank)
        else:
            self._rng_to_restore = states[self.rank]
        self.resumed_from = ckpt["path"]

    def save_checkpoint(self) -> Path | None:
        from accelerate.utils import gather_object

        states = gather_object([rng_state()]) if self.world > 1 else [rng_state()]
        path = self.ckpt_dir / f"step_{self.step:08d}.pt"
        if self.is_main:
            which = self.cfg.get("checkpoint_params", "trainable")
            optimizer = self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer
            ckpt = {
                "format": CHECKPOINT_FORMAT, "step": self.step, "samples_seen": self.samples_seen,
                "epoch": self.samples_seen // max(1, self.steps_per_epoch * self.samples_per_step),
                "modules": {n: module_state(m, which) for n, m in self.modules.items()},
                "optimizer": optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "trainer": self.trainer.state_dict() if hasattr(self.trainer, "state_dict") else None,
                "scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler is not None else None,
                "rng": states, "config": dict(self.cfg), "world_size": self.world,
            }
            atomic_torch_save(ckpt, path)
            keep = int(self.cfg.get("keep_checkpoints", 2) or 0)
            if keep > 0:
                for _, old in list_checkpoints(self.ckpt_dir)[:-keep]:
                    old.unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()
        return path if self.is_main else None

    # ------------------------------------------------------------------ validation
    def run_validation(self) -> dict[str, float]:
        val_cfg = self.cfg.get("val") or {}
        if not val_cfg.get("name"):
            return {}
        result: dict[str, float] = {}
        if self.is_main:
            if self.val_dataset is None:
                from srbench.data.base import build_dataset
                from srbench.metrics import build_metrics

                self.val_dataset = build_dataset(val_cfg)
                m = self.cfg.get("metrics", {}) or {}
                self.suite = build_metrics(m.get("profile", "standard"),
                                           lpips_nets=tuple(m.get("lpips_nets", ("alex",))),
                                           lpips_weights=m.get("lpips_weights"), device=self.device,
                                           scale=self.val_dataset.scale)
                for column, reason in getattr(self.suite, "missing", {}).items():
                    print(f"[srbench-train] val {column} not computed: {reason}", file=sys.stderr)
            training = {n: m.training for n, m in self.modules.items()}
            ema_ctx = self.ema.swapped() if self.ema is not None else contextlib.nullcontext()
            try:
                with preserved_rng(), ema_ctx:
                    for m in self.modules.values():
                        m.eval()
                    result = validate(self.trainer.eval_method(), self.val_dataset, self.suite, seed=self.seed,
                                      device=self.device, max_images=self.cfg.get("val_max_images"))
            finally:
                for n, m in self.modules.items():
                    m.train(training[n])
        self.accelerator.wait_for_everyone()
        return result

    # ------------------------------------------------------------------ the loop
    def loop(self, logger: Any) -> TrainResult:
        cfg = self.cfg
        max_steps = int(cfg["max_steps"])
        log_every = max(1, int(cfg.get("log_every", 10)))
        ckpt_every = int(cfg.get("checkpoint_every", 0) or 0)
        val_every = int(cfg.get("validate_every", 0) or 0)
        clip = cfg.get("clip", {}) or {}
        clip_mode = clip.get("mode", "none") or "none"
        if clip_mode not in ("none", "value", "norm"):
            raise UserError(f"clip.mode must be none, value or norm (got {clip_mode!r})")
        result = TrainResult(self.run_dir, self.step, resumed_from=self.resumed_from, is_main=self.is_main)
        if self.step >= max_steps:
            return result

        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
        else:
            # a different stream per process (noise, timesteps), fixed by the seed
            seed_everything(self.seed + self.rank)
        running: dict[str, torch.Tensor] = {}
        n_running = 0
        t_last = time.perf_counter()
        bar = _progress(max_steps, self.step, disable=not self.is_main)
        data = iter(self.loader)
        models = list(self.modules.values())
        while self.step < max_steps:
            for _ in range(self.accum):
                batch = next(data)
                with self.accelerator.accumulate(*models):
                    with self.accelerator.autocast():
                        losses = self.trainer.training_step(batch)
                    if "loss" not in losses:
                        raise UserError(f"{type(self.trainer).__name__}.training_step must return a dict with 'loss'")
                    self.accelerator.backward(losses["loss"])
                    grad_norm = None
                    if self.accelerator.sync_gradients:
                        average_gradients(self.params, self.world)
                        if clip_mode == "value":
                            self.accelerator.clip_grad_value_(self.params, float(clip["value"]))
                        elif clip_mode == "norm":
                            grad_norm = self.accelerator.clip_grad_norm_(self.params, float(clip["value"]))
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                for k, v in losses.items():
                    v = torch.as_tensor(v, device=self.device).detach().float().mean() / self.accum
                    running[k] = running[k] + v if k in running else v
                if grad_norm is not None:
                    running["grad_norm"] = running.get("grad_norm", 0) + grad_norm.detach().float() / self.accum
            if not self.accelerator.sync_gradients:  # cannot happen with a fresh accumulate counter
                raise RuntimeError("gradient accumulation fell out of step with the optimizer steps")
            lr_used = self.scheduler.get_last_lr()[0]
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update()
            self.step += 1
            self.samples_seen += self.samples_per_step
            n_running += 1
            bar.update(1)

            row: dict[str, float] = {}
            if self.step % log_every == 0 or self.step == max_steps:
                row = self._reduce_running(running, n_running)
                bad = [k for k, v in row.items() if not math.isfinite(v)]
                if bad:
                    raise UserError(f"non-finite {', '.join(bad)} between steps {self.step - n_running + 1} and "
                                    f"{self.step}; the last checkpoint is in {self.ckpt_dir} (lower the lr or clip)")
                now = time.perf_counter()
                row.update(lr=lr_used, epoch=self.samples_seen / (self.steps_per_epoch * self.samples_per_step),
                           steps_per_s=n_running / max(now - t_last, 1e-9))
                running, n_running, t_last = {}, 0, now
                bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4g}", lr=f"{lr_used:.3g}")
            last = self.step == max_steps
            if (val_every and self.step % val_every == 0) or (last and val_every):
                val = self.run_validation()
                if val:
                    row.update(val)
                    result.validation = val
                t_last = time.perf_counter()  # steps_per_s measures training only
            if row and self.is_main:
                logger.log_metrics(row, step=self.step)
                result.history.append({"step": self.step, **row})
                if not bar.enabled:
                    print(f"[srbench-train] step {self.step}/{max_steps} " +
                          " ".join(f"{k}={v:.5g}" for k, v in row.items()), file=sys.stderr)
            if (ckpt_every and self.step % ckpt_every == 0) or last:
                self.save_checkpoint()
        bar.close()
        result.step = self.step
        return result

    def _reduce_running(self, running: Mapping[str, torch.Tensor], n: int) -> dict[str, float]:
        if not running:
            return {}
        keys = sorted(running)
        values = torch.stack([torch.as_tensor(running[k], device=self.device, dtype=torch.float32) for k in keys]) / n
        if self.world > 1:
            values = self.accelerator.reduce(values, reduction="mean")
        return dict(zip(keys, values.tolist()))

    def write_manifest(self) -> None:
        if not self.is_main:
            return
        from srbench.results.provenance import device_info, git_state, library_versions

        manifest = {
            "run_name": self.run_name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv,
            "git": git_state(), "config": self.cfg, "method": self.method.describe(),
            "dataset": self.dataset.describe(), "libraries": library_versions(), "device": device_info(self.device),
            "world_size": self.world, "mixed_precision": self.mp, "steps_per_epoch": self.steps_per_epoch,
            "lr_milestones_steps": self.milestones, "resumed_from": self.resumed_from,
        }
        atomic_write_text(self.run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))


class _NoBar:
    enabled = False

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, disable: bool) -> Any:
    if disable or not sys.stderr.isatty():
        return _NoBar()
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)
    bar.enabled = True
    return bar


def train(cfg: Any) -> TrainResult:
    """Run (or resume) the training described by a resolved ``conf/train.yaml`` config."""
    from srbench.tracking import build_logger

    c = to_container(cfg)
    run: _Run | None = None
    try:
        run = _Run(c)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        run.write_manifest()
        logger = None
        if run.is_main:
            log_cfg = c.get("logger") or {"name": "none"}
            if log_cfg.get("name") == "csv":
                truncate_log(run.run_dir / log_cfg.get("filename", "log.csv"), run.step)
            logger = build_logger(log_cfg, run_dir=run.run_dir, run_name=f"{run.method_cls.name}-{run.run_name}",
                                  group=str(c["dataset"].get("name", "train")), config=c)
            if run.resumed_from:
                print(f"[srbench-train] resumed from {run.resumed_from} (step {run.step})", file=sys.stderr)
        try:
            result = run.loop(logger if logger is not None else _NullLog())
        finally:
            if logger is not None:
                logger.finish()
        return result
    finally:
        if run is not None:
            run.accelerator.end_training()
        _reset_accelerate_state()


class _NullLog:
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass


def _reset_accelerate_state() -> None:
    """Let another run in the same process (tests, Hydra multirun) pick its own mixed precision."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


# ----------------------------------------------------------------------------- entry points
def compose_config(overrides: Sequence[str] = ()) -> Any:
    """The training config as ``srbench-train`` would compose it (for tests and notebooks)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from srbench.runners.hydra_setup import prepare_hydra

    prepare_hydra(list(overrides), groups={"method": method_entries})
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def _hydra_app(cfg: Any) -> None:
    try:
        result = train(cfg)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"srbench-train: error: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    if not result.is_main:
        return
    if result.validation:
        print("validation: " + " ".join(f"{k}={v:.4f}" for k, v in result.validation.items()))
    print(f"trained to step {result.step}: {result.run_dir}")


def _check_methods(argv: Sequence[str]) -> None:
    """Fail fast, in one line, on ``method=<option>`` that is unknown or cannot be trained."""
    from srbench.runners.hydra_setup import method_name_of

    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") == "method" and "(" not in value:
            for option in filter(None, (v.strip() for v in value.split(","))):
                try:
                    resolve_trainable(method_name_of(option))
                except UserError as exc:
                    print(f"srbench-train: error: {one_line(exc)}", file=sys.stderr)
                    raise SystemExit(2) from None


def main() -> None:
    """Console script ``srbench-train`` (a Hydra app over ``conf/train.yaml``)."""
    import hydra

    from srbench.runners.hydra_setup import prepare_hydra

    _check_methods(sys.argv[1:])
    prepare_hydra(sys.argv[1:], groups={"method": method_entries})
    hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")(_hydra_app)()


if __name__ == "__main__":
    main()
