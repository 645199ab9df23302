"""pyiqa bridge (srbench.metrics.iqa): same numbers as pyiqa called directly, one-line missing weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pyiqa = pytest.importorskip("pyiqa")

from conftest import shared_data_dir

from srbench.data.io import read_image
from srbench.metrics import build_metrics
from srbench.metrics.iqa import PyiqaMetric
from srbench.weights import MissingWeightsError


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Empty $SRBENCH_WEIGHTS and torch hub (pyiqa's cache), HF offline."""
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path


def _images(shared=None, n=2, size=96):
    if shared is None:
        return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(7))
    files = sorted((shared / "RealSR_subset" / "HR").glob("*.png"))[:n]
    return torch.stack([read_image(f).tensor[:, :size, :size] for f in files])


def _musiq_direct(x, seed):
    torch.manual_seed(seed)
    return pyiqa.create_metric("musiq", device="cpu", pretrained=False)(x).flatten().double()


def test_musiq_random_init_matches_pyiqa(no_weights):
    x = _images()
    m = PyiqaMetric("musiq", random_init=True, seed=3)
    assert m.higher_is_better and not m.full_reference and not m.stochastic
    assert m.metric_id == f"musiq@pyiqa-{pyiqa.__version__}-random3"
    assert torch.allclose(m(x), _musiq_direct(x, 3), atol=1e-6, rtol=0)
    # a different seed is a different network: the comparison can fail
    assert not torch.allclose(PyiqaMetric("musiq", random_init=True, seed=4)(x), _musiq_direct(x, 3), atol=1e-6)


@pytest.mark.shared_data
def test_musiq_random_init_matches_pyiqa_on_realsr(shared_data, no_weights):
    x = _images(shared_data)
    assert torch.allclose(PyiqaMetric("musiq", random_init=True, seed=0)(x), _musiq_direct(x, 0), atol=1e-6, rtol=0)


def test_missing_weight_file_is_one_line(no_weights):
    with pytest.raises(MissingWeightsError) as err:
        PyiqaMetric("niqe")
    msg = str(err.value)
    assert "\n" not in msg and "niqe_modelparameters.mat" in msg
    assert str(no_weights / "w" / "pyiqa") in msg and str(no_weights / "hub" / "pyiqa") in msg
    assert "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/niqe_modelparameters.mat" in msg


def _niqe_params(path):
    """A NIQE parameter file of the shape pyiqa reads (36-d mean, SPD covariance): not the real one."""
    import scipy.io

    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    scipy.io.savemat(path, {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T / 36 + np.eye(36)})


@pytest.mark.parametrize("where", ["srbench_weights", "pyiqa_cache"])
def test_niqe_finds_file_and_matches_pyiqa(no_weights, where):
    folder = no_weights / ("w" if where == "srbench_weights" else "hub") / "pyiqa"
    folder.mkdir(parents=True)
    _niqe_params(folder / "niqe_modelparameters.mat")
    shared = shared_data_dir() if (shared_data_dir() / "RealSR_subset").is_dir() else None
    x = _images(shared, size=128)
    m = PyiqaMetric("niqe")
    assert m.lower_better and set(m.weights) == {"niqe_modelparameters.mat"}
    from srbench.weights import sha256_file

    assert m.metric_id.endswith(sha256_file(folder / "niqe_modelparameters.mat")[:12])
    ref = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=str(folder / "niqe_modelparameters.mat"))
    assert torch.allclose(m(x), ref(x).flatten().double(), atol=1e-6, rtol=0)


def test_suite_extra_columns_and_missing(no_weights):
    suite = build_metrics("pyiqa-ycbcr", lpips_nets=(), extra=("musiq", "niqe"), extra_random_init=True, seed=1)
    assert "musiq" in suite.columns and "niqe" not in suite.columns
    assert "niqe_modelparameters.mat" in suite.missing["niqe"]
    assert suite.no_reference_columns == ("musiq", "lr_psnr")
    assert suite.higher_is_better["musiq"] is True
    assert suite.ids["musiq"].startswith("musiq@pyiqa-")
    x = _images(size=64)
    with_hr = suite(x, x, scale=None)
    no_hr = suite(x, None, scale=None)
    assert set(with_hr) == {"psnr", "ssim", "musiq"} and set(no_hr) == {"musiq"}
    assert torch.equal(with_hr["musiq"], no_hr["musiq"])


def test_missing_module_names_the_module(monkeypatch):
    # pyiqa's CLIPIQA imports pkg_resources; the line must name it, not claim pyiqa is absent
    from srbench import metrics

    def fail(name, **kw):
        raise ModuleNotFoundError("No module named 'pkg_resources'", name="pkg_resources")

    monkeypatch.setattr(metrics, "PyiqaMetric", fail)
    suite = metrics.build_metrics("standard", lpips_nets=(), extra=("clipiqa",))
    assert "'pkg_resources'" in suite.missing["clipiqa"] and "srbench[iqa]" not in suite.missing["clipiqa"]
