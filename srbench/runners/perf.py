"""``srbench perf`` / ``make perf``: time and memory of methods and Stable Diffusion pieces.

    srbench perf                                                  # conf/perf.yaml: SD pieces at 512²
    srbench perf targets=[method:bicubic,method:ecdp] sizes=[256,512] batches=[1] dtypes=[fp32]
    srbench perf targets=[sd.unet_step] compile=[false,true] iters=50

For every target × size × batch × dtype × compile flag the target is built with random
weights (``weights=random``; SD pieces from the SD-2.x architecture), called ``warmup``
times, then timed over ``iters`` calls — CUDA events on a GPU, ``time.perf_counter`` on CPU.
One row per case: median ms per call, ms per image, images/s, peak memory and NFE. Rows are
merged by case into ``results/perf/<device-slug>.csv`` (a rerun replaces its own rows) and
printed as a table.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the timed calls (weights
included); on CPU the peak resident set size of the process over the timed calls
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``; the interpreter and libraries
included), so CPU numbers compare cases of one run, not machines.

A target is a name and a builder ``build(case, cfg) -> Built`` (a zero-argument callable that
runs one batch, plus NFE); :data:`TARGETS` holds the SD pieces and ``method:<name>`` builds
any registered method through the registry (``method:*``: all of them).
"""

from __future__ import annotations

import math
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srbench.devices import DTYPES, resolve_device
from srbench.fsutil import atomic_path
from srbench.runners.schemas import perf_settings
from srbench.timing import mean_nfe, measure

#: ``model`` tells apart rows of the same target measured on different weights' shapes: the SD
#: pieces' ``sd_source`` (tiny, random-sd2, a folder), a method's ``variant``
KEY = ["target", "model", "size", "batch", "dtype", "compile", "scale"]
COLUMNS = KEY + ["ms_per_image", "images_per_s", "ms_per_call", "ms_per_call_min", "iters", "peak_mem_mb",
                 "mem_kind", "nfe", "status", "error", "device", "torch", "timestamp"]


@dataclass(frozen=True)
class Case:
    """One measurement: ``size`` is the image side in pixels (a method's *output*; LR = size/scale)."""

    target: str
    size: int
    batch: int
    dtype: str
    compile: bool
    scale: float | None
    device: torch.device


@dataclass
class Built:
    fn: Callable[[], Any]  # runs one batch
    nfe: float | Callable[[], float | None] | None  # evaluations per image, or read after the calls (adaptive solvers)


# ----------------------------------------------------------------------------- targets
def _sd(case: Case, cfg: Mapping[str, Any], component: str) -> Any:
    from srbench.nn.sd import load_sd_components

    return load_sd_components(cfg.get("sd_source", "random-sd2"), components=(component,), dtype=DTYPES[case.dtype],
                              device=case.device, channels_last=bool(cfg.get("channels_last", False)),
                              compile=case.compile)


