"""``srbench-bench``: run methods on a dataset, score them, write the results store.

    srbench-bench                                   # every method with weights, on `samples` ×4
    srbench-bench method=bicubic dataset=folder dataset.hr_dir=/pngs
    srbench-bench -m method=bicubic,ecdp dataset=set5,set14     # Hydra multirun (+ submitit on Slurm)
    torchrun --nproc_per_node=4 -m srbench.runners.bench method=ecdp dataset=div2k   # shard images by rank

The runner finds methods through the registry only (``srbench.method``). Per image it records
every metric of the chosen profile, the upscale time (CUDA-synchronised) and peak memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from srbench.config import to_container
from srbench.data.base import SRDataset, SRSample, build_dataset, collate_samples, image_seed, lr_operator
from srbench.data.io import write_image
from srbench.devices import resolve_device, resolve_dtype
from srbench.errors import NonFiniteOutput, UserError, is_user_error, one_line
from srbench.method import SRMethod, get_method, method_entries
from srbench.paths import CONF_DIR
from srbench.results.provenance import device_info, git_state, library_versions
from srbench.results.store import STATUS_NONFINITE, STATUS_OK, STATUS_SKIPPED, PerImageCSV, RunDir, read_json
from srbench.runners import distributed as dist
from srbench.runners.scoring import per_image_columns, score_batch, summarize_rows
from srbench.timing import nfe_per_image, timed_call, warm_up
from srbench.weights import MissingWeightsError, resolve_all


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def default_run_name(cfg: Mapping[str, Any], method_cfg: Mapping[str, Any], scale: float, device: torch.device,
                     dtype: torch.dtype) -> str:
    """Same settings → same name, so a rerun resumes instead of starting over.

    Leaves out what cannot change the numbers (batch size, workers, logging, image saving).
    """
    key = {"method": method_cfg, "dataset": cfg["dataset"], "metrics": cfg["metrics"], "seed": cfg["seed"],
           "device": device.type, "dtype": str(dtype), "max_images": cfg.get("max_images")}
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


class _SafeDataset(torch.utils.data.Dataset):
    """Wraps a dataset so a bad image (a user error: unreadable file, size mismatch) becomes a
    record the runner can skip, instead of killing the DataLoader worker. Bugs still raise."""

    def __init__(self, dataset: SRDataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> SRSample | _Failed:
        index = self.indices[i]
        try:
            return self.dataset[index]
        except Exception as exc:
            if not is_user_error(exc):
                raise
            return _Failed(self.dataset.names[index], one_line(exc))


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
        changed = [f"{group}.{k}" for group in now for k in {**before.get(group, {}), **now[group]}
                   if before.get(group, {}).get(k) != now[group].get(k)]
        raise UserError(f"{run.path} holds results made with a different dataset or weights "
                        f"({', '.join(changed)} changed); use a new run_name or delete that run")
    return old


class BenchLoop:
    """Upscale, check and score batches; one instance per run."""

    def __init__(self, method: SRMethod, suite: Any, degrade: Any, device: torch.device, cfg: Mapping[str, Any],
                 run: RunDir, save_budget: set[str], profile: str):
        self.method, self.suite, self.degrade, self.device = method, suite, degrade, device
        self.seed, self.on_error = int(cfg["seed"]), cfg.get("on_error", "raise")
        self.run, self.save_budget, self.profile = run, save_budget, profile
        warmup = cfg.get("warmup", "auto")
        self.warmup_left = (1 if device.type == "cuda" else 0) if warmup in (None, "auto") else int(warmup)

    def batch(self, batch: Sequence[SRSample | _Failed]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for item in batch:
            if isinstance(item, _Failed):
                if self.on_error != "skip":
                    raise UserError(item.error)
                rows.append(self._row(item.name, STATUS_SKIPPED, error=item.error))
        for group in group_by_shape([s for s in batch if isinstance(s, SRSample)]):
            try:
                rows.extend(self.group(group))
            except Exception as exc:
                if self.on_error != "skip" or not is_user_error(exc):
                    raise
                if len(group) == 1:
                    rows.append(self._row(group[0].name, STATUS_SKIPPED, error=one_line(exc)))
                else:  # find the culprit(s) one image at a time
                    rows.extend(r for sample in group for r in self.batch([sample]))
        return rows

    def _row(self, name: str, status: str, error: str = "", **values: Any) -> dict[str, Any]:
        return {"image": name, "seed": image_seed(self.seed, name), "status": status, "error": error,
                "profile": self.profile, **values}

    def _upscale(self, lr: torch.Tensor, scale: float, seeds: list[int]) -> tuple[torch.Tensor, float, float]:
        """SR, ms per image (CUDA-synchronised) and the peak memory of this call."""
        call = lambda: self.method.upscale(lr, scale, seeds=seeds)
        if self.warmup_left > 0:  # lazy init, cuDNN autotuning, torch.compile: not timed
            warm_up(call, self.device, self.warmup_left)
            self.warmup_left = 0
        timed = timed_call(call, self.device)
        return timed.result, timed.ms / lr.shape[0], timed.peak_mem_mb

    def group(self, group: list[SRSample]) -> list[dict[str, Any]]:
        names = [s.name for s in group]
        scale = group[0].scale
        lr = torch.stack([s.lr for s in group]).to(self.device, non_blocking=True)
        hr = None if group[0].hr is None else torch.stack([s.hr for s in group]).to(self.device, non_blocking=True)
        sr, ms, peak = self._upscale(lr, scale, [image_seed(self.seed, n) for n in names])
        nfe = nfe_per_image(self.method, len(group))

        expected = (len(group), 3, round(lr.shape[-2] * scale), round(lr.shape[-1] * scale))
        if tuple(sr.shape) != expected:
            raise UserError(f"method {self.method.name!r} returned shape {tuple(sr.shape)} for "
                            f"{names[0]}…, expected {expected}")
        finite = torch.isfinite(sr.float()).flatten(1).all(dim=1).cpu().tolist()
        if not all(finite) and self.on_error != "skip":
            bad = [n for n, ok in zip(names, finite) if not ok]
            raise NonFiniteOutput(f"method {self.method.name!r} produced NaN/Inf for image(s) {', '.join(bad)} "
                                  "(on_error=skip records them as NaN and marks the set score invalid)")
        sr = sr.float().clamp(0, 1)  # NaN stays NaN: the metrics give NaN for that image only
        values = score_batch(self.suite, sr, hr, lr, scale=scale, degrade=self.degrade,
                             gray=[bool(s.meta.get("was_gray", False)) for s in group], names=names)
        rows = []
        for i, name in enumerate(names):
            if name in self.save_budget and finite[i]:
                write_image(self.run.samples_dir / f"{name}.png", sr[i].cpu())
            status, error = (STATUS_OK, "") if finite[i] else (STATUS_NONFINITE, "NaN/Inf in the method's output")
            rows.append(self._row(name, status, error, time_ms=ms, peak_mem_mb=peak, batch=len(group), nfe=nfe[i],
                                  **{col: vals[i] for col, vals in values.items()}))
        return rows


def run_bench(cfg: Mapping[str, Any], method_cfg: Mapping[str, Any] | None = None) -> RunResult:
    """Run one method on one dataset (``cfg`` is the resolved bench config as a dict)."""
    cfg = to_container(cfg)
    method_cfg = dict(to_container(method_cfg) if method_cfg is not None else cfg["method"])
    torch.manual_seed(int(cfg["seed"]))
    device = resolve_device(cfg.get("device", "auto"))
    dtype = resolve_dtype(method_cfg.get("dtype"), device)

    dataset = build_dataset(cfg["dataset"])
    method_cls = get_method(method_cfg["name"])
    method_cls.check_scale(dataset.scale)
    check_weights(method_cls, method_cfg)

    from srbench.metrics import build_metrics
    from srbench.metrics.stats import summarize

    metrics_cfg = cfg["metrics"]
    profile = metrics_cfg["profile"]
    suite = build_metrics(profile, lpips_nets=tuple(metrics_cfg.get("lpips_nets", ("alex",))),
                          lpips_weights=metrics_cfg.get("lpips_weights"), device=device, scale=dataset.scale)
    degrade = lr_operator(dataset)
    columns = [c for c in suite.columns if c not in suite.missing and (c != "lr_psnr" or degrade is not None)]
    if not dataset.has_hr:
        columns = [c for c in columns if c in getattr(suite, "no_reference_columns", ("lr_psnr",))]
    names = dataset.names[: cfg["max_images"]] if cfg.get("max_images") else dataset.names

    run_name = cfg.get("run_name") or default_run_name(cfg, method_cfg, dataset.scale, device, dtype)
    run = RunDir(cfg.get("results_dir", "results"), dataset.name, method_cls.name, run_name)
    rank, world = dist.rank(), dist.world_size()
    row_columns = per_image_columns(columns)
    method = method_cls.from_config(method_cfg, device, dtype)
    identity = run_identity(method.describe(), dataset.describe())
    started = time.time()
    if rank == 0:
        previous = _check_resumable(run, identity)
        table = run.per_image(row_columns)  # rank 0 owns per_image.csv
        if table.rows() and not cfg.get("resume", True):
            raise UserError(f"{run.path} already holds results; use resume=true or a new run_name")
        table.keep(lambda r: r["status"] == STATUS_OK)  # skipped / NaN images are tried again
        dist.merge_shards(run, table, names)  # rows left by a killed multi-GPU run
        manifest = _manifest(run_name, cfg, method_cfg, method, dataset, suite, device, dtype, world, identity,
                             previous)
        run.write_manifest(manifest)
        _write_summary(run, table, columns, summarize, status="running", names=names, started=started,
                       suite=suite, method=method_cls.name, dataset=dataset, profile=profile)
        for column, reason in suite.missing.items():
            print(f"[srbench] {column} not computed: {reason}", file=sys.stderr)
    else:
        table = None
    dist.barrier()  # rank 0 has merged leftover shards: every rank now sees the same done set
    shard_table = table if world == 1 else dist.shard_table(run, row_columns, rank)
    done = PerImageCSV(run.per_image_path, row_columns).done()
    todo = [i for i, n in enumerate(names) if n not in done][rank::world]

    loop = BenchLoop(method, suite, degrade, device, cfg, run, _save_budget(cfg.get("save_images", 4), names),
                     profile)
    loader = torch.utils.data.DataLoader(
        _SafeDataset(dataset, todo), batch_size=max(1, int(cfg.get("batch_size", 1))),
        num_workers=int(cfg.get("num_workers", 0)), collate_fn=collate_samples,
        pin_memory=device.type == "cuda", persistent_workers=False)
    try:
        for batch in _progress(loader, desc=f"{method_cls.name} on {dataset.name}", disable=rank != 0):
            shard_table.append(loop.batch(batch))
    except BaseException as exc:
        if rank == 0:
            status = "partial" if isinstance(exc, KeyboardInterrupt) else "failed"
            _write_summary(run, table, columns, summarize, status=status, names=names, started=started,
                           suite=suite, method=method_cls.name, dataset=dataset, profile=profile,
                           error=one_line(exc))
        raise
    dist.barrier()
    if rank != 0:
        return RunResult(method_cls.name, dataset.name, run.path, "shard-done")
    dist.merge_shards(run, table, names)
    manifest["dataset"] = dataset.describe()  # now with the complete LR-cache hash
    run.write_manifest(manifest)
    summary = _write_summary(run, table, columns, summarize, status=None, names=names, started=started,
                             suite=suite, method=method_cls.name, dataset=dataset, profile=profile,
                             method_describe=method.describe())
    _log_run(cfg, run, run_name, method_cls.name, dataset.name, table.rows(), summary, manifest["config"])
    return RunResult(method_cls.name, dataset.name, run.path, summary["status"], summary)


def _log_run(cfg: Mapping[str, Any], run: RunDir, run_name: str, method: str, dataset: str,
             rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Mirror a finished run to the configured logger (W&B: summary, per-image table with SR thumbnails)."""
    from srbench.tracking import build_logger

    logger_cfg = cfg.get("logger") or {"name": "none"}
    if logger_cfg.get("name", "none") == "none":
        return
    logger = build_logger(logger_cfg, run_dir=run.path, run_name=f"{method}-{run_name}", group=dataset,
                          config=config)
    images = {p.stem: str(p) for p in sorted(run.samples_dir.glob("*.png"))[: int(logger_cfg.get("log_images", 8))]}
    logger.log_table("per_image", rows, images=images)
    logger.log_summary({f"{col}/{k}": v for col, stats in summary["metrics"].items() for k, v in stats.items()
                        if k in ("mean", "ci95_low", "ci95_high", "n")} | {"status": summary["status"]})
    logger.finish()


