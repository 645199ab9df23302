"""Colour-shift metric: 0 for SR = bicubic-up LR, monotone in an injected colour cast, skimage ΔE00."""

import itertools

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab

from srbench.metrics.colour_shift import colour_shift, metric_id, upsample_lr


def _lr():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1


def test_zero_when_sr_is_upsampled_lr():
    lr = _lr()
    assert torch.equal(colour_shift(upsample_lr(lr, (64, 64)), lr, 4), torch.zeros(2, dtype=torch.float64))


def test_grows_monotonically_with_a_colour_cast():
    lr = _lr()
    up = upsample_lr(lr, (64, 64))
    cast = torch.tensor([1.0, 0.3, -0.5]).view(1, 3, 1, 1)
    values = [colour_shift((up + c * cast).clamp(0, 1), lr, 4) for c in (0.0, 0.01, 0.03, 0.06, 0.1)]
    for lo, hi in itertools.pairwise(values):
        assert bool((hi > lo).all())


def test_uniform_images_equal_skimage_ciede2000():
    # flat images: the low-pass is the identity, so the value is ΔE00 of the two colours
    a, b = (0.6, 0.4, 0.2), (0.5, 0.45, 0.3)
    sr = torch.tensor(a).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    lr = torch.tensor(b).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    ref = deltaE_ciede2000(rgb2lab(np.array([[a]])), rgb2lab(np.array([[b]])))[0, 0]
    assert abs(colour_shift(sr, lr, 4).item() - ref) < 1e-5
    assert metric_id(4) == "colour_shift@ciede2000-gauss-sigma4"


def test_suite_column():
    from srbench.metrics import build_metrics

    suite = build_metrics("standard", lpips_nets=(), colour=True, scale=4)
    lr = _lr()
    up = upsample_lr(lr, (64, 64))
    out = suite(up, None, lr, scale=4)
    assert torch.equal(out["colour_shift"], torch.zeros(2, dtype=torch.float64))
    assert "colour_shift" in suite.no_reference_columns and suite.higher_is_better["colour_shift"] is False
    assert suite.ids["colour_shift"] == "colour_shift@ciede2000-gauss-sigma4"
