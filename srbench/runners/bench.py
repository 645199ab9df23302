"""``srbench-bench``: run methods on a dataset, score them, write the results store.

    srbench-bench                                   # every method with weights, on `samples` ×4
    srbench-bench method=bicubic dataset=folder dataset.hr_dir=/pngs
    srbench-bench -m method=bicubic,ecdp dataset=set5,set14     # Hydra multirun (+ submitit on Slurm)
    torchrun --nproc_per_node=4 -m srbench.runners.bench method=ecdp dataset=div2k   # shard images by rank

Without ``method=`` (or with ``method=all``) the runner is in *all* mode: every registered
method whose weights are present runs on one dataset and one metric suite, built once, and
the others are listed as skipped with the file they need. The runner finds methods through
the registry only (``srbench.method``). Per image it records every metric of the chosen
profile, the upscale time (:mod:`srbench.timing`), peak memory and the method's NFE; the
records themselves are :mod:`srbench.results.records`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from srbench.config import to_container
from srbench.data.base import SRDataset, SRSample, build_dataset, collate_samples, lr_operator
from srbench.data.io import write_image
from srbench.data.sources import changed, signature
from srbench.devices import resolve_device, resolve_dtype
from srbench.errors import NonFiniteOutput, UserError, exit_on_user_error, is_user_error, one_line, report
from srbench.method import SRMethod, call_upscale, get_method, method_entries
from srbench.paths import CONF_DIR
from srbench.results import leaderboard as lb
from srbench.results.lock import RunLock
from srbench.results.records import (
    RunRecord,
    bench_manifest,
    metric_columns,
    per_image_columns,
    write_failure,
)
from srbench.results.seeds import SEED_INDEX, seed_for
from srbench.results.store import STATUS_NONFINITE, STATUS_OK, STATUS_SKIPPED, PerImageCSV, RunDir, read_json
from srbench.runners import distributed as dist
from srbench.runners.schemas import BenchSettings, bench_settings
from srbench.runners.scoring import score_batch
from srbench.timing import nfe_per_image, timed_call, warm_up
from srbench.weights import MissingWeightsError, resolve_all

#: ``method=all`` is the all mode, not a method
ALL = "all"


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def default_run_name(cfg: Mapping[str, Any], method_cfg: Mapping[str, Any], scale: float, device: torch.device,
                     dtype: torch.dtype, draws: int = 1) -> str:
    """Same settings → same name, so a rerun resumes instead of starting over.

    Leaves out what cannot change the numbers (batch size, workers, logging, image saving).
    ``draws`` (seeds=K of a stochastic method) enters only when > 1, so single-draw runs keep their names.
    """
    key = {"method": method_cfg, "dataset": cfg["dataset"], "metrics": cfg["metrics"], "seed": cfg["seed"],
           "device": device.type, "dtype": str(dtype), "max_images": cfg.get("max_images")}
    if draws > 1:
        key["seeds"] = draws
    colorfix = (cfg.get("postprocess") or {}).get("colorfix", "none")
    if colorfix != "none":  # only then: runs without a colour fix keep the names they always had
        key["postprocess"] = {"colorfix": colorfix}
    return f"x{scale:g}-{cfg['metrics']['profile']}-{config_hash(key)}"


def group_by_shape(samples: Sequence[SRSample]) -> list[list[SRSample]]:
    """Split a loaded batch into runs of equal LR/HR size (methods take one tensor per call)."""
    groups: dict[tuple, list[SRSample]] = {}
    for s in samples:
        key = (tuple(s.lr.shape), None if s.hr is None else tuple(s.hr.shape))
        groups.setdefault(key, []).append(s)
    return list(groups.values())


@dataclass
class _Failed:
    """A sample that could not be loaded (kept so ``on_error=skip`` can record it)."""

    name: str
    error: str
    source: tuple[str, str] = ("", "")


class _SafeDataset(torch.utils.data.Dataset):
    """Wraps a dataset so a bad image (a user error: unreadable file, size mismatch) becomes a
    record the runner can skip, instead of killing the DataLoader worker. Bugs still raise.
    Each item carries the signature of its source files (resume rescores an image that changed)."""

    def __init__(self, dataset: SRDataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> SRSample | _Failed:
        index = self.indices[i]
        try:
            source = signature(self.dataset.source_files(index))
        except OSError:
            source = ("", "")
        try:
            sample = self.dataset[index]
        except Exception as exc:
            if not is_user_error(exc):
                raise
            return _Failed(self.dataset.names[index], one_line(exc), source)
        sample.meta["source"] = source
        return sample


# ----------------------------------------------------------------------------- one run
@dataclass
class RunResult:
    method: str
    dataset: str
    run_dir: Path | None
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def check_weights(method_cls: type[SRMethod], method_cfg: Mapping[str, Any]) -> None:
    """Raise the one-line MissingWeightsError of the first file the method needs and lacks."""
    resolve_all(method_cls, method_cfg)  # {} for weights=random


def run_identity(method_info: Mapping[str, Any], dataset_info: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change between a run and its resumption: the images and the weights."""
    keys = ("name", "scale", "protocol", "lr_generation", "image_list_sha256")
    return {"dataset": {k: dataset_info.get(k) for k in keys},
            "weights": {k: v for k, v in method_info.items() if "sha256" in k or k == "weights"}}


