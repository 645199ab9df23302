"""Shared fixtures. Tests run on CPU, offline, without ../shared (those needing it skip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$SRBENCH_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("SRBENCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real-image folder; skips the test when it is absent."""
    path = shared_data_dir()
    if not (path / "Set5").is_dir():
        pytest.skip(f"shared data not found at {path} (set SRBENCH_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's caches and weights."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(root / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP oversubscription on a shared 2-core machine.

    Use per module: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def toy_site(tmp_path) -> Path:
    """A throw-away third-party plugin distribution (tests/helpers.py: toy_nearest, toy_weighted)."""
    from helpers import TOY_PLUGIN_SOURCE, make_plugin

    return make_plugin(tmp_path / "site", "toy-sr-plugin", "toy_sr_plugin",
                       {"toy_nearest": "toy_sr_plugin:NearestToy", "toy_weighted": "toy_sr_plugin:NeedsWeights"},
                       TOY_PLUGIN_SOURCE)


@pytest.fixture
def toy(toy_site, monkeypatch) -> Path:
    """The toy plugin, importable in this process (as if pip-installed)."""
    monkeypatch.syspath_prepend(str(toy_site))
    return toy_site
