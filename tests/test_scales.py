"""Non-integer scales end to end: the HR crop rule, MATLAB bicubic at ×3.5, datasets, the runner.

Oracles: the float64 loop oracle of ``test_resize`` (written from MATLAB's ``imresize``
definition) and, when the authors' checkout is present, BasicSR's ``matlab_functions.imresize``
as vendored in Ree1s/IDM (an independent port; float32).
"""

from __future__ import annotations

import importlib.util
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import bench_config
from PIL import Image
from test_resize import oracle_imresize, round_half_away_clip

from srbench.data.base import DatasetError
from srbench.data.folder import FolderDataset
from srbench.data.paired import MatlabBicubicLR
from srbench.data.resize import imresize
from srbench.data.samples import SamplesDataset
from srbench.data.scales import hr_multiple, lr_size, modcrop_to_scale, parse_scale, scale_fraction
from srbench.metrics.planes import crop_for_scale
from srbench.runners.bench import run_bench

AUTHORS_MATLAB = Path(__file__).parents[1] / ".authors" / "basicsr" / "utils" / "matlab_functions.py"


def test_scale_fraction_and_hr_multiple() -> None:
    assert scale_fraction(3.5) == Fraction(7, 2) and hr_multiple(3.5) == 7
    assert hr_multiple(2.5) == 5 and hr_multiple(4) == 4 and hr_multiple(2.25) == 9
    assert scale_fraction(2.4) == Fraction(12, 5)
    with pytest.raises(DatasetError, match="not a simple fraction"):
        scale_fraction(math.pi)
    with pytest.raises(DatasetError, match="positive"):
        scale_fraction(-2)
    assert parse_scale(4.0, "d") == 4 and isinstance(parse_scale(4.0, "d"), int)
    assert parse_scale(3.5, "d") == 3.5 and isinstance(parse_scale(3.5, "d"), float)
    with pytest.raises(DatasetError, match="d: scale must be ≥ 1.5"):
        parse_scale(1.25, "d", minimum=1.5)


def test_modcrop_to_scale_gives_exact_lr_size() -> None:
    x = torch.zeros(3, 100, 37)
    y = modcrop_to_scale(x, 3.5)
    assert y.shape == (3, 98, 35)  # multiples of 7
    assert lr_size((98, 35), 3.5) == (28, 10) and 28 * 3.5 == 98 and 10 * 3.5 == 35
    assert modcrop_to_scale(x, 4).shape == (3, 100, 36)
    with pytest.raises(ValueError, match="not a multiple of 7"):
        lr_size((100, 35), 3.5)


def test_border_crop_is_ceil_of_scale() -> None:
    assert crop_for_scale(3.5) == 4 and crop_for_scale(2.5) == 3 and crop_for_scale(4) == 4


@pytest.mark.parametrize("scale", [3.5, 2.5, 2.25])
def test_matlab_lr_at_non_integer_scale_matches_loop_oracle(scale: float) -> None:
    """uint8-MATLAB LR at 1/scale (per-pass rounding) equals the loop oracle bit for bit."""
    m = hr_multiple(scale)
    rng = np.random.default_rng(3)
    hr = np.round(rng.random((3, 4 * m, 3 * m)) * 255)
    out_hw = lr_size(hr.shape[-2:], scale)
    expected = oracle_imresize(hr, out_hw, (1 / scale, 1 / scale), uint8=True)
    got = MatlabBicubicLR(scale).operator(torch.from_numpy(hr / 255))
    assert tuple(got.shape) == (3, *out_hw)
    assert np.array_equal(np.round(got.numpy() * 255), expected)
    # and the scale= path of imresize (MATLAB's ceil(n/s) length) lands on the same size and values
    assert torch.equal(imresize(torch.from_numpy(hr / 255), 1 / scale, quantize=True), got)


def test_round_half_away_is_what_the_oracle_uses() -> None:  # guards the oracle itself
    assert list(round_half_away_clip(np.array([0.5, 1.5, 2.49, 255.6, -1.0]))) == [1, 2, 2, 255, 0]


