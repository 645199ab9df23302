"""How srbench times a call: warm-up, CUDA synchronisation, peak memory, NFE — one home.

Used by ``srbench-bench`` (per batch), ``srbench perf`` (median over repeated calls) and the
stand-alone scripts in ``benchmarks/``, so every number in a results row, a perf table and a
README is measured the same way.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` since the reset (weights included);
on CPU the peak resident set size of the process since ``/proc/self/clear_refs`` reset it
(the interpreter and libraries included; ``cpu_peak_rss_lifetime`` where it cannot be reset).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from srbench.devices import peak_memory_mb, reset_peak_memory


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory_kind(device: torch.device, exact: bool) -> str:
    if device.type == "cuda":
        return "cuda_max_allocated"
    return "cpu_peak_rss" if exact else "cpu_peak_rss_lifetime"


@dataclass
class Timed:
    """One timed call: its result, wall time (ms, CUDA-synchronised) and peak memory (MiB)."""

    result: Any
    ms: float
    peak_mem_mb: float
    mem_kind: str


def warm_up(fn: Callable[[], Any], device: torch.device, calls: int) -> None:
    """Untimed calls (lazy init, cuDNN autotuning, torch.compile), then a sync."""
    with torch.inference_mode():
        for _ in range(calls):
            fn()
    sync(device)


def timed_call(fn: Callable[[], Any], device: torch.device) -> Timed:
    """Time one call of ``fn`` under inference mode, with the peak memory of that call alone."""
    with torch.inference_mode():
        sync(device)
        exact = reset_peak_memory(device)
        t0 = time.perf_counter()
        result = fn()
        sync(device)
        ms = (time.perf_counter() - t0) * 1000
    return Timed(result, ms, peak_memory_mb(device), _memory_kind(device, exact))


def measure(fn: Callable[[], Any], device: torch.device, *, warmup: int, iters: int) -> tuple[list[float], float, str]:
    """Per-call times in ms after ``warmup`` calls (CUDA events on a GPU), peak memory in MiB over
    the timed calls, and what that memory is."""
    warm_up(fn, device, warmup)
    with torch.inference_mode():
        exact = reset_peak_memory(device)
        if device.type == "cuda":
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
            for s, e in zip(starts, ends):
                s.record()
                fn()
                e.record()
            torch.cuda.synchronize(device)
            times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        else:
            times = []
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1000)
    return times, peak_memory_mb(device), _memory_kind(device, exact)


def nfe_per_image(method: Any, batch: int) -> list[float | None]:
    """The NFE of each of the ``batch`` images of ``method``'s last call (``SRMethod.nfe_per_image``)."""
    value = method.nfe_per_image()
    if value is None:
        return [None] * batch
    if isinstance(value, (int, float)):
        return [value] * batch
    values = list(value)
    if len(values) != batch:
        raise ValueError(f"method {getattr(method, 'name', method)!r} reported {len(values)} NFE values for "
                         f"{batch} images")
    return values


def mean_nfe(method: Any) -> float | None:
    """Mean NFE per image of ``method``'s last call, or None when it reports none."""
    value = method.nfe_per_image()
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    values = [float(v) for v in value if v is not None]
    return statistics.mean(values) if values else None
