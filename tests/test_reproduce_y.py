"""The y-channel reproduce route (SRCNN/VDSR test script): Y of the HR, grey images as they are, LR kept in
float, SR rounded to uint8, scored on the one channel with s pixels shaved."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from srbench.commands import reproduce_y
from srbench.data.resize import imresize


def _psnr(a, b, s):
    d = (a[s:-s, s:-s] - b[s:-s, s:-s]).astype(np.float64)
    return 10 * np.log10(255.0**2 / np.mean(d**2))


@pytest.fixture
def hr_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "HR"
    d.mkdir()
    base = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    colour = np.asarray(Image.fromarray(base).resize((37, 34), Image.BICUBIC))  # smooth-ish, odd sizes: mod-crop
    Image.fromarray(colour).save(d / "colour.png")
    Image.fromarray(colour[..., 1]).save(d / "grey.png")  # mode L, like Set14 bridge
    return d


def test_grey_image_is_scored_on_its_own_values(hr_dir):
    s = 3
    g = np.asarray(Image.open(hr_dir / "grey.png"))
    plane = reproduce_y.hr_plane(hr_dir / "grey.png", s)
    # mod-cropped, and the 0..255 grey values themselves (not mapped to studio swing 16..235)
    assert plane.shape[-2:] == (33, 36)
    assert torch.equal((plane[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(g[:33, :36].copy()))


def test_colour_image_uses_8bit_studio_y(hr_dir):
    rgb = np.asarray(Image.open(hr_dir / "colour.png")).astype(np.float64)[:32, :36]
    y = np.floor(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255 + 0.5)  # rgb2ycbcr, uint8
    plane = reproduce_y.hr_plane(hr_dir / "colour.png", 4)
    np.testing.assert_array_equal(plane[0, 0].numpy() * 255, y)


def test_route_rounds_only_the_sr_and_scores_the_shaved_plane(hr_dir, tmp_path):
    s = 2
    summary = reproduce_y.run(hr_dir, s, tmp_path / "out")
    assert summary["n_images"] == 2 and summary["route"] == "y-channel"
    rows = (tmp_path / "out" / "per_image.csv").read_text().splitlines()[1:]
    got = {r.split(",")[0]: float(r.split(",")[1]) for r in rows}
    for name in ("colour", "grey"):
        plane = reproduce_y.hr_plane(hr_dir / f"{name}.png", s)
        lr = imresize(plane.float(), 1 / s)  # float LR, never rounded
        sr = np.clip(np.floor(imresize(lr, s).double().numpy()[0, 0] * 255 + 0.5), 0, 255)
        want = _psnr(sr, plane.numpy()[0, 0] * 255, s)
        assert got[name] == pytest.approx(want, abs=1e-5)  # the metric sums in its own order
        # rounding the LR to 8 bits (what the official RGB LR files are) gives a different number
        lr8 = (lr * 255).round() / 255
        sr8 = np.clip(np.floor(imresize(lr8, s).double().numpy()[0, 0] * 255 + 0.5), 0, 255)
        assert abs(_psnr(sr8, plane.numpy()[0, 0] * 255, s) - want) > 1e-6
    assert summary["metrics"]["psnr"]["mean"] == pytest.approx(np.mean(list(got.values())))
