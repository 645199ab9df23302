"""FID / patch-FID (srbench.metrics.fid): the Fréchet distance against closed forms, the in-memory
features against pyiqa's own folder-vs-folder FID at identical (random) Inception weights, the N
guard, the seeded crop grid, and the bench run's summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from srbench.metrics import build_metrics
from srbench.metrics.color import quantize_8bit
from srbench.metrics.fid import (
    FEATURE_DIM,
    INCEPTION_FILE,
    FIDCollector,
    FIDSettings,
    InceptionFeatures,
    _no_pretrained_load,
    fid_from_features,
    frechet_distance,
    guarded_fid,
    patch_grid,
)
from srbench.metrics.iqa import offline_downloads
from srbench.weights import MissingWeightsError


# ----------------------------------------------------------------------------- the distance
def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_two_gaussians_closed_form_diagonal():
    # commuting (diagonal) covariances: Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) = Σ_i (√a_i − √b_i)²
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.2, 3, 6), rng.uniform(0.2, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # 2-D with equal means: (√4 − √9)² + (√1 − √1)²  (1-D is not used: pyiqa's sqrtm(…, disp=False)
    # unpacking fails on a 1×1 matrix with scipy 1.17, whose scalar path returns a bare array)
    assert frechet_distance(np.zeros(2), np.diag([4.0, 1.0]), np.zeros(2), np.diag([9.0, 1.0])) \
        == pytest.approx(1.0, rel=1e-12)


def test_frechet_full_covariances_against_symmetric_sqrtm_oracle():
    # Tr (Σ1Σ2)^½ = Tr (Σ1^½ Σ2 Σ1^½)^½ — the symmetric form, computed with scipy sqrtm independently
    rng = np.random.default_rng(1)
    s1, s2 = _spd(rng, 8), _spd(rng, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    r1 = linalg.sqrtm(s1).real
    oracle = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(r1 @ s2 @ r1).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(oracle, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-8)


def test_fid_of_shifted_features_is_the_squared_shift():
    # injected features: Y = X + δ has the same covariance, so FID = ||δ||²
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5))
    delta = np.array([0.5, -1.0, 0.0, 2.0, 0.25])
    assert fid_from_features(x, x + delta) == pytest.approx(float(delta @ delta), rel=1e-6)


# ----------------------------------------------------------------------------- the N guard
def test_guard_marks_low_n_and_rank_deficient_and_refuses_below_two():
    rng = np.random.default_rng(3)
    small = guarded_fid(rng.normal(size=(8, 16)), rng.normal(size=(8, 16)), what="fid", metric_id="x")
    assert small["n"] == 8 and small["low_n"] and small["rank_deficient"] and small["value"] is not None
    assert "N=8" in small["note"] and "(< 1000)" in small["note"] and "rank ≤ N−1" in small["note"]
    enough = guarded_fid(rng.normal(size=(1200, 16)), rng.normal(size=(1200, 16)), what="fid", metric_id="x")
    assert not enough["low_n"] and not enough["rank_deficient"] and "note" not in enough
    # N over the threshold but not over the feature dimension: not low, still rank-deficient → a note
    mid = guarded_fid(rng.normal(size=(12, 20)), rng.normal(size=(12, 20)), what="fid", metric_id="x", min_n=10)
    assert not mid["low_n"] and mid["rank_deficient"] and "rank ≤ N−1" in mid["note"]
    one = guarded_fid(rng.normal(size=(1, 16)), rng.normal(size=(1, 16)), what="fid", metric_id="x")
    assert one["value"] is None and "at least 2" in one["note"]


# ----------------------------------------------------------------------------- crop grid
def test_patch_grid_is_seeded_non_overlapping_and_inside():
    g = patch_grid(300, 451, 128, seed=0, name="chelsea")
    assert g == patch_grid(300, 451, 128, seed=0, name="chelsea")  # same grid every call
    assert len(g) == 2 * 3
    ys, xs = sorted({t for t, _ in g}), sorted({left for _, left in g})
    assert np.all(np.diff(ys) == 128) and np.all(np.diff(xs) == 128)  # tiles abut, never overlap
    assert ys[0] >= 0 and ys[-1] + 128 <= 300 and xs[0] >= 0 and xs[-1] + 128 <= 451
    others = {tuple(patch_grid(300, 451, 128, seed=s, name="chelsea")[0]) for s in range(8)}
    assert len(others) > 1  # the offset is drawn, not fixed at (0, 0)
    assert patch_grid(100, 451, 128, seed=0, name="x") == []


# ----------------------------------------------------------------------------- features vs pyiqa
@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A random FID-Inception state dict saved as pyiqa's file name (kaiming-normal convs, so the
    pool features are O(1), not the ~1e-7 of torchvision's untrained init)."""
    from pyiqa.archs.inception import fid_inception_v3

    with _no_pretrained_load(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = fid_inception_v3()
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    root = tmp_path_factory.mktemp("weights")
    (root / "pyiqa").mkdir()
    torch.save(net.state_dict(), root / "pyiqa" / INCEPTION_FILE)
    return root


def _png_dir(path, images):
    path.mkdir()
    for i, im in enumerate(images):
        arr = quantize_8bit(im).to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(path / f"{i:02d}.png")
    return path


def _feature_parity(inception_file, tmp_path, monkeypatch):
    """Our features of 3 SR / 3 HR images vs pyiqa's get_folder_features on their PNGs, same random file."""
    import pyiqa
    from pyiqa.archs.fid_arch import get_folder_features

    monkeypatch.setenv("SRBENCH_WEIGHTS", str(inception_file))
    g = torch.Generator().manual_seed(5)
    sr, hr = torch.rand(3, 3, 48, 64, generator=g), torch.rand(3, 3, 48, 64, generator=g) ** 2
    ours = InceptionFeatures("cpu")
    assert ours.metric_id.endswith(ours.weights[INCEPTION_FILE][:12])
    f_sr, f_hr = ours(sr), ours(hr)
    assert f_sr.shape == (3, FEATURE_DIM) and np.abs(f_sr).mean() > 1e-3

    d_sr, d_hr = _png_dir(tmp_path / "sr", sr), _png_dir(tmp_path / "hr", hr)
    with offline_downloads({}):  # pyiqa loads the same saved random file
        theirs = pyiqa.create_metric("fid", device="cpu")
    their_feats = get_folder_features(str(d_sr), theirs.net.model, num_workers=0, device=torch.device("cpu"),
                                      mode="clean", verbose=False)
    np.testing.assert_allclose(f_sr, their_feats, rtol=1e-5, atol=1e-6)
    return (f_sr, f_hr), theirs, (d_sr, d_hr)


def test_features_equal_pyiqa_folder_features(inception_file, tmp_path, monkeypatch):
    (f_sr, f_hr), _, _ = _feature_parity(inception_file, tmp_path, monkeypatch)
    assert not np.allclose(f_sr, f_hr)  # different images, different features: the comparison can fail


@pytest.mark.slow  # two scipy sqrtm of 2048² matrices: 183 s on a loaded 2-core machine
def test_fid_value_equals_pyiqa_folder_vs_folder(inception_file, tmp_path, monkeypatch):
    (f_sr, f_hr), theirs, (d_sr, d_hr) = _feature_parity(inception_file, tmp_path, monkeypatch)
    their_fid = float(theirs(str(d_sr), str(d_hr), num_workers=0, verbose=False))
    assert fid_from_features(f_sr, f_hr) == pytest.approx(their_fid, rel=1e-4)
    assert their_fid > 0


def test_missing_inception_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError) as err:
        InceptionFeatures("cpu")
    msg = str(err.value)
    assert "\n" not in msg and INCEPTION_FILE in msg and str(tmp_path / "pyiqa") in msg and "https://" in msg
    suite = build_metrics("standard", lpips_nets=(), fid=True, patch_fid=64)
    assert set(suite.missing) == {"fid", "patch_fid"} and suite.fid_collector(tmp_path) is None


