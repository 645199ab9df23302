"""DISTS and CLIPIQA: the bridge vs pyiqa.create_metric at identical random backbones (same seed).

    .venv/bin/python benchmarks/iqa_vs_pyiqa.py

Prints both scores and the max difference (closing_15_s3.md); tests/test_metrics_iqa_backbones.py asserts 1e-6.
"""

from __future__ import annotations

import torch

from srbench.metrics.iqa import PyiqaMetric, import_arch, random_backbones


def direct(name: str, seed: int) -> torch.nn.Module:
    import pyiqa

    import_arch(name)
    with random_backbones(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return pyiqa.create_metric(name, device="cpu", pretrained=False).eval()


def images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def main() -> None:
    for name, seed, shape, sr_seed in [("dists", 7, (2, 3, 64, 64), 0), ("clipiqa", 3, (2, 3, 96, 96), 2)]:
        ours, theirs = PyiqaMetric(name, random_init=True, seed=seed), direct(name, seed)
        sr, hr = images(shape, sr_seed), images(shape, 1)
        args = (sr, hr) if ours.full_reference else (sr,)
        got = ours(*args)
        with torch.inference_mode():
            want = theirs(*args).flatten().double()
        print(name, "ours", got.tolist(), "pyiqa", want.tolist(), "max|diff|", float((got - want).abs().max()),
              ours.metric_id)


if __name__ == "__main__":
    main()