def _latent_shape(case: Case) -> tuple[int, int, int, int]:
    from srbench.nn.sd import SD2_VAE_CONFIG

    factor = 2 ** (len(SD2_VAE_CONFIG["block_out_channels"]) - 1)
    if case.size % factor:
        raise ValueError(f"size {case.size} is not a multiple of the VAE factor {factor}")
    return (case.batch, 4, case.size // factor, case.size // factor)


def build_vae_encode(case: Case, cfg: Mapping[str, Any]) -> Built:
    """SD VAE encoder: B×3×S×S image in [0, 1] → scaled latent (posterior mean)."""
    from srbench.nn.sd import vae_encode

    vae = _sd(case, cfg, "vae").vae
    x = torch.rand(case.batch, 3, case.size, case.size, device=case.device)
    return Built(lambda: vae_encode(vae, x), None)


def build_unet_step(case: Case, cfg: Mapping[str, Any]) -> Built:
    """One SD UNet evaluation at the latent of an S×S image, with a 77-token text embedding."""
    sd = _sd(case, cfg, "unet")
    unet = sd.unet
    z = torch.randn(_latent_shape(case), device=case.device, dtype=DTYPES[case.dtype])
    t = torch.full((case.batch,), 999, device=case.device, dtype=torch.long)
    text = torch.randn(case.batch, int(cfg.get("prompt_tokens", 77)), unet.config.cross_attention_dim,
                       device=case.device, dtype=DTYPES[case.dtype])
    return Built(lambda: unet(z, t, encoder_hidden_states=text).sample, 1)


def build_vae_decode(case: Case, cfg: Mapping[str, Any]) -> Built:
    """SD VAE decoder: scaled latent → B×3×S×S image in [0, 1]."""
    from srbench.nn.sd import vae_decode

    vae = _sd(case, cfg, "vae").vae
    z = torch.randn(_latent_shape(case), device=case.device, dtype=DTYPES[case.dtype])
    return Built(lambda: vae_decode(vae, z), None)


def build_method(case: Case, cfg: Mapping[str, Any], method_cfg: Mapping[str, Any]) -> Built:
    """A registered method with random weights: ``upscale`` of a B×3×(S/s)×(S/s) LR batch."""
    from srbench.method import get_method

    cls = get_method(method_cfg["name"])
    scale = float(case.scale or cfg.get("scale", 4))
    cls.check_scale(scale)
    lr_side = case.size / scale
    if lr_side != int(lr_side):
        raise ValueError(f"size {case.size} is not a multiple of scale {scale:g}")
    mcfg = {**method_cfg, "weights": "random", "compile": case.compile}
    method = cls.from_config(mcfg, case.device, DTYPES[case.dtype])
    lr = torch.rand(case.batch, 3, int(lr_side), int(lr_side), device=case.device)
    seeds = list(range(case.batch))
    return Built(lambda: method.upscale(lr, scale, seeds=seeds), lambda: mean_nfe(method))


def _image_pairs(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit-valued SR/HR pairs that differ like an SR output does (PSNR ≈ 30 dB), fixed seed."""
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(case.batch, 3, case.size, case.size, generator=g)
    sr = (hr + 0.03 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    return (sr * 255).round().div(255).to(case.device), (hr * 255).round().div(255).to(case.device)


def build_metrics_psnr_ssim(case: Case, cfg: Mapping[str, Any]) -> Built:
    """The harness's PSNR + SSIM (``standard`` profile: Y, crop = scale, float64) on a batch."""
    from srbench.metrics import build_metrics

    suite = build_metrics("standard", lpips_nets=(), device=case.device)
    sr, hr = _image_pairs(case)
    scale = float(case.scale or cfg.get("scale", 4))
    return Built(lambda: suite(sr, hr, scale=scale), None)


def build_metrics_lpips(case: Case, cfg: Mapping[str, Any]) -> Built:
    """LPIPS-alex on a batch (random backbone, as methods run with random weights here)."""
    from srbench.metrics.lpips import LPIPS

    lpips = LPIPS("alex", backbone_weights="random").to(case.device)
    sr, hr = _image_pairs(case)
    return Built(lambda: lpips(sr, hr), None)


def build_skimage_psnr_ssim(case: Case, cfg: Mapping[str, Any]) -> Built:
    """The reference: scikit-image PSNR + SSIM (Gaussian σ = 1.5) per image, CPU, the same work as
    ``metrics.psnr_ssim`` (8-bit images → BT.601 Y in float64 → crop = scale → PSNR, SSIM)."""
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    sr, hr = (t.cpu().numpy() for t in _image_pairs(case))
    crop = int(float(case.scale or cfg.get("scale", 4)))

    def y(img: np.ndarray) -> np.ndarray:  # BT.601 Y in 16..235, as BasicSR's rgb2ycbcr(y_only=True)
        return rgb2ycbcr(img.astype(np.float64).transpose(1, 2, 0))[crop:-crop, crop:-crop, 0]

    def score() -> list[tuple[float, float]]:
        out = []
        for a, b in zip(sr, hr):
            ya, yb = y(a), y(b)
            out.append((peak_signal_noise_ratio(yb, ya, data_range=255),
                        structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                              data_range=255)))
        return out

    return Built(score, None)


#: built-in targets (SD pieces, the metrics harness and its scikit-image reference);
#: ``method:<name>`` is resolved through the method registry
TARGETS: dict[str, Callable[[Case, Mapping[str, Any]], Built]] = {
    "sd.vae_encode": build_vae_encode,
    "sd.unet_step": build_unet_step,
    "sd.vae_decode": build_vae_decode,
    "metrics.psnr_ssim": build_metrics_psnr_ssim,
    "metrics.lpips": build_metrics_lpips,
    "metrics.skimage_psnr_ssim": build_skimage_psnr_ssim,
}


# ----------------------------------------------------------------------------- measuring
def run_case(case: Case, cfg: Mapping[str, Any], method_cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build and time one case; failures (OOM, unsupported input) become a row with ``status``."""
    row: dict[str, Any] = {**{k: v for k, v in asdict(case).items() if k != "device"},
                           "device": device_name(case.device), "torch": torch.__version__,
                           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "ok", "error": "",
                           "model": str(method_cfg.get("variant", "") if method_cfg is not None
                                        else cfg.get("sd_source", "") if case.target.startswith("sd.") else "")}
    try:
        built = (build_method(case, cfg, method_cfg) if method_cfg is not None else TARGETS[case.target](case, cfg))
        times, peak, kind = measure(built.fn, case.device, warmup=int(cfg.get("warmup", 3)),
                                    iters=int(cfg.get("iters", 10)))
    except Exception as exc:  # noqa: BLE001 - one failed case must not stop the table
        oom = isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
        row.update(status="oom" if oom else "failed", error=" ".join(str(exc).split())[:300] or type(exc).__name__)
        return row
    finally:
        if case.device.type == "cuda":
            torch.cuda.empty_cache()
    per_call = statistics.median(times)
    row.update(ms_per_call=per_call, ms_per_call_min=min(times), ms_per_image=per_call / case.batch,
               images_per_s=1000.0 * case.batch / per_call, iters=len(times), peak_mem_mb=peak, mem_kind=kind,
               nfe=built.nfe() if callable(built.nfe) else built.nfe)
    return row


# ----------------------------------------------------------------------------- device / files
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {model} ({torch.get_num_threads()} threads)"


def device_slug(device: torch.device) -> str:
    """File-name form of the device: ``nvidia-h100-80gb-hbm3``, ``cpu-amd-epyc-7b13``."""
    name = device_name(device)
    if device.type != "cuda":
        name = re.sub(r"\s*\(\d+ threads\)$", "", name)
        name = name if name.lower().startswith("cpu") else f"cpu {name}"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or device.type


def merge_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> Any:
    """Write ``rows`` into the CSV at ``path``, replacing earlier rows of the same case (atomic)."""
    import pandas as pd

    new = pd.DataFrame.from_records(list(rows), columns=COLUMNS)
    if path.is_file():
        old = pd.read_csv(path)
        old = old.reindex(columns=COLUMNS + [c for c in old.columns if c not in COLUMNS])
        replaced = set(map(_key, new[KEY].itertuples(index=False)))
        old = old[[_key(r) not in replaced for r in old[KEY].itertuples(index=False)]]
        new = pd.concat([old, new], ignore_index=True) if len(old) else new
    with atomic_path(path) as tmp:
        new.to_csv(tmp, index=False)
    return new


def _key(row: Sequence[Any]) -> tuple:
    """A case key that reads the same from memory and from the CSV (4 == 4.0, None == NaN, True == "True")."""
    out = []
    for v in row:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append("")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(f"{float(v):g}")
        else:
            out.append(str(v))
    return tuple(out)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    import pandas as pd

    df = pd.DataFrame.from_records(list(rows))
    cols = ["target", "model", "size", "batch", "dtype", "compile", "ms_per_image", "images_per_s", "peak_mem_mb", "nfe",
            "status"]
    df = df[[c for c in cols if c in df.columns]]
    if "nfe" in df.columns:  # None (no NFE for this target) → NaN → "—"
        df = df.assign(nfe=pd.to_numeric(df["nfe"], errors="coerce"))
    fmt = {"ms_per_image": "{:.2f}".format, "images_per_s": "{:.2f}".format, "peak_mem_mb": "{:.0f}".format,
           "nfe": lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:g}"}
    return df.to_string(index=False, formatters=fmt, na_rep="—")


# ----------------------------------------------------------------------------- runner
def expand_targets(names: Sequence[str]) -> list[str]:
    from srbench.method import method_entries

    out: list[str] = []
    for name in names:
        if name == "method:*":
            out += [f"method:{n}" for n in method_entries()]
        elif name.startswith("method:") or name in TARGETS:
            out.append(name)
        else:
            raise ValueError(f"unknown perf target {name!r}; targets: {', '.join(TARGETS)}, method:<name>, method:*")
    return out


def run_perf(cfg: Mapping[str, Any], method_cfgs: Mapping[str, Mapping[str, Any]] | None = None,
             out: Path | None = None, echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Measure every case of ``cfg`` (a resolved ``conf/perf.yaml``), write the CSV, return the rows."""
    device = resolve_device(cfg.get("device", "auto"))
    targets = expand_targets(list(cfg["targets"]))
    method_cfgs = dict(method_cfgs or {})
    threads = torch.get_num_threads()
    if device.type == "cpu" and cfg.get("cpu_threads"):
        torch.set_num_threads(int(cfg["cpu_threads"]))
    try:
        rows = _run_cases(cfg, targets, method_cfgs, device, echo)
    finally:
        torch.set_num_threads(threads)
    path = out or Path(cfg.get("results_dir", "results")) / "perf" / f"{device_slug(device)}.csv"
    merge_rows(path, rows)
    echo(format_table(rows))
    echo(f"wrote {path}")
    return rows


def _run_cases(cfg: Mapping[str, Any], targets: Sequence[str], method_cfgs: Mapping[str, Mapping[str, Any]],
               device: torch.device, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for target in targets:
        mcfg = None
        if target.startswith("method:"):
            name = target.split(":", 1)[1]
            mcfg = method_cfgs.get(name, {"name": name})
        for size in cfg["sizes"]:
            for batch in cfg["batches"]:
                for dtype in cfg["dtypes"]:
                    if dtype not in DTYPES:
                        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
                    for compiled in cfg["compile"]:
                        case = Case(target, int(size), int(batch), str(dtype), bool(compiled),
                                    float(cfg.get("scale", 4)) if mcfg is not None else None, device)
                        row = run_case(case, cfg, mcfg)
                        rows.append(row)
                        status = row["status"] if row["status"] != "ok" else f"{row['ms_per_image']:.2f} ms/img"
                        echo(f"[perf] {target} {size}² B={batch} {dtype} compile={compiled}: {status}"
                             + (f" ({row['error']})" if row["error"] else ""))
    return rows


def compose_config(argv: Sequence[str]) -> tuple[Any, dict[str, dict[str, Any]]]:
    """``conf/perf.yaml`` with Hydra-style overrides, and the method configs its targets need."""
    from omegaconf import OmegaConf

    from srbench.runners.compose import compose_app, method_config

    cfg = OmegaConf.to_container(compose_app("perf", argv), resolve=True)
    method_cfgs = {}
    for target in expand_targets(list(cfg["targets"])):
        if target.startswith("method:"):
            name = target.split(":", 1)[1]
            method_cfgs[name] = method_config(name, argv)
    return cfg, method_cfgs


def _as_override(value: Any) -> str:
    """A config value in Hydra's override syntax: ``[fp32]``, ``[false]``, ``tiny``."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_as_override(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def apply_cpu_preset(cfg: Mapping[str, Any], argv: Sequence[str],
                     echo: Callable[[str], None] = print) -> dict[str, Any]:
    """On a CPU, ``cfg["cpu_preset"]`` replaces the keys the command line did not set.

    The defaults describe the GPU measurement (SD-2 at 512², bf16, compiled); run as written on
    two CPU cores they take hours, so a plain ``make perf`` there measures the tiny preset and
    says which keys it changed.
    """
    cfg = dict(cfg)
    preset = cfg.pop("cpu_preset", None) or {}
    if not preset or resolve_device(cfg.get("device", "auto")).type != "cpu":
        return cfg
    given = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    changed = {k: v for k, v in preset.items() if k not in given and cfg.get(k) != v}
    if changed:
        cfg.update(changed)
        echo("[perf] no GPU: CPU preset " + " ".join(f"{k}={_as_override(v)}" for k, v in changed.items())
             + " (set them explicitly, or cpu_preset=null, to measure the GPU cases on this CPU)")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    """``srbench perf [key=value ...]`` (overrides of conf/perf.yaml); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from srbench.errors import UserError, report

    try:
        cfg, method_cfgs = compose_config(argv)
        perf_settings(cfg)  # every impossible setting is refused before any work
        cfg = apply_cpu_preset(cfg, argv)
        rows = run_perf(cfg, method_cfgs, out=Path(cfg["out"]) if cfg.get("out") else None)
    except (UserError, ValueError, HydraException, OmegaConfBaseException) as exc:
        # Hydra's override errors are about the command line too: one line, as for srbench's own
        report("srbench perf", exc)
        return 2
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def console_main() -> None:
    """Console script ``srbench-perf``."""
    raise SystemExit(main())


if __name__ == "__main__":
    console_main()
