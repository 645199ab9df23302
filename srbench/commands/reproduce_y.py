"""The ``y-channel`` reproduce route: the protocol behind the classic bicubic column of SR tables.

The bicubic rows that SRCNN (Dong et al., ECCV 2014 / TPAMI 2016), VDSR (Kim et al., CVPR 2016,
Table 3), EDSR and RCAN print for Set5/Set14/B100/Urban100 were not made by upsampling an RGB LR
file. They come from the SRCNN-era MATLAB test script (``demo_SR.m`` of the SRCNN release; the same
steps in VDSR/DRCN test code):

1. ``im = imread(HR)``; when it has three channels, ``im = rgb2ycbcr(im); im = im(:,:,1)`` — the
   8-bit studio-swing Y (BT.601, 16..235). A **grey image (Set14 ``bridge``) is used as it is**:
   its 0..255 grey values, not mapped to 16..235.
2. ``im_gnd = modcrop(im, s)`` (crop H and W down to multiples of s), ``single(im_gnd)/255``.
3. ``im_l = imresize(im_gnd, 1/s, 'bicubic')``, ``im_b = imresize(im_l, s, 'bicubic')`` — on the
   float image: the LR is **not** rounded to 8 bits, and it is the Y channel that is down- and
   up-sampled, not the RGB image.
4. ``shave(uint8(im * 255), [s, s])`` on both (round half away from zero, saturate), then
   ``compute_psnr`` (20·log10(255/RMSE) over the remaining pixels); SSIM on the same planes.

Run here with srbench's MATLAB-exact ``imresize`` (float32, as MATLAB ``single``) and the
``matlab`` metric profile (crop = scale; the Y plane is passed as a grey image so it is scored on
its one channel). On the shared Set5 copy this reproduces the published column to the printed
digits (33.66/30.39/28.42 dB, SSIM 0.9299/0.8682/0.8104); the official RGB LR files + RGB bicubic
+ Y scoring (the ``bench`` route) give Set5 ×2 ≈ 0.02 dB less — see ``benchmarks/bicubic_y_protocol.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from srbench.data.io import list_images, read_image
from srbench.data.resize import imresize
from srbench.metrics.color import rgb_to_y
from srbench.metrics.profiles import get_profile
from srbench.metrics.stats import summarize

ROUTE = "y-channel"
DESCRIPTION = ("HR → 8-bit Y (MATLAB rgb2ycbcr; grey images as they are) → modcrop s → float imresize 1/s and ×s "
               "(LR not rounded) → uint8 → PSNR/SSIM on that channel, s pixels shaved (SRCNN/VDSR test script)")


def hr_plane(path: Path, scale: int) -> torch.Tensor:
    """1×1×H×W float64 in [0, 1] on the 8-bit grid: the mod-cropped HR's Y (or its grey channel)."""
    img = read_image(path)
    x = img.tensor.to(torch.float64)[None]
    x = x[..., : x.shape[-2] // scale * scale, : x.shape[-1] // scale * scale]
    if img.was_gray:
        return x[:, :1]
    return rgb_to_y(x[:, :3], round_y=True) / 255.0  # uint8(rgb2ycbcr(im))(:, :, 1)


def bicubic_y(plane: torch.Tensor, scale: int) -> torch.Tensor:
    """``uint8(imresize(imresize(single(Y)/255, 1/s), s) * 255) / 255`` (float64 result)."""
    y = plane.to(torch.float32)  # MATLAB single
    sr = imresize(imresize(y, 1.0 / scale), float(scale)).to(torch.float64)
    # uint8(): round half away from zero (torch.round would round ties to even), saturate
    return torch.floor(sr * 255 + 0.5).clamp(0, 255) / 255


def run(hr_dir: Path, scale: int, out: Path, profile: str = "matlab") -> dict[str, Any]:
    """Score the route on every image of ``hr_dir``; writes ``per_image.csv`` under ``out`` and
    returns a summary shaped like a bench run's (``metrics.<m>.mean``, ``n_images``)."""
    prof = get_profile(profile)
    rows = []
    for path in list_images(hr_dir):
        hr = hr_plane(path, scale)
        sr = bicubic_y(hr, scale)
        grey = torch.tensor([True])  # the plane is scored on its one channel
        rows.append({"image": path.stem,
                     "psnr": float(prof.psnr(sr.expand(-1, 3, -1, -1), hr.expand(-1, 3, -1, -1), scale=scale, gray=grey)),
                     "ssim": float(prof.ssim(sr.expand(-1, 3, -1, -1), hr.expand(-1, 3, -1, -1), scale=scale, gray=grey))})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "per_image.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "psnr", "ssim"])
        w.writeheader()
        w.writerows(rows)
    return {"route": ROUTE, "n_images": len(rows), "scale": scale, "profile": profile,
            "metrics": {m: summarize([r[m] for r in rows]) for m in ("psnr", "ssim")} if rows else {}}
