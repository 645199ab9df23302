"""Adapter overhead: methods/spandrel's upscale vs the spandrel descriptor called directly, same batch, CPU.

    .venv/bin/python benchmarks/spandrel_overhead.py [--arch Compact ESRGAN] [--size 64] [--batch 4] [--iters 20]

Ours and direct alternate within one process (so machine load hits both); the median of each is
reported with the relative overhead. Tiny random-init architectures from tests/spandrel_tiny.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from methods.spandrel import Spandrel  # noqa: E402
from spandrel_tiny import save_tiny  # noqa: E402


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
    for _ in range(iters):
        t0 = time.perf_counter()
        ours.upscale(lr, 4, seeds=list(range(batch)))
        t1 = time.perf_counter()
        direct_call()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_direct.append(t2 - t1)
    mo, md = statistics.median(t_ours), statistics.median(t_direct)
    return {"arch": arch, "size": size, "batch": batch, "ours_ms": mo * 1e3, "direct_ms": md * 1e3,
            "overhead_pct": 100 * (mo - md) / md}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", nargs="+", default=["Compact", "ESRGAN", "RCAN"])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=20)
    a = p.parse_args()
    print(f"torch threads {torch.get_num_threads()}")
    for arch in a.arch:
        r = measure(arch, a.size, a.batch, a.iters)
        print(f"{r['arch']:8s} B={r['batch']} {r['size']}px  ours {r['ours_ms']:8.2f} ms  direct {r['direct_ms']:8.2f} ms"
              f"  overhead {r['overhead_pct']:+.2f}%")


if __name__ == "__main__":
    main()
