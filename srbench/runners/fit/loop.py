"""One training run of ``srbench-train``: build everything from the config, resume, loop, validate.

One optimizer step (see :mod:`srbench.training` for the contract)::

    take grad_accum micro-batches
    for each optimizer phase (one, ``main``, unless the trainer names several):
        zero its gradients
        for each micro-batch: losses = trainer.training_step(batch[, phase]); backward(loss / grad_accum)
        average gradients over processes; clip; step; advance its lr schedule
    EMA update;  log / validate (EMA weights, metrics harness) / checkpoint when due

Multi-GPU: gradients are averaged by the runner (one flattened all-reduce per optimizer), not by
a DDP wrapper, because a Trainer calls its own module objects and would bypass the wrapper.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from srbench.devices import DTYPES
from srbench.errors import CheckpointError, ConfigError, UserError, one_line
from srbench.fsutil import atomic_write_text
from srbench.method import SRMethod
from srbench.training import CHECKPOINT_FORMAT, checkpoint_weights, list_checkpoints, load_checkpoint

from .checkpoints import atomic_torch_save, checkpoint_path, load_module_state, module_state, prune
from .optimizers import average_gradients, build_optimizers, load_optimizers_state, optimizers_state
from .rng import preserved_rng, rng_state, seed_everything, set_rng_state
from .schedule import milestone_steps

#: config keys that do not change the trained weights (left out of the default run name and resume check)
RUN_INDEPENDENT = ("max_steps", "checkpoint_every", "keep_checkpoints", "validate_every", "val_max_images",
                   "log_every", "num_workers", "logger", "results_dir", "run_name", "resume", "val", "metrics",
                   "hydra", "paths", "device", "checkpoint_params")


def run_fingerprint(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the config that changes the trained weights."""
    return {k: v for k, v in cfg.items() if k not in RUN_INDEPENDENT}


def diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def mixed_precision_mode(value: Any) -> str:
    # YAML 1.1 reads an unquoted `no` as false
    mp = "no" if value in (None, False, "no", "none", "fp32") else str(value)
    if mp not in ("no", "fp16", "bf16"):
        raise ConfigError(f"mixed_precision must be no, bf16 or fp16 (got {value!r})")
    return mp


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


