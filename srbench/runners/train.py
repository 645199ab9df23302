"""``srbench-train``: train or fine-tune a registered method; the runner owns the loop.

    srbench-train method=ecdp dataset=train_folder dataset.hr_dir=/data/DF2K_HR dataset.patch_size=160
    srbench-train method=ecdp ... mixed_precision=bf16 grad_accum=2 logger=wandb
    accelerate launch --num_processes 4 -m srbench.runners.train method=ecdp ...     # multi-GPU

A method gives its losses through ``SRMethod.trainer(cfg)`` (:class:`srbench.training.Trainer`,
one optimizer or several named ones); the loop, optimizers, schedule, checkpoints and RNG state
are the parts in :mod:`srbench.runners.fit`. This module is the entry point: which methods can
train, the config, and one-line errors.

Exact resume: a checkpoint holds the trained weights, every optimizer and lr schedule, EMA,
loss scaler, trainer state, step, the number of samples consumed and every process's RNG
states (python, numpy, torch, CUDA). The data stream is a pure function of (seed, samples
consumed) (:mod:`srbench.data.patches`), so a killed run restarted with the same command
reproduces the uninterrupted run bit for bit on CPU.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from srbench.config import to_container
from srbench.errors import UserError, exit_on_user_error
from srbench.method import SRMethod, UnknownMethod, get_method, method_entries
from srbench.paths import CONF_DIR
from srbench.runners.fit.checkpoints import truncate_log
from srbench.runners.fit.loop import TrainResult, TrainRun
from srbench.runners.schemas import train_settings


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


def train(cfg: Any) -> TrainResult:
    """Run (or resume) the training described by a resolved ``conf/train.yaml`` config."""
    from srbench.tracking import build_logger

    c = to_container(cfg)
    train_settings(c)  # every impossible setting is refused before any work
    run: TrainRun | None = None
    try:
        run = TrainRun(c, resolve_trainable(c["method"]["name"]))
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
    from srbench.runners.compose import compose_app

    return compose_app("train", overrides)


def _hydra_app(cfg: Any) -> None:
    with exit_on_user_error("srbench-train"):
        result = train(cfg)
    if not result.is_main:
        return
    if result.validation:
        print("validation: " + " ".join(f"{k}={v:.4f}" for k, v in result.validation.items()))
    print(f"trained to step {result.step}: {result.run_dir}")


def _check_methods(argv: Sequence[str]) -> None:
    """Fail fast, in one line, on ``method=<option>`` that is unknown or cannot be trained."""
    from srbench.runners.compose import method_name_of

    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") == "method" and "(" not in value:
            for option in filter(None, (v.strip() for v in value.split(","))):
                with exit_on_user_error("srbench-train"):
                    resolve_trainable(method_name_of(option))


def main() -> None:
    """Console script ``srbench-train`` (a Hydra app over ``conf/train.yaml``)."""
    import hydra

    from srbench.runners.compose import prepare_hydra

    _check_methods(sys.argv[1:])
    prepare_hydra(sys.argv[1:], groups={"method": method_entries})
    hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")(_hydra_app)()


if __name__ == "__main__":
    main()