# ----------------------------------------------------------------------------- collection and the run
@pytest.fixture
def fast_frechet(monkeypatch):
    """The plumbing tests below do not need scipy's sqrtm of a 2048² matrix (about a minute per call on
    a loaded 2-core machine): a stand-in ||μ1 − μ2||² + |Tr Σ1 − Tr Σ2|, still 0 only for equal sets.
    The distance itself is tested above against closed forms and pyiqa."""
    import srbench.metrics.fid as fid_mod

    monkeypatch.setattr(fid_mod, "frechet_distance", lambda m1, s1, m2, s2: float(
        np.sum((m1 - m2) ** 2) + abs(np.trace(s1) - np.trace(s2))))


class TinyFeatures:
    """A stand-in extractor (per-channel mean, std, min, max: 12-d), so this test stores and reads features
    without 299² Inception forwards."""

    metric_id = "tiny"

    def __call__(self, images):
        x = images.flatten(2)
        return torch.cat([x.mean(2), x.std(2), x.amin(2), x.amax(2)], 1).numpy()


def test_collector_resumes_and_grid_is_the_same_in_two_runs(tmp_path):
    ext = TinyFeatures()
    settings = FIDSettings(fid=True, patch_size=32, seed=1)
    g = torch.Generator().manual_seed(0)
    sr, hr = torch.rand(3, 3, 40, 70, generator=g), torch.rand(3, 3, 40, 70, generator=g)
    names = ["a", "b", "c"]
    one = FIDCollector(ext, settings, tmp_path / "one")
    one.add(names[:2], sr[:2], hr[:2])
    one.add(names[2:], sr[2:], hr[2:])  # a second batch (or a resumed run) adds its own file
    res = FIDCollector(ext, settings, tmp_path / "one").result(names)
    assert res["fid"]["n"] == 3 and res["fid"]["low_n"] and "N=3" in res["fid"]["note"]
    assert res["patch_fid"]["n"] == 3 * 2 and res["patch_fid"]["crop_grid"]["size"] == 32
    two = FIDCollector(ext, settings, tmp_path / "two")
    two.add(names, sr, hr)
    res2 = two.result(names)
    assert res2["patch_fid"]["crop_grid"] == res["patch_fid"]["crop_grid"]
    assert res2["fid"]["value"] == pytest.approx(res["fid"]["value"], rel=1e-6)
    assert one.result(names[:2])["fid"]["n"] == 2  # only the run's scored images count