class TrainRun:
    """One training run: builds everything from the config, then :meth:`loop`."""

    def __init__(self, cfg: Mapping[str, Any], method_cls: type[SRMethod]):
        from accelerate import Accelerator

        self.cfg = cfg
        self.method_cls = method_cls
        self.mp = mixed_precision_mode(cfg.get("mixed_precision"))
        self.accum = int(cfg.get("grad_accum", 1))
        if self.accum < 1:
            raise ConfigError(f"grad_accum must be ≥ 1 (got {self.accum})")
        device = cfg.get("device", "auto")
        if device not in ("auto", "cpu"):
            raise ConfigError(f"device must be auto or cpu (got {device!r}); pick GPUs with accelerate launch or "
                              "CUDA_VISIBLE_DEVICES")
        # accumulation is done here (the same micro-batches for every optimizer phase), so accelerate
        # sees one micro-batch per step and never divides the loss itself
        self.accelerator = Accelerator(mixed_precision=self.mp, gradient_accumulation_steps=1,
                                       cpu=device == "cpu", log_with=None)
        self.device = self.accelerator.device
        if self.mp != "no" and not self.accelerator.native_amp:
            raise ConfigError(f"mixed_precision={self.mp} is not available on {self.device.type} (accelerate would "
                              "silently train in fp32); use mixed_precision=bf16 or no")
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        self.is_main = self.accelerator.is_main_process
        self.seed = int(cfg.get("seed", 0))
        self.batch_size = int(cfg["batch_size"])

        method_cfg = dict(cfg["method"])
        dtype_name = cfg.get("dtype", "fp32")
        if dtype_name not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype_name!r})")
        method_dtype = method_cfg.get("dtype")
        if method_dtype not in (None, "auto") and DTYPES.get(str(method_dtype)) != DTYPES[dtype_name]:
            # method.dtype is the bench's inference precision; here it would be silently ignored
            raise ConfigError(f"method.dtype={method_dtype} does not apply to training: the model is built in "
                              f"dtype={dtype_name}; set dtype=… (weights) or mixed_precision=bf16|fp16 (autocast)")

        # Data first: a wrong folder or scale is reported before a large model is built.
        from srbench.data.patches import EpochSampler, PairedPatchDataset

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

        self.samples_per_step = self.batch_size * self.world * self.accum
        probe = EpochSampler(len(self.dataset), global_batch=self.batch_size * self.world)
        self.steps_per_epoch = max(1, probe.samples_per_epoch // self.samples_per_step)
        self.milestones = milestone_steps(cfg.get("schedule", {}) or {}, self.steps_per_epoch)
        self.optimizers = build_optimizers(self.trainer, cfg, self.milestones, method_cfg["name"])
        self.several = list(self.optimizers) != ["main"]

        self.ema = self._build_ema(cfg.get("ema", {}))
        self.step, self.samples_seen = 0, 0
        self.resumed_from: str | None = None
        self.run_name = cfg.get("run_name") or default_run_name(cfg)
        self.run_dir = Path(cfg.get("results_dir", "results")) / "train" / self.method_cls.name / self.run_name
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._rng_to_restore: dict[str, Any] | None = None
        self._maybe_resume(cfg.get("resume", "auto"))

        for opt in self.optimizers.values():
            opt.optimizer = self.accelerator.prepare(opt.optimizer)
        self.loader = self._build_loader()
        self.val_dataset = self.suite = None

    # ------------------------------------------------------------------ building blocks
    def _build_ema(self, ema_cfg: Mapping[str, Any]) -> Any:
        if not ema_cfg.get("enabled", False):
            return None
        from srbench.nn.ema import EMA

        n, decay = ema_cfg.get("n"), ema_cfg.get("decay")
        if (n is None) == (decay is None):
            raise ConfigError("ema: set exactly one of ema.n (ECDP's N) or ema.decay (β)")
        return EMA(dict(self.trainer.ema_modules()), n=n, decay=decay, warmup=bool(ema_cfg.get("warmup", False)),
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
            raise CheckpointError(f"init.checkpoint {ckpt['path']} was trained with method {src_method!r}, "
                                  f"not {self.method_cls.name!r}")
        shared = [name for name in self.modules if name in ckpt["modules"]]
        if not shared:
            raise CheckpointError(f"init.checkpoint {ckpt['path']} holds modules {', '.join(ckpt['modules'])}, none "
                                  f"of which this trainer trains ({', '.join(self.modules)})")
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
        differ = diff_keys(run_fingerprint(ckpt.get("config", {})), run_fingerprint(self.cfg))
        if differ:
            raise UserError(f"cannot resume from {ckpt['path']}: the config differs in {', '.join(differ[:8])}; "
                            "use the same settings, another run_name, or resume=never")
        for name, module in self.modules.items():
            load_module_state(module, ckpt["modules"][name], f"checkpoint {ckpt['path']}")
        load_optimizers_state(self.optimizers, ckpt)
        if self.ema is not None:
            if not ckpt.get("ema"):
                raise CheckpointError(f"checkpoint {ckpt['path']} has no EMA state but ema.enabled=true")
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
        path = checkpoint_path(self.ckpt_dir, self.step)
        if self.is_main:
            which = self.cfg.get("checkpoint_params", "trainable")
            ckpt = {
                "format": CHECKPOINT_FORMAT, "step": self.step, "samples_seen": self.samples_seen,
                "epoch": self.samples_seen // max(1, self.steps_per_epoch * self.samples_per_step),
                "modules": {n: module_state(m, which) for n, m in self.modules.items()},
                **optimizers_state(self.optimizers),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "trainer": self.trainer.state_dict() if hasattr(self.trainer, "state_dict") else None,
                "scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler is not None else None,
                "rng": states, "config": dict(self.cfg), "world_size": self.world,
            }
            atomic_torch_save(ckpt, path)
            prune(self.ckpt_dir, int(self.cfg.get("keep_checkpoints", 2) or 0))
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

    # ------------------------------------------------------------------ one step
    def _key(self, key: str, phase: str) -> str:
        return f"{key}/{phase}" if self.several else key

    def train_step(self, micro_batches: list[Any], running: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimizer step over ``micro_batches``: every phase in order; returns the lr each phase used."""
        lrs: dict[str, float] = {}
        for name, opt in self.optimizers.items():
            kwargs = {"phase": name} if self.several else {}
            opt.optimizer.zero_grad(set_to_none=True)
            stepped = True
            for batch in micro_batches:
                with self.accelerator.autocast():
                    losses = self.trainer.training_step(batch, **kwargs)
                if losses is None:
                    stepped = False
                    break
                if "loss" not in losses:
                    raise UserError(f"{type(self.trainer).__name__}.training_step must return a dict with 'loss'")
                self.accelerator.backward(losses["loss"] / self.accum)
                for k, v in losses.items():
                    v = torch.as_tensor(v, device=self.device).detach().float().mean() / self.accum
                    k = self._key(k, name)
                    running[k] = running[k] + v if k in running else v
            if stepped:
                average_gradients(opt.params, self.world)
                if opt.clip_mode != "none":
                    self.accelerator.unscale_gradients(optimizer=opt.optimizer)
                    if opt.clip_mode == "value":
                        torch.nn.utils.clip_grad_value_(opt.params, opt.clip_value)
                    else:
                        norm = torch.nn.utils.clip_grad_norm_(opt.params, opt.clip_value)
                        k = self._key("grad_norm", name)
                        running[k] = running.get(k, 0) + norm.detach().float()
                opt.optimizer.step()
                opt.optimizer.zero_grad(set_to_none=True)
            lrs[self._key("lr", name)] = opt.scheduler.get_last_lr()[0]
            with warnings.catch_warnings():
                # a phase that skipped its step (None) still advances its schedule, on purpose
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                opt.scheduler.step()
        return lrs

    # ------------------------------------------------------------------ the loop
    def loop(self, logger: Any) -> TrainResult:
        cfg = self.cfg
        max_steps = int(cfg["max_steps"])
        log_every = max(1, int(cfg.get("log_every", 10)))
        ckpt_every = int(cfg.get("checkpoint_every", 0) or 0)
        val_every = int(cfg.get("validate_every", 0) or 0)
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
        while self.step < max_steps:
            lrs = self.train_step([next(data) for _ in range(self.accum)], running)
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
                row.update(lrs, epoch=self.samples_seen / (self.steps_per_epoch * self.samples_per_step),
                           steps_per_s=n_running / max(now - t_last, 1e-9))
                running, n_running, t_last = {}, 0, now
                loss_key = self._key("loss", next(iter(self.optimizers)))
                bar.set_postfix(loss=f"{row.get(loss_key, float('nan')):.4g}")
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
        from srbench.results.records import train_manifest

        manifest = train_manifest(
            run_name=self.run_name, config=self.cfg, method=self.method.describe(), dataset=self.dataset.describe(),
            device=self.device, extra={"world_size": self.world, "mixed_precision": self.mp,
                                       "steps_per_epoch": self.steps_per_epoch, "lr_milestones_steps": self.milestones,
                                       "resumed_from": self.resumed_from, "optimizers": list(self.optimizers)})
        atomic_write_text(self.run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))


def default_run_name(cfg: Mapping[str, Any]) -> str:
    import hashlib

    digest = hashlib.sha256(json.dumps(run_fingerprint(cfg), sort_keys=True, default=str).encode()).hexdigest()
    return f"x{cfg['dataset'].get('scale', '?')}-{digest[:10]}"


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