def _manifest(run_name: str, cfg: Mapping[str, Any], method_cfg: Mapping[str, Any], method: SRMethod,
              dataset: SRDataset, suite: Any, device: torch.device, dtype: torch.dtype, world: int,
              identity: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    now = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv, "git": git_state(),
           "device": device_info(device), "world_size": world}
    if previous is not None:  # a resumed run keeps where its first rows came from
        return {**previous, "resumes": [*previous.get("resumes", []), now]}
    return {
        "run_name": run_name, "created": now["time"], "command": now["command"], "git": now["git"],
        "identity": identity, "config": {**cfg, "method": method_cfg}, "method": method.describe(),
        "dataset": dataset.describe(), "metrics": {**suite.describe(), "ids": suite.ids_for(dataset.scale)},
        "libraries": library_versions(), "device": now["device"], "dtype": str(dtype), "world_size": world,
    }


def _save_budget(spec: Any, names: Sequence[str]) -> set[str]:
    if spec in ("all", "ALL"):
        return set(names)
    n = int(spec or 0)
    return set(names[:n])


def _progress(it: Any, desc: str, disable: bool) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return it
    return tqdm(it, desc=desc, unit="batch", disable=disable or not sys.stderr.isatty(), leave=False)


def _write_summary(run: RunDir, table: Any, columns: Sequence[str], summarize: Any, *, status: str | None,
                   names: Sequence[str], started: float, suite: Any, method: str, dataset: SRDataset, profile: str,
                   error: str | None = None, method_describe: Mapping[str, Any] | None = None) -> dict[str, Any]:
    wanted = set(names)
    rows = [r for r in (table.rows() if table is not None else []) if r["image"] in wanted]
    body = summarize_rows(rows, columns, summarize)
    covered = body["n_images"] + body["n_skipped"] + body["n_nonfinite"]
    if status is None:
        status = "complete" if covered >= len(names) else "partial"
    info = dataset.describe()
    summary = {
        "method": method, "dataset": dataset.name, "scale": dataset.scale, "profile": profile, "status": status,
        "n_total": len(names), **body, "metric_ids": {c: suite.ids_for(dataset.scale).get(c, c) for c in columns},
        "missing_metrics": suite.missing, "wall_time_s": time.time() - started,
        "hr_preparation": {k: info.get(k) for k in ("protocol", "hr_rule", "hr_fit", "hr_crop") if k in info},
    }
    if method_describe is not None:
        nfe = body["timing"].get("nfe", {}).get("mean")
        summary["nfe"] = nfe
    if error:
        summary["error"] = error
    run.write_summary(summary)
    return summary


