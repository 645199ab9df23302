"""FID: srbench.metrics.fid (in memory) vs pyiqa.create_metric("fid") folder vs folder, identical random Inception.

    .venv/bin/python benchmarks/fid_vs_pyiqa.py [N]      (N SR + N HR random 48×64 images, default 3)

A random FID-Inception state dict (kaiming-normal convs) is saved under pyiqa's file name in a temporary
$SRBENCH_WEIGHTS; both sides load it. Prints the max feature difference and both FIDs (closing_15_s3.md).
The same check is tests/test_metrics_fid.py::test_features_and_fid_equal_pyiqa_folder_fid.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srbench.metrics.color import quantize_8bit
from srbench.metrics.fid import INCEPTION_FILE, InceptionFeatures, _no_pretrained_load, fid_from_features
from srbench.metrics.iqa import offline_downloads


def save_pngs(folder: Path, images: torch.Tensor) -> None:
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(quantize_8bit(im).to(torch.uint8).permute(1, 2, 0).numpy()).save(folder / f"{i:02d}.png")


def main(n: int) -> None:
    import pyiqa
    from pyiqa.archs.fid_arch import get_folder_features
    from pyiqa.archs.inception import fid_inception_v3

    root = Path(tempfile.mkdtemp())
    (root / "pyiqa").mkdir()
    with _no_pretrained_load():
        torch.manual_seed(0)
        net = fid_inception_v3()
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.save(net.state_dict(), root / "pyiqa" / INCEPTION_FILE)
    os.environ["SRBENCH_WEIGHTS"] = str(root)

    g = torch.Generator().manual_seed(5)
    sr, hr = torch.rand(n, 3, 48, 64, generator=g), torch.rand(n, 3, 48, 64, generator=g) ** 2
    save_pngs(root / "sr", sr)
    save_pngs(root / "hr", hr)
    ours = InceptionFeatures("cpu")
    f_sr, f_hr = ours(sr), ours(hr)
    with offline_downloads({}):
        theirs = pyiqa.create_metric("fid", device="cpu")
    their_feats = get_folder_features(str(root / "sr"), theirs.net.model, num_workers=0, device=torch.device("cpu"),
                                      mode="clean", verbose=False)
    print("features max|diff|", np.abs(f_sr - their_feats).max(), "max|feat|", np.abs(their_feats).max())
    a = fid_from_features(f_sr, f_hr)
    b = float(theirs(str(root / "sr"), str(root / "hr"), num_workers=0, verbose=False))
    print(f"FID ours {a:.10g} pyiqa {b:.10g} rel diff {abs(a - b) / abs(b):.3e}  id {ours.metric_id}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