@pytest.mark.parametrize("scale", [1 / 3.5, 3.5])
def test_float_resize_at_non_integer_scale_matches_basicsr(scale: float) -> None:
    """Independent port: BasicSR's ``imresize`` (vendored in Ree1s/IDM) at ×(1/3.5) and ×3.5."""
    if not AUTHORS_MATLAB.is_file():
        pytest.skip(f"authors' checkout absent ({AUTHORS_MATLAB})")
    spec = importlib.util.spec_from_file_location("authors_matlab_functions", AUTHORS_MATLAB)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    img = torch.rand(3, 35, 21, generator=torch.Generator().manual_seed(0))
    theirs = mod.imresize(img.clone(), scale)
    ours = imresize(img.double(), scale).float()
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() < 1e-5  # their float32 arithmetic; a wrong tap or weight is ≥ 1e-3


def test_samples_at_3_5() -> None:
    ds = SamplesDataset(scale=3.5, images=["coins", "astronaut"])
    assert ds.scale == 3.5 and ds.describe()["protocol"] == "samples-x3.5-matlab-bicubic"
    for i in range(2):
        s = ds[i]
        h, w = s.hr.shape[-2:]
        assert h % 7 == 0 and w % 7 == 0 and s.scale == 3.5
        assert tuple(s.lr.shape[-2:]) == (h * 2 // 7, w * 2 // 7)
        assert round(s.lr.shape[-2] * 3.5) == h and round(s.lr.shape[-1] * 3.5) == w
        assert torch.equal(s.lr, imresize(s.hr, size=tuple(s.lr.shape[-2:]), quantize=True))


def _png(path: Path, h: int, w: int, seed: int = 0) -> None:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def test_folder_hr_only_at_3_5_and_given_lr_refused(tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    _png(hr / "a.png", 50, 66)
    s = FolderDataset(hr_dir=str(hr), scale=3.5)[0]
    assert s.hr.shape == (3, 49, 63) and s.lr.shape == (3, 14, 18) and s.meta["hr_modcropped"]
    lr = tmp_path / "lr"
    lr.mkdir()
    _png(lr / "a.png", 14, 18)
    with pytest.raises(DatasetError, match="need an integer scale"):
        FolderDataset(hr_dir=str(hr), lr_dir=str(lr), scale=3.5)
    with pytest.raises(DatasetError, match="not a simple fraction"):
        FolderDataset(hr_dir=str(hr), scale=math.pi)


def test_set5_official_lr_at_3_5_says_use_matlab(tmp_path: Path) -> None:
    from srbench.data.benchmarks import Set5

    with pytest.raises(DatasetError, match="lr_source=matlab"):
        Set5(root=tmp_path, scale=3.5)


def test_runner_at_3_5_stores_float_scale_and_crop_4(tmp_path: Path) -> None:
    with bench_config(["method=bicubic", f"results_dir={tmp_path}", "dataset.scale=3.5", "dataset.images=[coins]",
                       "metrics.lpips_nets=[]", "num_workers=0"]) as cfg:
        result = run_bench(cfg)
    assert result.status == "complete" and result.run_dir.name.startswith("x3.5-")
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["scale"] == 3.5 and isinstance(summary["scale"], float)
    assert summary["metric_ids"]["psnr"] == "psnr@basicsr-y-crop4"
    assert 20 < summary["metrics"]["psnr"]["mean"] < 40


def test_integer_only_method_refuses_3_5(tmp_path: Path) -> None:
    """A ×4/×8-only method fails with one clear line before any image is upscaled."""
    from srbench.errors import UserError

    with (bench_config(["method=ecdp_tiny", f"results_dir={tmp_path}", "dataset.scale=3.5", "dataset.images=[coins]",
                        "metrics.lpips_nets=[]", "num_workers=0"]) as cfg,
          pytest.raises(UserError, match=r"does not support scale x3\.5 \(supported: \[4\.0, 8\.0\]\)")):
        run_bench(cfg)


def test_report_draws_psnr_vs_scale(tmp_path: Path) -> None:
    """A sweep over ×3.5 and ×4 gives one PSNR-vs-scale plot with the float scale on its axis."""
    from srbench.report import pages, runs

    for s in (3.5, 4):
        with bench_config(["method=bicubic", f"results_dir={tmp_path / 'res'}", f"dataset.scale={s}",
                           "dataset.images=[coins]", "metrics.lpips_nets=[]", "num_workers=0"]) as cfg:
            run_bench(cfg)
    found = runs.find([tmp_path / "res"])
    assert sorted(r.summary["scale"] for r in found) == [3.5, 4]
    written = pages.write(found, tmp_path / "report")
    assert "PSNR vs scale" in (tmp_path / "report" / "index.html").read_text()
    assert any(p.name.endswith("psnr-scale.png") and p.stat().st_size > 0 for p in written)