# ----------------------------------------------------------------------------- all methods
def available_for(name: str, cfg: Mapping[str, Any], method_cfg: Mapping[str, Any], scale: float) -> str | None:
    """None if ``name`` can run here; otherwise the one-line reason it is skipped."""
    try:
        cls = get_method(name)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal for the others
        return f"cannot be loaded: {one_line(exc)}"
    if not cls.supports_scale(scale):
        return f"does not support ×{scale:g} (supports {sorted(cls.scales or [])})"
    try:
        check_weights(cls, method_cfg)
    except MissingWeightsError as exc:
        return str(exc)
    return None


def leaderboard(results: Sequence[RunResult]) -> str:
    import pandas as pd

    records = []
    for r in results:
        m = r.summary.get("metrics", {})
        rec = {"method": r.method, "status": r.status, "n": r.summary.get("n_images")}
        for col, label in (("psnr", "PSNR"), ("ssim", "SSIM"), ("lpips", "LPIPS"), ("lr_psnr", "LR-PSNR")):
            rec[label] = m.get(col, {}).get("mean", math.nan) if col in m else math.nan
        rec["ms/img"] = r.summary.get("timing", {}).get("time_ms", {}).get("mean", math.nan)
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    fmt = {"PSNR": "{:.3f}".format, "SSIM": "{:.4f}".format, "LPIPS": "{:.4f}".format, "LR-PSNR": "{:.2f}".format,
           "ms/img": "{:.1f}".format}
    return df.to_string(index=False, formatters=fmt, na_rep="—")


