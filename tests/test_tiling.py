"""srbench.nn.tiling: tile layout, blending windows, and tiled == untiled for local functions.

Oracles: OpenCV's ``getGaussianKernel`` (the kernel InvSR's ``ImageSpliterTh`` blends with),
InvSR's start-offset rule written out independently below, untiled evaluation of per-pixel
functions, and a brute-force per-pixel weighted average for non-local functions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srbench.nn.tiling import (
    TilePosition,
    blend_window,
    gaussian_weights_1d,
    linear_ramp_weights_1d,
    plan_tiles,
    tile_starts,
    tiled_apply,
)

SIZES = [(37, 53), (100, 128), (128, 128), (130, 257), (20, 13)]  # not multiples of the tile; one smaller


def invsr_starts(length: int, tile: int, stride: int) -> list[int]:
    """InvSR ``ImageSpliterTh.extract_starts`` (utils/util_image.py @609788c), restated."""
    if length <= tile:
        return [0]
    starts = list(range(0, length, stride))
    starts = [length - tile if s + tile > length else s for s in starts]
    return sorted(set(starts), key=starts.index)


def nearest_up(s: int):
    return lambda t: F.interpolate(t, scale_factor=s, mode="nearest") if s > 1 else t


def pointwise(t: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * t) + t * t  # per pixel: tiling cannot change it


@pytest.mark.parametrize("length", [128, 129, 130, 191, 192, 200, 255, 256, 257, 300, 1000])
@pytest.mark.parametrize("tile,stride", [(128, 64), (128, 128), (128, 96), (64, 48)])
def test_tile_starts_match_invsr(length, tile, stride):
    assert tile_starts(length, tile, stride) == invsr_starts(length, tile, stride)


@pytest.mark.parametrize("length,tile,stride", [(37, 16, 12), (100, 32, 24), (257, 64, 64)])
def test_tiles_cover_image_and_are_full_size(length, tile, stride):
    starts = tile_starts(length, tile, stride)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and s + tile <= length
        covered[s : s + tile] = True
    assert covered.all()
    assert all(b - a <= stride for a, b in itertools.pairwise(starts))  # overlap never below the nominal one


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 64, 127, 128, 511, 512])
def test_gaussian_window_is_opencv_kernel_as_invsr_uses_it(n):
    import cv2  # a core dependency: never skip the oracle
    sigma = 0.3 * ((n - 1) * 0.5 - 1) + 0.8
    if n % 2 == 0:
        ref = cv2.getGaussianKernel(n + 1, sigma, ktype=cv2.CV_64F)[1:, 0]
    else:
        ref = cv2.getGaussianKernel(n, sigma, ktype=cv2.CV_64F)[:, 0]
    np.testing.assert_allclose(gaussian_weights_1d(n).numpy(), ref, rtol=1e-12, atol=1e-15)


def test_linear_ramps_of_neighbouring_tiles_sum_to_one():
    n, ramp = 24, 6
    w = linear_ramp_weights_1d(n, ramp)
    assert (w > 0).all() and w.max() == 1
    # two tiles overlapping by exactly `ramp` pixels: the overlapped weights add to 1
    torch.testing.assert_close(w[-ramp:] + w[:ramp], torch.ones(ramp, dtype=w.dtype))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("overlap", [0, 8])
@pytest.mark.parametrize("blend", ["gaussian", "linear", "constant"])
@pytest.mark.parametrize("scale", [1, 4])
def test_tiled_equals_untiled_for_local_functions(size, overlap, blend, scale):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, *size, generator=g)
    fn = nearest_up(scale) if scale > 1 else pointwise
    out = tiled_apply(fn, x, tile=32, overlap=overlap, scale=scale, blend=blend, tile_batch_size=3)
    assert out.shape == (2, 3, size[0] * scale, size[1] * scale)
    torch.testing.assert_close(out, fn(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("blend", ["gaussian", "linear", "constant"])
def test_normalised_weights_sum_to_one(blend):
    x = torch.rand(1, 1, 45, 70)
    out = tiled_apply(
        lambda t: torch.ones(t.shape[0], 1, t.shape[2] * 2, t.shape[3] * 2),
        x,
        tile=16,
        overlap=5,
        scale=2,
        blend=blend,
        accum_dtype=torch.float64,
    )
    torch.testing.assert_close(out, torch.ones_like(out), rtol=0, atol=1e-12)


def brute_force_blend(fn, x, tile, stride, window):
    """Per output pixel: Σ_k w_k fn(tile_k) / Σ_k w_k, with one fn call per tile (the definition)."""
    _, _, h, w = x.shape
    num = torch.zeros_like(x, dtype=torch.float64)
    den = torch.zeros(h, w, dtype=torch.float64)
    for t in invsr_starts(h, tile, stride):
        for l in invsr_starts(w, tile, stride):
            y = fn(x[:, :, t : t + tile, l : l + tile]).double()
            for i in range(tile):
                for j in range(tile):
                    num[:, :, t + i, l + j] += window[i, j] * y[:, :, i, j]
                    den[t + i, l + j] += window[i, j]
    return num / den


@pytest.mark.parametrize("blend", ["gaussian", "linear"])
def test_blend_of_non_local_function_matches_definition(blend):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1).double()

    def fn(t):  # non-local and tile-dependent, so the blend weights matter
        return conv(t) + t.mean(dim=(1, 2, 3), keepdim=True)

    x = torch.rand(1, 3, 29, 23, dtype=torch.float64)
    tile, stride = 12, 8
    window = blend_window(blend, tile, tile, ramp=(tile - stride, tile - stride))
    with torch.no_grad():
        ref = brute_force_blend(fn, x, tile, stride, window)
        out = tiled_apply(fn, x, tile=tile, stride=stride, blend=blend, accum_dtype=torch.float64)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_tile_batch_size_does_not_change_the_result():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    fn = lambda t: F.interpolate(conv(t), scale_factor=2, mode="nearest")
    x = torch.rand(2, 3, 50, 41)
    outs = [tiled_apply(fn, x, tile=16, overlap=6, scale=2, tile_batch_size=b) for b in (1, 2, 5, 100)]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=0, atol=1e-6)


def test_positions_identify_image_and_tile():
    x = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 1, 20, 30).contiguous()
    x = x + torch.arange(30.0).view(1, 1, 1, 30) * 10 + torch.arange(20.0).view(1, 1, 20, 1) * 1000
    seen: list[TilePosition] = []

    def fn(tiles, positions):
        for row, p in zip(tiles, positions, strict=True):
            # the row holds image p.image at (p.top, p.left)
            assert row[0, 0, 0] == x[p.image, 0, p.top, p.left]
        seen.extend(positions)
        return tiles

    tiled_apply(fn, x, tile=8, overlap=2, tile_batch_size=4, with_positions=True)
    grid = plan_tiles(20, 30, 8, overlap=2)
    assert sorted(seen) == sorted(TilePosition(i, t, l) for t, l in grid for i in range(2))


def test_fractional_scale_for_encoders():
    x = torch.rand(1, 3, 64, 80)
    down = lambda t: F.avg_pool2d(t, 8)
    out = tiled_apply(down, x, tile=32, stride=16, scale=1 / 8, blend="constant")
    torch.testing.assert_close(out, down(x), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="whole number of pixels"):
        tiled_apply(down, torch.rand(1, 3, 60, 80), tile=32, stride=16, scale=1 / 8)


def test_bad_tile_function_shape_is_one_clear_error():
    with pytest.raises(ValueError, match=r"tile function returned shape"):
        tiled_apply(lambda t: t, torch.rand(1, 3, 40, 40), tile=16, scale=2)


def test_tile_outputs_are_not_kept():
    """Memory stays flat: when fn runs, no earlier batch of tile outputs is still alive."""
    import weakref

    earlier: list[weakref.ref] = []

    def fn(t):
        assert all(r() is None for r in earlier), "an earlier tile output is still referenced"
        y = F.interpolate(t, scale_factor=2, mode="nearest")
        earlier.append(weakref.ref(y))
        return y

    x = torch.rand(1, 3, 40, 50)
    out = tiled_apply(fn, x, tile=16, overlap=4, scale=2, tile_batch_size=2)
    assert len(earlier) > 3
    torch.testing.assert_close(out, F.interpolate(x, scale_factor=2, mode="nearest"), rtol=0, atol=1e-6)
