"""methods/identity: nearest-neighbour upsampling, a no-op at x1."""

import pytest
import torch

from methods.identity import Identity
from srbench.method import UnsupportedInput, get_method


def test_nearest_neighbour_repeats_each_pixel():
    m = Identity.from_config({}, torch.device("cpu"), torch.float32)
    lr = torch.rand(2, 3, 5, 7)
    sr = m.upscale(lr, 4, seeds=[0, 1])
    assert sr.shape == (2, 3, 20, 28)
    assert torch.equal(sr[:, :, ::4, ::4], lr) and torch.equal(sr[:, :, 3::4, 2::4], lr)
    ref = torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")
    assert torch.equal(sr, ref)


def test_scale_one_is_a_no_op_and_fractional_refused():
    m = Identity(torch.device("cpu"))
    lr = torch.rand(1, 3, 6, 6)
    assert torch.equal(m.upscale(lr, 1, seeds=[0]), lr)
    with pytest.raises(UnsupportedInput):
        m.upscale(lr, 1.5, seeds=[0])


def test_registered():
    assert get_method("identity") is Identity