def method_configs_for_all(cfg: Mapping[str, Any], overrides: Sequence[str]) -> Iterator[tuple[str, dict]]:
    """(name, method config) for every registered method, composed from ``conf/method/<name>``."""
    for name in method_entries():
        yield name, _compose_method_cfg(name, overrides)


def _compose_method_cfg(name: str, overrides: Sequence[str]) -> dict:
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    method_overrides = [o for o in overrides if o.lstrip("+~").startswith("method.")]
    if GlobalHydra.instance().is_initialized():
        sub = compose(config_name="bench", overrides=[f"method={name}"] + method_overrides)
        return OmegaConf.to_container(sub.method, resolve=True)
    return {"name": name}


def run_all(cfg: Mapping[str, Any], overrides: Sequence[str] = ()) -> list[RunResult]:
    dataset = build_dataset(cfg["dataset"])
    results: list[RunResult] = []
    for name, method_cfg in method_configs_for_all(cfg, overrides):
        reason = available_for(name, cfg, method_cfg, dataset.scale)
        if reason:
            print(f"[srbench] skipped {name}: {reason}", file=sys.stderr)
            results.append(RunResult(name, dataset.name, None, "skipped", message=reason))
            continue
        try:
            results.append(run_bench(cfg, method_cfg))
        except Exception as exc:
            if not is_user_error(exc):
                raise
            print(f"[srbench] {name} failed: {one_line(exc)}", file=sys.stderr)
            results.append(RunResult(name, dataset.name, None, "failed", message=one_line(exc)))
    return results


