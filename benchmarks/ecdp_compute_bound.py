"""How fast can ECDP's sampler get on this CPU at fp32? U-Net FLOPs per NFE against sgemm speed.

    python benchmarks/ecdp_compute_bound.py [LR side, default 24] [threads, default 2]

Prints the U-Net's FLOPs per network evaluation (published DF2K model, random weights, output
4·side), its measured time per evaluation, the machine's fp32 matrix-multiply speed, and the time
per evaluation the U-Net would take if every FLOP ran at that speed — a lower bound for the same
arithmetic (same function, same NFE). Medians of 5 calls after 2 warm-up calls (``make perf``'s
``measure``).
"""

from __future__ import annotations

import statistics
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from methods.ecdp.model import ECDPNet
from srbench.timing import measure


def published_unet_call(side: int):
    """The DF2K U-Net's call for one ODE step at LR ``side``², inputs prepared as the sampler does."""
    net = ECDPNet().eval().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        cond = net.condition(torch.rand(1, 3, side, side), (4 * side, 4 * side), project=True)
    x = torch.randn(1, 3, 4 * side, 4 * side).contiguous(memory_format=torch.channels_last)
    tau = torch.tensor([150.0])
    return lambda: net.unet(x, tau, cond)


def gflop_of(fn) -> float:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def main(side: int = 24, threads: int = 2) -> None:
    torch.set_num_threads(threads)
    unet_call = published_unet_call(side)
    gflop = gflop_of(unet_call)
    cpu = torch.device("cpu")
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    per_nfe = statistics.median(measure(unet_call, cpu, warmup=2, iters=5)[0]) / 1e3
    sgemm = 2 * 2048**3 / (statistics.median(measure(lambda: a @ b, cpu, warmup=2, iters=5)[0]) / 1e3) / 1e9
    print(
        f"LR {side}² → {4 * side}², {threads} threads: U-Net {gflop:.1f} GFLOP/NFE, {per_nfe * 1e3:.0f} ms/NFE "
        f"({gflop / per_nfe:.0f} GFLOP/s); fp32 sgemm 2048² {sgemm:.0f} GFLOP/s; "
        f"all FLOPs at sgemm speed: {gflop / sgemm * 1e3:.0f} ms/NFE"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
