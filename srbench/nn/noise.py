"""Per-image random draws: one ``torch.Generator`` per image, seeded by the runner.

An image's noise depends only on its seed — not on batch size, order, resume, sharding or
device — because every draw comes from a CPU generator seeded with that image's seed and is
moved to the device afterwards (CUDA generators give different numbers for the same seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded with that image's seed."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def randn_per_image(seeds: Sequence[int] | Sequence[torch.Generator], shape: Sequence[int], *,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """B×``shape`` standard normal noise, image i from ``seeds[i]`` (an int seed or a CPU generator).

    Passing generators (from :func:`generators`) lets a sampler make several draws per image
    (start noise, then per-step noise) from one stream, as with a seed per draw.
    """
    gens = [g if isinstance(g, torch.Generator) else torch.Generator().manual_seed(int(g)) for g in seeds]
    z = torch.stack([torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in gens])
    return z.to(device=device, dtype=dtype)