def _check_resumable(run: RunDir, identity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The previous manifest, after checking it was made with the same images and weights."""
    if not run.manifest_path.exists():
        return None
    old = read_json(run.manifest_path)
    before = json.loads(json.dumps(old.get("identity"), default=str))
    now = json.loads(json.dumps(identity, default=str))
    if before is not None and before != now:
        changed_keys = [f"{group}.{k}" for group in now for k in {**before.get(group, {}), **now[group]}
                        if before.get(group, {}).get(k) != now[group].get(k)]
        raise UserError(f"{run.path} holds results made with a different dataset or weights "
                        f"({', '.join(changed_keys)} changed); use a new run_name or delete that run")
    return old


def changed_sources(record: RunRecord, dataset: SRDataset, names: Sequence[str]) -> list[str]:
    """Images scored before whose source files changed since (size/mtime, then content hash)."""
    index = {n: i for i, n in enumerate(dataset.names)}
    out = []
    first = {}  # every draw of an image comes from the same files: its first row is enough
    for (image, _), r in record.rows.items():
        first.setdefault(image, r)
    for name in names:
        row = first.get(name)
        if row is None or not row.get("source_sha256"):
            continue
        if changed(dataset.source_files(index[name]), row.get("source_stat", ""), row["source_sha256"]):
            out.append(name)
    return out


class BenchLoop:
    """Upscale, check and score batches; one instance per run.

    With ``draws`` > 1 (seeds=K) each image is upscaled once per draw k not in ``done`` (the
    (image, seed_index) pairs already stored), with seed :func:`srbench.results.seeds.seed_for`.
    """

    def __init__(self, method: SRMethod, suite: Any, degrade: Any, device: torch.device, settings: BenchSettings,
                 run: RunDir, save_budget: set[str], profile: str, draws: int = 1,
                 done: set[tuple[str, int]] | frozenset = frozenset()):
        self.draws, self.done = draws, done
        self.method, self.suite, self.degrade, self.device = method, suite, degrade, device
        self.seed, self.on_error = settings.seed, settings.on_error
        self.run, self.save_budget, self.profile = run, save_budget, profile
        self.colorfix, self.save_hr = settings.postprocess.colorfix, settings.save_hr
        fid_collector = getattr(suite, "fid_collector", None)  # dataset-level FID features, stored in the run dir
        self.fid = fid_collector(run.path / "fid_features") if fid_collector else None
        warmup = settings.warmup
        self.warmup_left = (1 if device.type == "cuda" else 0) if warmup == "auto" else int(warmup)

    def batch(self, batch: Sequence[SRSample | _Failed]) -> Iterator[list[dict[str, Any]]]:
        """The rows of a loaded batch, yielded per upscale call (one draw of one size group), so that
        the runner stores each (image, seed) pair as soon as it is scored."""
        skipped = []
        for item in batch:
            if isinstance(item, _Failed):
                if self.on_error != "skip":
                    raise UserError(item.error)
                skipped.extend(self._row(item.name, STATUS_SKIPPED, k, error=item.error, source=item.source)
                               for k in range(self.draws) if (item.name, k) not in self.done)
        if skipped:
            yield skipped
        samples = [s for s in batch if isinstance(s, SRSample)]
        for k in range(self.draws):
            for group in group_by_shape([s for s in samples if (s.name, k) not in self.done]):
                yield self._group_or_skip(group, k)

    def _group_or_skip(self, group: list[SRSample], k: int) -> list[dict[str, Any]]:
        try:
            return self.group(group, k)
        except Exception as exc:
            if self.on_error != "skip" or not is_user_error(exc):
                raise
            if len(group) == 1:
                return [self._row(group[0].name, STATUS_SKIPPED, k, error=one_line(exc),
                                  source=group[0].meta.get("source", ("", "")))]
            # find the culprit(s) one image at a time
            return [r for sample in group for r in self._group_or_skip([sample], k)]

    def _row(self, name: str, status: str, k: int = 0, error: str = "", source: tuple[str, str] = ("", ""),
             **values: Any) -> dict[str, Any]:
        draw = {SEED_INDEX: k} if self.draws > 1 else {}
        return {"image": name, "seed": seed_for(self.seed, name, k), **draw, "status": status, "error": error,
                "profile": self.profile, "source_stat": source[0], "source_sha256": source[1], **values}

    def _upscale(self, lr: torch.Tensor, scale: float, seeds: list[int],
                 names: list[str]) -> tuple[torch.Tensor, float, float]:
        """SR, ms per image (CUDA-synchronised) and the peak memory of this call."""
        def call() -> torch.Tensor:
            return call_upscale(self.method, lr, scale, seeds=seeds, names=names)

        if self.warmup_left > 0:  # lazy init, cuDNN autotuning, torch.compile: not timed
            warm_up(call, self.device, self.warmup_left)
            self.warmup_left = 0
        timed = timed_call(call, self.device)
        return timed.result, timed.ms / lr.shape[0], timed.peak_mem_mb

    def _color_fix(self, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """``postprocess.colorfix``: srbench.nn.colorfix towards the bicubic-upsampled LR, as InvSR and OSEDiff
        correct their decoded output; before the clamp (the authors clamp when saving)."""
        if self.colorfix == "none":
            return sr
        from srbench.metrics.colour_shift import upsample_lr
        from srbench.nn.colorfix import color_fix

        return color_fix(sr, upsample_lr(lr, tuple(sr.shape[-2:])), self.colorfix)

    def group(self, group: list[SRSample], k: int = 0) -> list[dict[str, Any]]:
        """Upscale and score ``group`` (images of one size) with draw ``k``'s seeds."""
        names = [s.name for s in group]
        scale = group[0].scale
        lr = torch.stack([s.lr for s in group]).to(self.device, non_blocking=True)
        hr = None if group[0].hr is None else torch.stack([s.hr for s in group]).to(self.device, non_blocking=True)
        sr, ms, peak = self._upscale(lr, scale, [seed_for(self.seed, n, k) for n in names], names)
        nfe = nfe_per_image(self.method, len(group))
        notes = self.method.per_image_notes() or [None] * len(group)

        expected = (len(group), 3, round(lr.shape[-2] * scale), round(lr.shape[-1] * scale))
        if tuple(sr.shape) != expected:
            raise UserError(f"method {self.method.name!r} returned shape {tuple(sr.shape)} for "
                            f"{names[0]}…, expected {expected}")
        finite = torch.isfinite(sr.float()).flatten(1).all(dim=1).cpu().tolist()
        if not all(finite) and self.on_error != "skip":
            bad = [n for n, ok in zip(names, finite) if not ok]
            raise NonFiniteOutput(f"method {self.method.name!r} produced NaN/Inf for image(s) {', '.join(bad)} "
                                  "(on_error=skip records them as NaN and marks the set score invalid)")
        sr = self._color_fix(sr.float(), lr).clamp(0, 1)  # NaN stays NaN: the metrics give NaN for that image only
        try:
            values = score_batch(self.suite, sr, hr, lr, scale=scale, degrade=self.degrade,
                                 gray=[bool(s.meta.get("was_gray", False)) for s in group], names=names)
        except UserError as exc:  # name the image(s): the metrics do not know files
            where = names[0] if len(names) == 1 else f"one of {', '.join(names)}"
            raise type(exc)(f"{where} (×{scale:g}): {one_line(exc)}") from None
        if self.fid is not None and hr is not None and k == 0:  # FID / patch-FID: draw 0 (seeds=K: one SR set)
            ok = [i for i, f in enumerate(finite) if f]
            self.fid.add([names[i] for i in ok], sr[ok], hr[ok])
        rows = []
        for i, (sample, name) in enumerate(zip(group, names)):
            if name in self.save_budget and finite[i] and k == 0:  # samples/ keeps draw 0 (the visual page)
                write_image(self.run.samples_dir / f"{name}.png", sr[i].cpu())
                if self.save_hr and hr is not None:  # the HR the metrics saw (after mod-crop)
                    write_image(self.run.samples_dir / f"{name}.hr.png", hr[i].cpu())
            status, error = (STATUS_OK, "") if finite[i] else (STATUS_NONFINITE, "NaN/Inf in the method's output")
            note = json.dumps(notes[i], sort_keys=True, default=str) if notes[i] else ""
            rows.append(self._row(name, status, k, error, sample.meta.get("source", ("", "")), time_ms=ms,
                                  peak_mem_mb=peak, batch=len(group), nfe=nfe[i], notes=note,
                                  **{col: vals[i] for col, vals in values.items()}))
        return rows


def build_suite(cfg: Mapping[str, Any], device: torch.device, scale: float) -> Any:
    """The metric suite of ``cfg['metrics']`` (LPIPS files missing → listed in ``suite.missing``)."""
    from srbench.metrics import build_metrics

    m = cfg["metrics"]
    return build_metrics(m["profile"], lpips_nets=tuple(m.get("lpips_nets", ("alex",))),
                         lpips_weights=m.get("lpips_weights"), device=device, scale=scale,
                         extra=tuple(m.get("extra") or ()),  # pyiqa metrics (srbench.metrics.iqa)
                         colour=bool(m.get("colour_shift", False)),
                         fid=bool(m.get("fid", False)), patch_fid=m.get("patch_fid"),  # srbench.metrics.fid
                         fid_seed=int(m.get("patch_fid_seed", 0)))


def report_missing_metrics(suite: Any) -> None:
    for column, reason in suite.missing.items():
        print(f"[srbench] {column} not computed: {reason}", file=sys.stderr)


def run_bench(cfg: Mapping[str, Any], method_cfg: Mapping[str, Any] | None = None, *,
              dataset: SRDataset | None = None, suite: Any = None) -> RunResult:
    """Run one method on one dataset (``cfg``: the resolved bench config as a dict).

    ``dataset`` / ``suite`` are built here unless given (all mode builds them once for every method).
    """
    cfg = to_container(cfg)
    settings = bench_settings(cfg)
    method_cfg = dict(to_container(method_cfg) if method_cfg is not None else cfg["method"])
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(method_cfg.get("dtype"), device)
    _apply_pixel_limit(settings)

    dataset = dataset if dataset is not None else build_dataset(cfg["dataset"])
    method_cls = get_method(method_cfg["name"])
    method_cls.check_scale(dataset.scale)
    check_weights(method_cls, method_cfg)
    if suite is None:
        suite = build_suite(cfg, device, dataset.scale)
        report_missing_metrics(suite)
    method = method_cls.from_config(method_cfg, device, dtype)
    draws = draws_for(method, settings.seeds)
    run_name = settings.run_name or default_run_name(cfg, method_cfg, dataset.scale, device, dtype, draws)
    run = BenchRun(cfg, settings, method_cfg, method, dataset, suite, device, dtype,
                   RunDir(settings.results_dir, dataset.name, method.label, run_name), run_name, draws)
    # one writer per run directory (rank 0 writes it); a second one refuses in one line
    with RunLock(run.dir.path) if dist.rank() == 0 else contextlib.nullcontext():
        return run.execute()


def draws_for(method: SRMethod, seeds: int) -> int:
    """How many draws per image ``seeds`` means for ``method``: one for a deterministic method (said once)."""
    if seeds > 1 and method.deterministic:
        print(f"[srbench] {method.label} is deterministic: seeds={seeds} runs it once "
              "(summary.json says so under 'seeds')", file=sys.stderr)
        return 1
    return seeds


@dataclass
class BenchRun:
    """One method on one dataset, once everything is built: resume, score what is left, summarise."""

    cfg: Mapping[str, Any]
    settings: BenchSettings
    method_cfg: Mapping[str, Any]
    method: SRMethod
    dataset: SRDataset
    suite: Any
    device: torch.device
    dtype: torch.dtype
    dir: RunDir
    run_name: str
    draws: int = 1  # per image (seeds=K of a stochastic method)

    def __post_init__(self) -> None:
        ds, settings = self.dataset, self.settings
        self.degrade = lr_operator(ds)
        self.columns = metric_columns(self.suite, has_hr=ds.has_hr, lr_psnr=self.degrade is not None)
        self.row_columns = per_image_columns(self.columns, seeds=self.draws > 1)
        self.seeds = {"requested": settings.seeds, "draws": self.draws, "deterministic": self.method.deterministic}
        self.names = ds.names[: settings.max_images] if settings.max_images else ds.names
        self.identity = run_identity(self.method.describe(), ds.describe())
        info = ds.describe()
        self.header = {
            "method": self.method.label, "dataset": ds.name, "scale": ds.scale, "profile": self.cfg["metrics"]["profile"],
            "metric_ids": {c: self.suite.ids_for(ds.scale).get(c, c) for c in self.columns},
            "missing_metrics": self.suite.missing,
            "hr_preparation": {k: info.get(k) for k in ("protocol", "hr_rule", "hr_fit", "hr_crop") if k in info}}

    def open_record(self, started: float) -> tuple[RunRecord, dict[str, Any]]:
        """Rank 0: the stored rows (checked, shards merged, changed images dropped) and the manifest."""
        previous = _check_resumable(self.dir, self.identity)
        record = RunRecord(self.dir, self.row_columns, self.columns, header=self.header, names=self.names,
                           started=started, seeds=self.seeds)
        if record.rows and not self.settings.resume:
            raise UserError(f"{self.dir.path} already holds results; use resume=true or a new run_name")
        record.remember(dist.merge_shards(self.dir, record.table, self.names))  # rows left by a killed multi-GPU run
        stale = changed_sources(record, self.dataset, self.names)
        if stale:
            print(f"[srbench] {len(stale)} image(s) changed since they were scored, rescoring them: "
                  f"{', '.join(stale[:10])}{' …' if len(stale) > 10 else ''}", file=sys.stderr)
            record.drop(stale)
        manifest = bench_manifest(
            run_name=self.run_name, config={**self.cfg, "method": self.method_cfg}, method=self.method.describe(),
            dataset=self.dataset.describe(),
            metrics={**self.suite.describe(), "ids": self.suite.ids_for(self.dataset.scale)}, identity=self.identity,
            device=self.device, dtype=self.dtype, world=dist.world_size(), previous=previous)
        self.dir.write_manifest(manifest)
        record.write_summary("running")
        return record, manifest

    def execute(self) -> RunResult:
        rank, world = dist.rank(), dist.world_size()
        record, manifest = self.open_record(time.time()) if rank == 0 else (None, None)
        dist.barrier()  # rank 0 has merged leftover shards: every rank now sees the same done set
        shard = None if world == 1 else dist.shard_table(self.dir, self.row_columns, rank)
        done = record.done() if record is not None else PerImageCSV(self.dir.per_image_path, self.row_columns).done()
        todo = [i for i, n in enumerate(self.names) if any((n, k) not in done for k in range(self.draws))][rank::world]
        loop = BenchLoop(self.method, self.suite, self.degrade, self.device, self.settings, self.dir,
                         _save_budget(self.settings.save_images, self.names), self.header["profile"], self.draws, done)
        loader = torch.utils.data.DataLoader(
            _SafeDataset(self.dataset, todo), batch_size=self.settings.batch_size,
            num_workers=self.settings.num_workers, collate_fn=collate_samples, pin_memory=self.device.type == "cuda",
            persistent_workers=False)
        try:
            for batch in _progress(loader, desc=f"{self.method.label} on {self.dataset.name}", disable=rank != 0):
                for rows in loop.batch(batch):
                    if shard is not None:
                        shard.append(rows)
                    else:
                        record.add(rows)
        except BaseException as exc:
            if record is not None:
                record.write_summary("partial" if isinstance(exc, KeyboardInterrupt) else "failed",
                                     error=one_line(exc))
                exc.srbench_run_dir = self.dir.path  # recorded here: a sweep must not add a failed-<hash> twin
            raise
        dist.barrier()
        if record is None:
            return RunResult(self.method.label, self.dataset.name, self.dir.path, "shard-done")
        record.remember(dist.merge_shards(self.dir, record.table, self.names))
        manifest["dataset"] = self.dataset.describe()  # now with the complete LR-cache hash
        self.dir.write_manifest(manifest)
        if loop.fid is not None:  # dataset-level: over every scored image, resumed and sharded ones included
            scored = {image for image, k in record.rows if k == 0}
            record.dataset_metrics = loop.fid.result([n for n in self.names if n in scored])
            for note in (m.get("note") for m in record.dataset_metrics.values()):
                if note:
                    print(f"[srbench] {note}", file=sys.stderr)
        summary = record.write_summary()
        _log_run(self.cfg, self.dir, self.run_name, self.method.label, self.dataset.name, record.ordered_rows(),
                 summary, manifest["config"])
        return RunResult(self.method.label, self.dataset.name, self.dir.path, summary["status"], summary)


def _apply_pixel_limit(settings: BenchSettings) -> None:
    if settings.max_image_pixels is not None:
        from srbench.data.io import set_max_image_pixels

        set_max_image_pixels(settings.max_image_pixels)


def _log_run(cfg: Mapping[str, Any], run: RunDir, run_name: str, method: str, dataset: str,
             rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Mirror a finished run to the configured logger (W&B: summary, per-image table with SR thumbnails)."""
    from srbench.tracking import build_logger

    logger_cfg = cfg.get("logger") or {"name": "none"}
    if logger_cfg.get("name", "none") == "none":
        return
    logger = build_logger(logger_cfg, run_dir=run.path, run_name=f"{method}-{run_name}", group=dataset,
                          config=config)
    srs = [p for p in sorted(run.samples_dir.glob("*.png")) if not p.stem.endswith(".hr")]  # save_hr keeps HR too
    images = {p.stem: str(p) for p in srs[: int(logger_cfg.get("log_images", 8))]}
    logger.log_table("per_image", rows, images=images)
    logger.log_summary({f"{col}/{k}": v for col, stats in summary["metrics"].items() for k, v in stats.items()
                        if k in ("mean", "ci95_low", "ci95_high", "n")} | {"status": summary["status"]})
    logger.finish()


def _save_budget(spec: Any, names: Sequence[str]) -> set[str]:
    return set(names) if spec == "all" else set(names[: int(spec or 0)])


def _progress(it: Any, desc: str, disable: bool) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return it
    return tqdm(it, desc=desc, unit="batch", disable=disable or not sys.stderr.isatty(), leave=False)


# ----------------------------------------------------------------------------- all mode
def available_for(name: str, method_cfg: Mapping[str, Any], scale: float) -> str | None:
    """None if ``name`` can run here; otherwise the one-line reason it is skipped."""
    try:
        cls = get_method(str(method_cfg.get("name", name)))  # a preset (realesrgan_x4plus) runs its method
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal for the others
        return f"cannot be loaded: {one_line(exc)}"
    if not cls.supports_scale(scale):
        return f"does not support ×{scale:g} (supports {sorted(cls.scales or [])})"
    try:
        check_weights(cls, method_cfg)
    except MissingWeightsError as exc:
        return str(exc)
    return None


def all_method_configs(overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every registered method's config (``conf/method/<name>.yaml`` + the ``method.*`` overrides), composed once."""
    from srbench.runners.compose import group_options, method_config

    configs = {name: method_config(name, overrides) for name in method_entries()}
    for preset in sorted(group_options("method") - set(configs)):  # baseline presets (in_all: true) whose files are here
        preset_cfg = method_config(preset, overrides)
        if preset_cfg.get("in_all") and _weights_present(preset_cfg):
            configs[preset] = preset_cfg
    return configs


def _weights_present(method_cfg: Mapping[str, Any]) -> bool:
    try:
        check_weights(get_method(method_cfg["name"]), method_cfg)
    except Exception:  # noqa: BLE001 - absent file or broken plugin: the preset is simply not part of all mode
        return False
    return True


def run_all(cfg: Mapping[str, Any], overrides: Sequence[str] = ()) -> list[RunResult]:
    """All mode: one dataset and one metric suite for every available method."""
    settings = bench_settings(cfg)
    _apply_pixel_limit(settings)
    dataset = build_dataset(cfg["dataset"])
    suite = None
    results: list[RunResult] = []
    for name, method_cfg in all_method_configs(overrides).items():
        reason = available_for(name, method_cfg, dataset.scale)
        if reason:
            print(f"[srbench] skipped {name}: {reason}", file=sys.stderr)
            results.append(RunResult(name, dataset.name, None, "skipped", message=reason))
            continue
        if suite is None:
            suite = build_suite(cfg, resolve_device(settings.device), dataset.scale)
            report_missing_metrics(suite)
        try:
            results.append(run_bench(cfg, method_cfg, dataset=dataset, suite=suite))
        except Exception as exc:
            if not is_user_error(exc):
                raise
            print(f"[srbench] {name} failed: {one_line(exc)}", file=sys.stderr)
            results.append(RunResult(name, dataset.name, None, "failed", message=one_line(exc)))
    return results


# ----------------------------------------------------------------------------- entry points
def is_all_mode(cfg: Mapping[str, Any]) -> bool:
    method = cfg.get("method")
    return method is None or method.get("name") == ALL


def record_failure(cfg: Mapping[str, Any], overrides: Sequence[str], exc: BaseException) -> RunResult:
    """Write ``results/<dataset>/<method>/failed-<hash>/`` (summary status=failed + manifest) for a sweep job
    that failed before it had a run directory; one that failed inside its run is already recorded there."""
    method = ALL if is_all_mode(cfg) else cfg["method"]["name"]
    dataset = cfg["dataset"]["name"]
    recorded = getattr(exc, "srbench_run_dir", None)
    if recorded is not None:
        return RunResult(method, dataset, recorded, "failed", message=one_line(exc))
    run = RunDir(cfg.get("results_dir", "results"), dataset, method, f"failed-{config_hash(list(overrides))}")
    write_failure(run, method=method, dataset=dataset, scale=cfg["dataset"].get("scale"),
                  profile=cfg["metrics"]["profile"], overrides=overrides, config=cfg, error=one_line(exc),
                  error_type=type(exc).__name__)
    return RunResult(method, dataset, run.path, "failed", message=one_line(exc))


def print_leaderboard(dataset: str, profile: str, results: Sequence[RunResult]) -> None:
    ran = [r for r in results if r.summary]
    if ran:
        print(f"\n{dataset} ×{ran[0].summary.get('scale', '?')}  (metrics profile: {profile})")
        print(lb.console(lb.frame([r.summary for r in ran])))
        for r in ran:
            print(f"  {r.method}: {r.run_dir}")
    for r in results:
        if r.status == "skipped":
            print(f"  skipped {r.method}: {r.message}")


def execute(cfg: Any, overrides: Sequence[str] = (), multirun: bool = False) -> list[RunResult]:
    """Run what the config asks for and print the leaderboard. User errors are one line."""
    c = to_container(cfg)
    try:
        bench_settings(c)  # every impossible setting is refused before any work
        results = run_all(c, overrides) if is_all_mode(c) else [run_bench(c)]
    except Exception as exc:
        if multirun:  # the sweep goes on; the failure is recorded in the results store
            if not is_user_error(exc):
                traceback.print_exc()
            print(f"srbench: job failed: {one_line(exc)}", file=sys.stderr)
            return [record_failure(c, overrides, exc)]
        if not is_user_error(exc):
            raise
        report("srbench", exc)
        raise SystemExit(2) from None
    if dist.rank() == 0 and c.get("print_table", True):
        print_leaderboard(c["dataset"]["name"], c["metrics"]["profile"], results)
    return results


def _hydra_app(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    execute(cfg, overrides=list(hc.overrides.task), multirun=hc.mode == RunMode.MULTIRUN)


def without_all(argv: Sequence[str]) -> list[str]:
    """``method=all`` selects the all mode, which is the absence of a method: drop it for Hydra."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key == "method" and ALL in [v.strip() for v in value.split(",")]:
            rest = [v for v in value.split(",") if v.strip() != ALL]
            if rest:
                with exit_on_user_error("srbench"):
                    raise UserError(f"method=all is a run mode, not a method: sweep over named methods "
                                    f"(method={','.join(rest)}) or run all mode alone")
            continue
        out.append(arg)
    return out


def main() -> None:
    """Console script ``srbench-bench`` (a Hydra app over ``conf/bench.yaml``)."""
    import hydra

    from srbench.runners.compose import prepare_hydra

    sys.argv = [sys.argv[0], *without_all(sys.argv[1:])]
    prepare_hydra(sys.argv[1:], groups={"method": method_entries, "dataset": _dataset_names})
    dist.init_from_env()
    try:
        hydra.main(config_path=str(CONF_DIR), config_name="bench", version_base="1.3")(_hydra_app)()
    finally:
        dist.shutdown()


def _dataset_names() -> dict[str, str]:
    from srbench.data.base import dataset_registry

    return dataset_registry()


if __name__ == "__main__":
    main()