# ----------------------------------------------------------------------------- entry points
def record_failure(cfg: Mapping[str, Any], overrides: Sequence[str], exc: BaseException) -> RunResult:
    """Write ``results/<dataset>/<method>/failed-<hash>/`` (summary status=failed + manifest) for a sweep job."""
    method, dataset = cfg["method"]["name"], cfg["dataset"]["name"]
    run = RunDir(cfg.get("results_dir", "results"), dataset, method, f"failed-{config_hash(list(overrides))}")
    run.write_manifest({"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv,
                        "overrides": list(overrides), "git": git_state(), "config": cfg})
    run.write_summary({"method": method, "dataset": dataset, "scale": cfg["dataset"].get("scale"),
                       "profile": cfg["metrics"]["profile"], "status": "failed", "error": one_line(exc),
                       "error_type": type(exc).__name__, "n_images": 0})
    return RunResult(method, dataset, run.path, "failed", message=one_line(exc))


def execute(cfg: Any, overrides: Sequence[str] = (), multirun: bool = False) -> list[RunResult]:
    """Run what the config asks for and print the leaderboard. User errors are one line."""
    c = to_container(cfg)
    try:
        if c["method"]["name"] == "all":
            results = run_all(c, overrides)
        else:
            results = [run_bench(c)]
    except Exception as exc:
        if multirun:  # the sweep goes on; the failure is recorded in the results store
            if not is_user_error(exc):
                traceback.print_exc()
            print(f"srbench: job failed: {one_line(exc)}", file=sys.stderr)
            return [record_failure(c, overrides, exc)]
        if not is_user_error(exc):
            raise
        print(f"srbench: error: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    if dist.rank() == 0 and c.get("print_table", True):
        ran = [r for r in results if r.summary]
        if ran:
            print(f"\n{c['dataset']['name']} ×{ran[0].summary.get('scale', '?')}  "
                  f"(metrics profile: {c['metrics']['profile']})")
            print(leaderboard(ran))
            for r in ran:
                print(f"  {r.method}: {r.run_dir}")
        for r in results:
            if r.status == "skipped":
                print(f"  skipped {r.method}: {r.message}")
    return results


def _hydra_app(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    execute(cfg, overrides=list(hc.overrides.task), multirun=hc.mode == RunMode.MULTIRUN)


def main() -> None:
    """Console script ``srbench-bench`` (a Hydra app over ``conf/bench.yaml``)."""
    import hydra

    from srbench.runners.hydra_setup import prepare_hydra

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
