"""Adapter overhead: methods/spandrel's upscale vs the spandrel descriptor called directly, same batch, CPU.

    .venv/bin/python benchmarks/spandrel_overhead.py [--arch Compact ESRGAN] [--size 64] [--batch 4] [--iters 20]

Ours and direct alternate within one process, in ABBA order (so machine load and cache warmth hit both alike). The
overhead is printed on the *minimum* per-call time of each (other processes only add time, so on a
loaded machine the fastest call is the least disturbed estimate) and on the medians (on a quiet
machine the steadier statistic: a single outlier-fast call moves a minimum). Tiny random-init architectures from tests/spandrel_tiny.py.
Because timing on a loaded machine is noisy, the script also reports what the adapter *adds*,
which load cannot blur: the aten operators of one call of each under ``torch.profiler`` (the
adapter's extra operators, expected: the one input copy) and the minimum time of that copy alone
as a share of the direct call's minimum (``copy_pct``) — the adapter's overhead bound.
``--csv PATH`` also writes the rows (``make perf-spandrel`` → results/perf/spandrel_overhead.csv).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from spandrel_tiny import save_tiny

from methods.spandrel import Spandrel


def measure(arch: str, size: int, batch: int, iters: int) -> dict:
    import spandrel

    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny(arch, Path(tmp))
        ours = Spandrel.from_config({"name": "spandrel", "weights": str(path)}, torch.device("cpu"), torch.float32)
        direct = spandrel.ModelLoader().load_from_file(str(path)).eval()
    lr = torch.rand(batch, 3, size, size)
    t_ours, t_direct = [], []

    def direct_call():
        with torch.inference_mode():
            return direct(lr.clone())  # the clone keeps RCAN's in-place input scaling off lr, as ours does

    for _ in range(2):  # warm-up
        ours.upscale(lr, 4, seeds=list(range(batch)))
        direct_call()
    def ours_call():
        return ours.upscale(lr, 4, seeds=list(range(batch)))

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    t_copy = []
    for i in range(iters):  # ABBA order: whichever runs second in a pair finds warmer caches
        if i % 2 == 0:
            t_ours.append(timed(ours_call))
            t_direct.append(timed(direct_call))
        else:
            t_direct.append(timed(direct_call))
            t_ours.append(timed(ours_call))
        t_copy.append(timed(lambda: lr.to(torch.float32, copy=True)))
    extra_ops = _extra_ops(ours_call, direct_call)
    mo, md = min(t_ours), min(t_direct)
    return {"arch": arch, "size": size, "batch": batch, "iters": iters, "ours_ms": mo * 1e3, "direct_ms": md * 1e3,
            "overhead_pct": 100 * (mo - md) / md, "ours_median_ms": statistics.median(t_ours) * 1e3,
            "direct_median_ms": statistics.median(t_direct) * 1e3,
            "extra_ops": " ".join(f"{k}×{v}" for k, v in sorted(extra_ops.items())) or "none",
            "copy_pct": 100 * min(t_copy) / md}


def _extra_ops(ours_call, direct_call) -> Counter:
    """aten operators one adapter call runs beyond one direct call (multiset difference)."""
    from torch.profiler import ProfilerActivity, profile

    def ops(fn) -> Counter:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        return Counter(e.name for e in prof.events() if e.name.startswith("aten::"))

    theirs = ops(direct_call) - Counter({"aten::clone": 1, "aten::empty_like": 1, "aten::copy_": 1})  # the benchmark's own clone
    return ops(ours_call) - theirs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", nargs="+", default=["Compact", "ESRGAN", "RCAN"])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--csv", type=Path, default=None)
    a = p.parse_args()
    print(f"torch threads {torch.get_num_threads()}")
    rows = []
    for arch in a.arch:
        r = measure(arch, a.size, a.batch, a.iters)
        rows.append(r)
        print(f"{r['arch']:8s} B={r['batch']} {r['size']}px  min: ours {r['ours_ms']:8.2f} ms  direct {r['direct_ms']:8.2f} ms"
              f"  overhead {r['overhead_pct']:+.2f}%   (median: ours {r['ours_median_ms']:.2f}, direct {r['direct_median_ms']:.2f})")
        print(f"{'':8s} adapter adds: {r['extra_ops']}; that copy alone: {r['copy_pct']:.2f}% of the direct call")
    if a.csv:
        import pandas as pd

        a.csv.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(a.csv, index=False)
        print(f"wrote {a.csv}")


if __name__ == "__main__":
    main()
