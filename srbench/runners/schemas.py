"""The settings each app reads, as typed dataclasses: checked once, before any work starts.

``srbench-bench``, ``srbench-train`` and ``srbench perf`` build these from their composed config
with :func:`srbench.config.typed`: an unknown top-level key, a value of the wrong type or out
of its range (``batch_size=-1``) is one line naming the key and what is allowed, exit 2. The
group nodes (``method``, ``dataset``, ``metrics``, ``logger``) are checked by their owners
(a method's typed config, the dataset's constructor, the metric suite).

These are not registered as Hydra ConfigStore schemas on purpose: Hydra would then report a
type error at composition in its own multi-line format (exit 1), before the one-line checks
below could name the allowed range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from srbench.config import bounded, typed, within
from srbench.errors import ConfigError


def _count_or(value: Any, word: str, key: str) -> Any:
    """``value`` is an integer ≥ 0 or the string ``word``."""
    if isinstance(value, str) and value.lower() == word:
        return word
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key}={value!r}: must be an integer ≥ 0 or {word}")
    return value


@dataclass
class PostprocessSettings:
    """``postprocess.*`` of ``conf/bench.yaml``: applied by the runner to every SR batch before scoring."""

    # the modes of srbench.nn.colorfix.COLOR_FIX_MODES (listed here: schemas import nothing from nn)
    colorfix: str = bounded("none", choices=("none", "adain", "wavelet", "ycbcr"))


@dataclass
class BenchSettings:
    """``conf/bench.yaml``."""

    method: Any = None
    dataset: Any = None
    metrics: Any = None
    logger: Any = None
    paths: Any = None
    seed: int = bounded(0, ge=0)
    seeds: int = bounded(1, ge=1)
    device: str = "auto"
    batch_size: int = bounded(4, ge=1)
    num_workers: int = bounded(2, ge=0)
    results_dir: str = "results"
    run_name: str | None = None
    resume: bool = True
    on_error: str = bounded("raise", choices=("raise", "skip"))
    save_images: Any = 4
    save_hr: bool = False
    warmup: Any = "auto"
    max_images: int | None = bounded(None, ge=1)
    max_image_pixels: int | None = bounded(None, ge=0)
    print_table: bool = True
    postprocess: PostprocessSettings = field(default_factory=PostprocessSettings)

    def __post_init__(self) -> None:
        self.save_images = _count_or(self.save_images, "all", "save_images")
        self.warmup = _count_or(self.warmup, "auto", "warmup")


@dataclass
class ScheduleSettings:
    warmup_steps: int = bounded(0, ge=0)
    milestones: list[int] = field(default_factory=list, metadata=within(ge=0))
    milestone_unit: str = bounded("steps", choices=("steps", "epochs"))
    gamma: float = bounded(0.5, gt=0)


@dataclass
class ClipSettings:
    mode: str = bounded("none", choices=("none", "value", "norm"))
    value: float = bounded(10.0, gt=0)


@dataclass
class EmaSettings:
    enabled: bool = False
    n: float | None = bounded(None, ge=1)
    decay: float | None = bounded(None, ge=0, lt=1)
    warmup: bool = False
    average_buffers: bool = False


@dataclass
class TrainSettings:
    """``conf/train.yaml``."""

    method: Any = None
    dataset: Any = None
    val: Any = None
    metrics: Any = None
    logger: Any = None
    paths: Any = None
    optimizer: Any = None
    optimizers: Any = None
    init: Any = None
    resume: Any = "auto"
    seed: int = bounded(0, ge=0)
    device: str = bounded("auto", choices=("auto", "cpu"))
    dtype: str = bounded("fp32", choices=("fp32", "float32", "bf16", "bfloat16", "fp16", "float16"))
    mixed_precision: Any = "no"
    max_steps: int = bounded(1000, ge=0)
    batch_size: int = bounded(16, ge=1)
    grad_accum: int = bounded(1, ge=1)
    num_workers: int = bounded(4, ge=0)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    clip: ClipSettings = field(default_factory=ClipSettings)
    ema: EmaSettings = field(default_factory=EmaSettings)
    checkpoint_every: int = bounded(1000, ge=0)
    keep_checkpoints: int = bounded(2, ge=0)
    checkpoint_params: str = bounded("trainable", choices=("trainable", "all"))
    validate_every: int = bounded(1000, ge=0)
    val_max_images: int | None = bounded(None, ge=1)
    log_every: int = bounded(10, ge=1)
    results_dir: str = "results"
    run_name: str | None = None


@dataclass
class PerfSettings:
    """``conf/perf.yaml``."""

    targets: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=lambda: [512], metadata=within(ge=1))
    batches: list[int] = field(default_factory=lambda: [1], metadata=within(ge=1))
    dtypes: list[str] = field(default_factory=lambda: ["fp32"])
    compile: list[bool] = field(default_factory=lambda: [False])
    scale: float = bounded(4, gt=0)
    warmup: int = bounded(3, ge=0)
    iters: int = bounded(10, ge=1)
    device: str = "auto"
    sd_source: str = "random-sd2"
    channels_last: bool = False
    cpu_threads: int | None = bounded(None, ge=1)
    prompt_tokens: int = bounded(77, ge=1)
    results_dir: str = "results"
    out: str | None = None
    cpu_preset: Any = None
    method: Any = None


def bench_settings(cfg: Any) -> BenchSettings:
    return typed(BenchSettings, cfg)


def train_settings(cfg: Any) -> TrainSettings:
    return typed(TrainSettings, cfg)


def perf_settings(cfg: Any) -> PerfSettings:
    return typed(PerfSettings, cfg)
