"""Which protocol gives the published bicubic column (VDSR Table 3: Set5 33.66/30.39/28.42, Set14 30.24/27.55/26.00)?

    .venv/bin/python benchmarks/bicubic_y_protocol.py [--data ../shared/data]

Routes compared (PSNR in dB, matlab profile: crop = scale):

* ``y_route`` — the SRCNN/VDSR MATLAB test script, srbench's ``reproduce`` route ``y-channel``
  (:mod:`srbench.commands.reproduce_y`): HR mod-cropped → 8-bit Y (``rgb2ycbcr``; a grey image is
  used as it is) → float ``imresize`` down by s and back up (LR not rounded) → uint8 → PSNR on that plane.
* ``y_route_grey_as_rgb`` — the same, but a grey image (Set14 ``bridge``) is first replicated to RGB
  and converted to Y (16..235), which shrinks its errors by 219/255: +1.3 dB on bridge, +0.09 dB on
  the Set14 mean. This is what an earlier version of this script did (Set14 "+0.08 dB").
* ``rgb_official_lr`` — srbench's bench route: bicubic ×s of the official RGB LR files (uint8
  MATLAB imresize), then Y of the SR: ~0.02 dB below the column at ×2/×3.

Measured 2026-12-04 on the shared copies (×2/×3/×4):
  y_route             Set5 33.6614/30.3922/28.4207   Set14 30.2318/27.5405/26.0001
  y_route_grey_as_rgb Set5 (same, no grey image)     Set14 30.3259/27.6348/26.0944
  rgb_official_lr     Set5 33.6396/30.3850/28.4165   Set14 30.2183/27.5303/25.9903
(The matlab profile rounds SR to 8 bits itself, so leaving the route's SR unrounded changes nothing.)
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from srbench.commands.reproduce_y import bicubic_y, hr_plane
from srbench.data.io import list_images, read_image
from srbench.data.resize import imresize
from srbench.metrics.color import rgb_to_y
from srbench.metrics.profiles import get_profile

PROFILE = get_profile("matlab")
GREY = torch.tensor([True])


def score(sr: torch.Tensor, hr: torch.Tensor, s: int) -> float:
    """PSNR of two 1×1 planes on their one channel."""
    return float(PROFILE.psnr(sr.expand(-1, 3, -1, -1), hr.expand(-1, 3, -1, -1), scale=s, gray=GREY))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    root = ap.parse_args().data
    for ds in ["Set5", "Set14"]:
        for s in [2, 3, 4]:
            res: dict[str, list[float]] = {"y_route": [], "y_route_grey_as_rgb": [], "rgb_official_lr": []}
            for p in list_images(root / ds / "HR"):
                y = hr_plane(p, s)
                res["y_route"].append(score(bicubic_y(y, s), y, s))
                img = read_image(p)
                rgb = img.tensor.double()[None][..., : y.shape[-2], : y.shape[-1]]
                y_rgb = rgb_to_y(rgb, round_y=True) / 255
                res["y_route_grey_as_rgb"].append(score(bicubic_y(y_rgb, s), y_rgb, s))
                lr = read_image(root / ds / f"LRbicx{s}" / f"{p.stem}x{s}.png").tensor.double()[None]
                sr = imresize(lr, s, quantize=True)
                res["rgb_official_lr"].append(float(PROFILE.psnr(sr, rgb, scale=s, gray=torch.tensor([img.was_gray]))))
            print(ds, f"x{s}", {k: round(float(np.mean(v)), 4) for k, v in res.items()})


if __name__ == "__main__":
    main()