def test_bench_summary_has_fid_with_n_guard_and_same_grid(inception_file, tmp_path, monkeypatch, capsys,
                                                           fast_frechet, toy):
    """samples (2 images here, for time): FID and patch-FID in summary.json, not in per_image.csv; the
    low-N marker in the table and the sentence in the summary; the same crop grid in two runs (of two
    methods); with seeds=2 the FID is over draw 0 (N = images, not images × draws)."""
    from helpers import bench_config

    from srbench.results.leaderboard import console, frame
    from srbench.runners.bench import run_bench

    monkeypatch.setenv("SRBENCH_WEIGHTS", str(inception_file))
    base = ["dataset.images=[coins,chelsea]", "metrics.lpips_nets=[]", "num_workers=0",
            "metrics.fid=true", "metrics.patch_fid=128"]
    results = []
    for run, method in (("a", ["method=bicubic"]), ("b", ["method=toy_nearest", "+method.noise=0.1", "seeds=2"])):
        with bench_config(base + method + [f"results_dir={tmp_path / run}"]) as cfg:
            results.append(run_bench(cfg))
    s1, s2 = (json.loads((r.run_dir / "summary.json").read_text()) for r in results)
    fid, pfid = s1["dataset_metrics"]["fid"], s1["dataset_metrics"]["patch_fid"]
    assert fid["n"] == 2 and fid["low_n"] and fid["value"] is not None and fid["id"].startswith("fid@pyiqa-")
    assert pfid["n"] == 2 * 3 + 2 * 3 and pfid["n_images"] == 2  # coins 300×384, chelsea 300×448: 2×3 tiles each
    assert pfid["crop_grid"] == s2["dataset_metrics"]["patch_fid"]["crop_grid"]
    assert s2["dataset_metrics"]["fid"]["n"] == 2 and s2["dataset_metrics"]["patch_fid"]["n"] == 12  # draw 0
    assert any("N=2" in n for n in s1["notes"])
    assert "fid" not in (results[0].run_dir / "per_image.csv").read_text().splitlines()[0].split(",")
    table = console(frame([s1]))
    assert "FID" in table and "low N" in table
    assert "[srbench] fid over N=2" in capsys.readouterr().err
