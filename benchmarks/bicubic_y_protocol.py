"""Which protocol gives the published bicubic column (VDSR Table 3: Set5 33.66/30.39/28.42, Set14 30.24/27.55/26.00)?

    .venv/bin/python benchmarks/bicubic_y_protocol.py [--data ../shared/data]

The VDSR-style route: HR mod-cropped → MATLAB ``rgb2ycbcr`` Y (uint8) → double ``imresize`` down by s and
back up (srbench's MATLAB-exact bicubic) → SR rounded to uint8 → PSNR on Y with ``s`` pixels shaved.
``y_double`` keeps the SR unrounded. srbench's own bicubic row upsamples the official RGB LR instead.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srbench.data.resize import imresize
from srbench.metrics.color import rgb_to_y


def psnr(a: np.ndarray, b: np.ndarray) -> float:  # both on [0, 255]
    return float(10 * np.log10(255**2 / np.mean((a - b) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    root = ap.parse_args().data
    for ds in ["Set5", "Set14"]:
        for s in [2, 3, 4]:
            res: dict[str, list[float]] = {"y_double": [], "y_uint8_sr": []}
            for p in sorted((root / ds / "HR").glob("*.png")):
                hr = np.asarray(Image.open(p).convert("RGB")).astype(np.float64)
                hr = hr[: hr.shape[0] // s * s, : hr.shape[1] // s * s]
                y = rgb_to_y(torch.from_numpy(hr / 255).permute(2, 0, 1)[None], round_y=True).double() / 255
                sr = imresize(imresize(y, 1 / s), s)
                a = sr[0, 0, s:-s, s:-s].numpy() * 255
                b = y[0, 0, s:-s, s:-s].numpy() * 255
                res["y_double"].append(psnr(a, b))
                res["y_uint8_sr"].append(psnr(np.clip(np.round(a), 0, 255), b))
            print(ds, f"x{s}", {k: round(float(np.mean(v)), 4) for k, v in res.items()})


if __name__ == "__main__":
    main()
