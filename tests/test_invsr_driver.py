"""InvSR whole-image driver: padding rules, 128/64 Gaussian chopping, crop back (spec §3.4, §7 item 5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from methods.invsr.driver import pad_small, pad_to_multiple, upscale_whole_image


def _nearest(tiles, positions):
    assert len(positions) == tiles.shape[0]
    return F.interpolate(tiles, scale_factor=4, mode="nearest")


@pytest.mark.parametrize("hw", [(37, 53), (100, 128), (128, 128), (130, 257), (300, 200), (5, 140)])
def test_identity_patch_function_gives_nearest_upsampling(hw):
    """Weights cancel: a nearest ×4 patch function returns the nearest-upsampled input exactly."""
    x = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(sum(hw)))
    out, xp = upscale_whole_image(x, _nearest, chop_bs=3)
    torch.testing.assert_close(
        out.float(), F.interpolate(x, scale_factor=4, mode="nearest"), atol=1e-6, rtol=0
    )
    assert min(xp.shape[-2:]) >= 128
    if xp.shape[-2:] != (128, 128):
        assert xp.shape[-2] % 16 == 0 and xp.shape[-1] % 16 == 0


def test_pad_small_rules():
    """``sampler_invsr.py:136-145``: reflect, half before (≤ size−1 per round), top/left pads accumulated."""
    x = torch.arange(37 * 53, dtype=torch.float32).reshape(1, 1, 37, 53)
    y, top, left = pad_small(x, 128)
    # round 1: h 37 → pads (36, 36) → 109; w 53 → (37, 38)→ capped at 52: (37, 38) → 128
    # round 2: h 109 → (9, 10) → 128; w done
    assert (top, left) == (36 + 9, 37)
    assert y.shape[-2:] == (128, 128)
    torch.testing.assert_close(y[..., top : top + 37, left : left + 53], x)
    # a large image is untouched
    z = torch.rand(1, 3, 130, 140)
    assert pad_small(z)[0] is z


def test_pad_to_multiple_bottom_right():
    x = torch.rand(1, 3, 130, 257)
    y = pad_to_multiple(x, 16)
    assert y.shape[-2:] == (144, 272)
    torch.testing.assert_close(y[..., :130, :257], x)
    torch.testing.assert_close(y[..., 130, :257], x[..., 128, :])  # reflect (no edge repeat)


def test_chopping_visits_patch_positions_in_authors_order():
    seen = []

    def fn(tiles, positions):
        seen.extend((p.top, p.left) for p in positions if p.image == 0)
        return F.interpolate(tiles, scale_factor=4, mode="nearest")

    upscale_whole_image(torch.rand(1, 3, 144, 208), fn, chop_bs=8)
    # ImageSpliterTh: starts range(0, L, 64) with overflowing ones set to L-128, row-major
    assert seen == [(t, l) for t in (0, 16) for l in (0, 64, 80)]
