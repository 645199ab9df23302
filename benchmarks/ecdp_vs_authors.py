"""ECDP sampling, the authors' code next to srbench's: same weights, LR image, noise and solver.

Their code is not part of srbench; check it out and point ECDP_AUTHORS at it (as for
tests/fixtures/make_ecdp_authors_forward.py, whose model builder this reuses):

    git clone https://github.com/Yuan-Yutao/ECDP /tmp/ecdp_authors && git -C /tmp/ecdp_authors checkout 1696fa1
    ECDP_AUTHORS=/tmp/ecdp_authors python benchmarks/ecdp_vs_authors.py --lr 24 40 --reps 2 [--device cuda] [--batch 8]

DF2K model (42.6 M parameters) with deterministic weights; their ``state_dict()`` is saved to a file
and loaded by srbench's own checkpoint reader. Both solve the PF-ODE with dopri5 at the published
rtol = atol = 1e-3 in fp32 (srbench's defaults, channels_last); at batch > 1 srbench runs
``batch_mode=joint`` (one solve per batch, as theirs). Prints one JSON line per call — seconds
(CUDA synchronised), NFE, max |Δ| of the clamped outputs — and the median speed-up per LR size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from srbench.timing import timed_call

_checkout = Path(os.environ.get("ECDP_AUTHORS", "/tmp/ecdp_authors"))
if not (_checkout / "lib" / "model" / "diffusion.py").is_file():
    sys.exit(f"ecdp_vs_authors: no checkout of Yuan-Yutao/ECDP at {_checkout}; clone it (see this file's docstring) "
             "and set ECDP_AUTHORS to its path")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
import make_ecdp_authors_forward as authors  # also patches their torchvision resize to antialias=False

from methods.ecdp.method import ECDP


def counted(module: torch.nn.Module) -> dict[str, int]:
    """Count the calls of ``module`` (their U-Net: one per NFE)."""
    calls = {"n": 0}
    forward = module.forward

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        return forward(*args, **kwargs)

    module.forward = wrapper
    return calls


def timed(fn, device: torch.device):
    """(output, seconds) of one call, timed by srbench.timing as bench and perf time."""
    t = timed_call(fn, device)
    return t.result, t.ms / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lr", type=int, nargs="+", default=[24], help="LR sides (output ×4)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    theirs = authors.build("ecdp-df2k-train").to(device)
    theirs.model.diffusion.use_ode = True
    their_nfe = counted(theirs.model.diffusion.network)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "authors_df2k_state_dict.pt"
        torch.save(theirs.state_dict(), weights)
        batch_mode = "joint" if args.batch > 1 else "per_image"
        ours = ECDP.from_config({"weights": str(weights), "sampler": {"batch_mode": batch_mode}}, device)

    speedups: dict[int, list[float]] = {}
    for side in args.lr:
        hr_side = 4 * side
        lr = torch.rand(args.batch, 3, side, side, generator=torch.Generator().manual_seed(side))
        seeds = [123 + i for i in range(args.batch)]
        z = ours.initial_noise(seeds, (3, hr_side, hr_side)).to(device)  # the z srbench draws for these seeds
        for rep in range(args.reps):
            their_nfe["n"] = 0
            with torch.no_grad(), theirs.with_image_size((hr_side, hr_side)):
                out_t, sec_t = timed(lambda z=z, lr=lr: theirs(z.flatten(1), lr.to(device), mode="generate"), device)
            out_o, sec_o = timed(lambda lr=lr, seeds=seeds: ours.upscale(lr, 4, seeds=seeds), device)
            row = {"lr": side, "batch": args.batch, "rep": rep, "device": str(device),
                   "authors_s": round(sec_t, 3), "ours_s": round(sec_o, 3), "speedup": round(sec_t / sec_o, 2),
                   "authors_nfe": their_nfe["n"], "ours_nfe": ours.last_nfe,
                   "max_abs_diff": (out_t.clamp(0, 1).float().cpu() - out_o.float().cpu()).abs().max().item()}
            speedups.setdefault(side, []).append(sec_t / sec_o)
            print(json.dumps(row), flush=True)
    for side, values in speedups.items():
        print(f"LR {side}² ×4, batch {args.batch}, {device}: median speed-up {statistics.median(values):.2f}×")


if __name__ == "__main__":
    main()
