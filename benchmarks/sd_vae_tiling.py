"""Tiled vs untiled SD VAE (srbench.nn.sd_tiling): PSNR and seconds per GroupNorm-statistics mode.

    .venv/bin/python benchmarks/sd_vae_tiling.py [--size 128] [--vae tiny|random-sd2|DIR]

Random tiny SD VAE (GroupNorm + mid-block attention) by default, a smooth image (the test's), the
untiled ``vae_encode`` / ``vae_decode`` as reference. Latent PSNR is against the latent's peak-to-peak
range. Two tilings: the one of ``tests/test_sd_tiling.py`` (96/64 px, 12/8 latent) and the small one
issue 11 first reported 14.9 dB with (64/32 px, 8/4 latent). Seconds are one run each, same process.
"""

import argparse
import math
import time

import torch

from srbench.nn.sd import load_sd_components, vae_decode, vae_encode
from srbench.nn.sd_tiling import NORM_STATS, SDTiling, tiled_vae_decode, tiled_vae_encode


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-20).item())


def latent_psnr(z: torch.Tensor, zt: torch.Tensor) -> float:
    return 10 * math.log10(((z.max() - z.min()) ** 2 / ((z - zt) ** 2).mean().clamp_min(1e-30)).item())


def smooth(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack(
        [
            0.5 + 0.3 * torch.sin(2 * math.pi * xx),
            0.5 + 0.3 * torch.cos(2 * math.pi * yy),
            0.4 + 0.2 * xx * yy,
        ]
    )[None]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--vae", default="tiny")
    args = ap.parse_args()
    vae = load_sd_components(args.vae, components=("vae",)).vae
    img = smooth(args.size, args.size)
    t0 = time.perf_counter()
    z = vae_encode(vae, img)
    t1 = time.perf_counter()
    x = vae_decode(vae, z)
    print(f"untiled: {t1 - t0:.2f} s encode, {time.perf_counter() - t1:.2f} s decode")
    tilings = {
        "96/64 px, 12/8 latent": SDTiling(
            pixel_tile=96, pixel_overlap=64, latent_tile=12, latent_overlap=8, tile_batch_size=4
        ),
        "64/32 px, 8/4 latent": SDTiling(pixel_tile=64, pixel_overlap=32, latent_tile=8, latent_overlap=4),
    }
    for name, tiling in tilings.items():
        for mode in NORM_STATS:
            t0 = time.perf_counter()
            zt = tiled_vae_encode(vae, img, tiling, norm_stats=mode)
            t1 = time.perf_counter()
            xt = tiled_vae_decode(vae, z, tiling, norm_stats=mode)
            t2 = time.perf_counter()
            both = tiled_vae_decode(vae, zt, tiling, norm_stats=mode)
            print(
                f"{name} {mode:8s}: encode latent {latent_psnr(z, zt):5.1f} dB, decode {psnr(x, xt):5.1f} dB, "
                f"encode+decode {psnr(x, both):5.1f} dB | {t1 - t0:5.2f} s encode, {t2 - t1:5.2f} s decode",
                flush=True,
            )


if __name__ == "__main__":
    main()
