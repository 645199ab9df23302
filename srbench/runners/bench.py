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
import os
import resource
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from srbench.data.base import SRDataset, SRSample, build_dataset, collate_samples, image_seed, lr_operator
from srbench.method import SRMethod, UnsupportedInput, get_method, method_entries
from srbench.results.provenance import device_info, git_state, library_versions
from srbench.results.store import STATUS_OK, STATUS_SKIPPED, RunDir
from srbench.runners import distributed as dist
from srbench.runners.errors import NonFiniteOutput, UserError, is_user_error, one_line
from srbench.runners.scoring import per_image_columns, score_batch, summarize_rows
from srbench.weights import MissingWeightsError, find

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


# ----------------------------------------------------------------------------- small helpers
def resolve_device(spec: str) -> torch.device:
    if spec in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={spec} requested but CUDA is not available (use device=auto or device=cpu)")
    return device


def resolve_dtype(spec: str | None, device: torch.device) -> torch.dtype:
    if spec in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if spec not in DTYPES:
        raise UserError(f"unknown dtype {spec!r}; use one of fp32, bf16, fp16, auto")
    return DTYPES[spec]


def to_container(cfg: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return cfg


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


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # CPU: peak resident set size of the process (KiB on Linux)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class _Failed:
    """A sample that could not be loaded (kept so ``on_error=skip`` can record it)."""

    name: str
    error: str


class _SafeDataset(torch.utils.data.Dataset):
    """Wraps a dataset so a bad image becomes a record instead of killing the DataLoader worker."""

    def __init__(self, dataset: SRDataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> SRSample | _Failed:
        index = self.indices[i]
        try:
            return self.dataset[index]
        except Exception as exc:  # noqa: BLE001 - reported per image by the runner
            if not is_user_error(exc):
                exc_text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                return _Failed(self.dataset.names[index], f"{self.dataset.names[index]}: {exc_text}")
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
    if method_cfg.get("weights") == "random":
        return
    for wf in method_cls.required_weights(method_cfg):
        explicit = method_cfg.get(wf.extra.get("config_key", "weights")) if wf.extra else method_cfg.get("weights")
        if find(wf, explicit if isinstance(explicit, str) else None) is None:
            from srbench.weights import resolve

            resolve(wf, explicit if isinstance(explicit, str) else None)  # raises with where it looked


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
    suite = build_metrics(metrics_cfg["profile"], lpips_nets=tuple(metrics_cfg.get("lpips_nets", ("alex",))),
                          lpips_weights=metrics_cfg.get("lpips_weights"), device=device, scale=dataset.scale)
    degrade = lr_operator(dataset)
    columns = [c for c in suite.columns if c not in suite.missing and (c != "lr_psnr" or degrade is not None)]
    if not dataset.has_hr:
        columns = [c for c in columns if c in getattr(suite, "no_reference_columns", ("lr_psnr",))]

    run_name = cfg.get("run_name") or default_run_name(cfg, method_cfg, dataset.scale, device, dtype)
    run = RunDir(cfg.get("results_dir", "results"), dataset.name, method_cls.name, run_name)
    rank, world = dist.rank(), dist.world_size()
    row_columns = per_image_columns(columns)
    table = run.per_image(row_columns) if rank == 0 else None  # rank 0 owns per_image.csv
    dist.barrier()
    shard_table = table if world == 1 else dist.shard_table(run, row_columns, rank)
    done = dist.done_images(run, row_columns)
    if done and not cfg.get("resume", True):
        raise UserError(f"{run.path} already holds {len(done)} results; use resume=true or a new run_name")
    names = dataset.names[: cfg["max_images"]] if cfg.get("max_images") else dataset.names
    todo = [i for i, n in enumerate(names) if n not in done][rank::world]

    started = time.time()
    method = method_cls.from_config(method_cfg, device, dtype)
    manifest = {
        "run_name": run_name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv,
        "git": git_state(), "config": {**cfg, "method": method_cfg}, "method": method.describe(),
        "dataset": dataset.describe(), "metrics": {**suite.describe(), "ids": suite.ids_for(dataset.scale)},
        "libraries": library_versions(), "device": device_info(device), "dtype": str(dtype), "world_size": world,
    }
    if rank == 0:
        run.write_manifest(manifest)
        _write_summary(run, table, columns, summarize, status="running", total=len(names), started=started,
                       suite=suite, method=method_cls.name, dataset=dataset, profile=metrics_cfg["profile"])
        for column, reason in suite.missing.items():
            print(f"[srbench] {column} not computed: {reason}", file=sys.stderr)

    save_budget = _save_budget(cfg.get("save_images", 4), names)
    loader = torch.utils.data.DataLoader(
        _SafeDataset(dataset, todo), batch_size=max(1, int(cfg.get("batch_size", 1))),
        num_workers=int(cfg.get("num_workers", 0)), collate_fn=collate_samples,
        pin_memory=device.type == "cuda", persistent_workers=False)
    on_error = cfg.get("on_error", "raise")
    try:
        for batch in _progress(loader, desc=f"{method_cls.name} on {dataset.name}", disable=rank != 0):
            rows = _process_batch(batch, method, suite, degrade, device, cfg, on_error, run, save_budget,
                                  metrics_cfg["profile"])
            shard_table.append(rows)
    except BaseException as exc:
        if rank == 0:
            status = "partial" if isinstance(exc, KeyboardInterrupt) else "failed"
            _write_summary(run, table, columns, summarize, status=status, total=len(names), started=started,
                           suite=suite, method=method_cls.name, dataset=dataset, profile=metrics_cfg["profile"],
                           error=one_line(exc))
        raise
    dist.barrier()
    if rank != 0:
        return RunResult(method_cls.name, dataset.name, run.path, "shard-done")
    dist.merge_shards(run, table, names)
    summary = _write_summary(run, table, columns, summarize, status=None, total=len(names), started=started,
                             suite=suite, method=method_cls.name, dataset=dataset, profile=metrics_cfg["profile"],
                             method_describe=method.describe())
    return RunResult(method_cls.name, dataset.name, run.path, summary["status"], summary)


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


def _process_batch(batch: Sequence[SRSample | _Failed], method: SRMethod, suite: Any, degrade: Any,
                   device: torch.device, cfg: Mapping[str, Any], on_error: str, run: RunDir,
                   save_budget: set[str], profile: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seed = int(cfg["seed"])
    for item in batch:
        if isinstance(item, _Failed):
            if on_error != "skip":
                raise UserError(item.error)
            rows.append({"image": item.name, "seed": image_seed(seed, item.name), "status": STATUS_SKIPPED,
                         "error": item.error, "profile": profile})
    samples = [s for s in batch if isinstance(s, SRSample)]
    for group in group_by_shape(samples):
        try:
            rows.extend(_process_group(group, method, suite, degrade, device, seed, run, save_budget, profile))
        except Exception as exc:
            if on_error != "skip" or not is_user_error(exc) or len(group) == 1:
                if on_error == "skip" and is_user_error(exc):
                    rows.append({"image": group[0].name, "seed": image_seed(seed, group[0].name),
                                 "status": STATUS_SKIPPED, "error": one_line(exc), "profile": profile})
                    continue
                raise
            for sample in group:  # find the culprit(s) one image at a time
                rows.extend(_process_batch([sample], method, suite, degrade, device, cfg, on_error, run,
                                           save_budget, profile))
    return rows


def _process_group(group: list[SRSample], method: SRMethod, suite: Any, degrade: Any, device: torch.device,
                   seed: int, run: RunDir, save_budget: set[str], profile: str) -> list[dict[str, Any]]:
    names = [s.name for s in group]
    seeds = [image_seed(seed, n) for n in names]
    scale = group[0].scale
    lr = torch.stack([s.lr for s in group]).to(device, non_blocking=True)
    hr = None if group[0].hr is None else torch.stack([s.hr for s in group]).to(device, non_blocking=True)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        sr = method.upscale(lr, scale, seeds=seeds)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ms_per_image = (time.perf_counter() - t0) * 1000 / len(group)
    peak = peak_memory_mb(device)

    expected = (len(group), 3, round(lr.shape[-2] * scale), round(lr.shape[-1] * scale))
    if tuple(sr.shape) != expected:
        raise UserError(f"method {method.name!r} returned shape {tuple(sr.shape)} for {names[0]}…, expected {expected}")
    finite = torch.isfinite(sr.float()).flatten(1).all(dim=1).cpu()
    if not bool(finite.all()):
        bad = [n for n, ok in zip(names, finite.tolist()) if not ok]
        raise NonFiniteOutput(f"method {method.name!r} produced NaN/Inf for image(s) {', '.join(bad)}")
    sr = sr.float().clamp(0, 1)
    if hr is not None and hr.shape != sr.shape:
        raise UserError(f"{names[0]}: SR is {tuple(sr.shape[-2:])} but HR is {tuple(hr.shape[-2:])}")

    values = score_batch(suite, sr, hr, lr, scale=scale, degrade=degrade,
                         gray=[bool(s.meta.get("was_gray", False)) for s in group], names=names)
    for i, sample in enumerate(group):
        if sample.name in save_budget:
            from srbench.data.io import write_image

            write_image(run.samples_dir / f"{sample.name}.png", sr[i].cpu())
    rows = []
    for i, (name, s) in enumerate(zip(names, seeds)):
        row = {"image": name, "seed": s, "status": STATUS_OK, "error": "", "time_ms": ms_per_image,
               "peak_mem_mb": peak, "profile": profile}
        row.update({col: vals[i] for col, vals in values.items()})
        rows.append(row)
    return rows


def _write_summary(run: RunDir, table: Any, columns: Sequence[str], summarize: Any, *, status: str | None,
                   total: int, started: float, suite: Any, method: str, dataset: SRDataset, profile: str,
                   error: str | None = None, method_describe: Mapping[str, Any] | None = None) -> dict[str, Any]:
    rows = table.rows() if table is not None else []
    body = summarize_rows(rows, columns, summarize)
    covered = body["n_images"] + body["n_skipped"]
    if status is None:
        status = "complete" if covered >= total else "partial"
    summary = {
        "method": method, "dataset": dataset.name, "scale": dataset.scale, "profile": profile, "status": status,
        "n_total": total, **body, "metric_ids": {c: suite.ids_for(dataset.scale).get(c, c) for c in columns},
        "missing_metrics": suite.missing, "wall_time_s": time.time() - started,
        "hr_crop": dataset.describe().get("hr_crop", "modcrop (top-left)"),
    }
    if method_describe is not None:
        summary["nfe"] = method_describe.get("nfe")
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
def execute(cfg: Any, overrides: Sequence[str] = (), multirun: bool = False) -> list[RunResult]:
    """Run what the config asks for and print the leaderboard. User errors are one line."""
    c = to_container(cfg)
    try:
        if c["method"]["name"] == "all":
            results = run_all(c, overrides)
        else:
            results = [run_bench(c)]
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"srbench: error: {one_line(exc)}", file=sys.stderr)
        if multirun:  # the sweep goes on; the failure is recorded by the job
            return [RunResult(c["method"]["name"], c["dataset"]["name"], None, "failed", message=one_line(exc))]
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
