"""LR consistency: does the SR image, degraded again, give back the LR it came from?

SR3/IDM's "consistency" and ECDP's motivation (protocols.md §3): apply the operator that
made the LR (e.g. MATLAB bicubic ↓s) to the 8-bit SR and compare with the given LR by
PSNR in RGB, 0..255, no border crop, float64. Undefined for stochastic degradations
(Real-ESRGAN): the dataset then has no ``degrade`` and the column is left out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from srbench.metrics.color import quantize_8bit
from srbench.metrics.planes import check_pair
from srbench.metrics.psnr import psnr


def lr_psnr(
    sr: Tensor,
    lr: Tensor,
    degrade: Callable[[Tensor], Tensor],
    *,
    names=None,
) -> Tensor:
    """PSNR(degrade(Q(sr)), lr) per image, RGB, peak 255, crop 0, float64.

    Args:
        sr: B×C×H×W float in [0, 1] (quantized to 8 bits before degrading, as a saved PNG).
        lr: B×C×h×w float in [0, 1], the LR the method was given.
        degrade: the dataset's LR operator, B×C×H×W [0, 1] → B×C×h×w [0, 1]; it receives
            float32 on the device of ``sr``. Its output is quantized to 8 bits like the LR.
        names: image names for the shape-mismatch message.

    Returns:
        B float64 tensor; ``inf`` where the re-degraded SR equals the LR exactly.
    """
    sr8 = quantize_8bit(sr, torch.float32) / 255.0
    with torch.inference_mode():
        redegraded = degrade(sr8)
    check_pair(redegraded, lr, names=names, what="degrade(SR) and LR")
    return psnr(redegraded, lr.to(redegraded.device), crop=0, space="rgb", data_range=255.0, dtype=torch.float64)
