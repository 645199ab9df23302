"""conf/dataset/*.yaml ↔ dataset classes: every key is a constructor argument, and a composed
bench config builds the dataset from a ``srbench data prepare`` layout."""

from __future__ import annotations

import importlib
import inspect

import pytest
from omegaconf import OmegaConf

from srbench.data import base
from srbench.data.benchmarks import BUILTIN
from srbench.data.prepare import prepare
from srbench.runners.compose import CONF_DIR


def _cls(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_config_keys_are_constructor_arguments(name):
    cfg = OmegaConf.load(CONF_DIR / "dataset" / f"{name}.yaml")
    assert cfg.name == name
    params = inspect.signature(_cls(BUILTIN[name]).__init__).parameters
    unknown = [k for k in cfg if k != "name" and k not in params]
    assert not unknown, f"conf/dataset/{name}.yaml keys not accepted by {BUILTIN[name]}: {unknown}"
    required = [p for p, v in params.items() if p != "self" and v.default is inspect.Parameter.empty]
    keys = set(cfg)  # iterating keeps keys whose value is ??? (MISSING); `in cfg` would not
    assert all(r in keys for r in required), f"{name}: config lacks required {required}"


def test_composed_config_builds_a_prepared_dataset(shared_data, tmp_path, monkeypatch):
    from helpers import bench_config

    monkeypatch.setenv("SRBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(base, "BUILTIN_DATASETS", {**base.BUILTIN_DATASETS, **BUILTIN})
    prepare("set14", shared_data / "Set14")  # default root: $SRBENCH_DATA
    with bench_config(["method=bicubic", "dataset=set14", "dataset.scale=3"]) as cfg:
        ds = base.build_dataset(cfg["dataset"])
    assert ds.name == "set14" and ds.scale == 3 and len(ds) == 14
    assert ds.cache is None  # official LR: nothing generated
    s = ds[0]
    assert s.hr.shape[-2:] == (3 * s.lr.shape[-2], 3 * s.lr.shape[-1])
    info = ds.describe()
    assert info["protocol"] == "set14-x3-official-lr" and len(info["hr_sizes"]) == 14
    assert base.lr_operator(ds) is not None  # MATLAB bicubic: LR-PSNR is computed
