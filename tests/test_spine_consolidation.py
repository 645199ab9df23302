"""One home per concept (issue 17): config composition, the all mode, timing/NFE, records, errors."""

from __future__ import annotations

import json

import pytest
from helpers import bench_config

from srbench.runners import bench

SMALL = ["dataset.images=[coins,camera]", "metrics.lpips_nets=[]", "num_workers=0"]


# ----------------------------------------------------------------------------- composition
@pytest.mark.parametrize("option, name", [("bicubic", "bicubic"), ("ecdp_tiny", "ecdp"), ("toy_nearest", "toy_nearest")])
def test_method_config_is_the_same_with_and_without_hydra_initialised(option, name, toy):
    from hydra import initialize_config_dir

    from srbench.paths import CONF_DIR
    from srbench.runners.compose import method_config

    overrides = ["+method.extra=3", "dataset=set5", "batch_size=2"]  # only method.* entries apply
    outside = method_config(option, overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        inside = method_config(option, overrides)
    assert outside == inside and outside["name"] == name and outside["extra"] == 3
    if option == "ecdp_tiny":  # a preset: its yaml, then the file it inherits from through its defaults
        assert outside["variant"] == "tiny" and outside["sampler"]["method"] == "dopri5"


def test_every_runner_composes_method_configs_through_the_one_composer(toy, monkeypatch):
    from srbench.commands import weights
    from srbench.runners import compose, perf

    calls = []
    real = compose.method_config
    monkeypatch.setattr(compose, "method_config", lambda o, ov=(): calls.append(o) or real(o, ov))
    assert weights.method_config("ecdp_tiny", ["variant=x"])["variant"] == "x"
    perf.compose_config(["targets=[method:bicubic]"])
    assert bench.all_method_configs([])["toy_nearest"]["name"] == "toy_nearest"
    assert calls[:2] == ["ecdp_tiny", "bicubic"] and "toy_nearest" in calls


# ----------------------------------------------------------------------------- all mode
def test_all_mode_builds_dataset_and_suite_once_and_composes_each_method_once(toy, tmp_path, monkeypatch):
    from srbench.runners import compose

    counts = {"dataset": 0, "suite": 0, "compose": []}
    real_dataset, real_suite, real_compose = bench.build_dataset, bench.build_suite, compose.method_config

    def dataset(cfg):
        counts["dataset"] += 1
        return real_dataset(cfg)

    def suite(*a, **k):
        counts["suite"] += 1
        return real_suite(*a, **k)

    monkeypatch.setattr(bench, "build_dataset", dataset)
    monkeypatch.setattr(bench, "build_suite", suite)
    monkeypatch.setattr(compose, "method_config", lambda o, ov=(): counts["compose"].append(o) or real_compose(o, ov))
    with bench_config(["method=all", f"results_dir={tmp_path}", *SMALL]) as cfg:
        results = bench.execute(cfg, overrides=["method=all"])
    ran = {r.method for r in results if r.status == "complete"}
    assert {"bicubic", "toy_nearest"} <= ran and {r.method: r.status for r in results}["toy_weighted"] == "skipped"
    assert counts["dataset"] == 1 and counts["suite"] == 1
    assert sorted(counts["compose"]) == sorted(set(counts["compose"]))  # each method composed once


def test_all_is_a_mode_not_a_method():
    from srbench.method import method_entries
    from srbench.paths import CONF_DIR

    assert not (CONF_DIR / "method" / "all.yaml").exists() and "all" not in method_entries()
    assert bench.without_all(["method=all", "dataset=set5"]) == ["dataset=set5"]
    with pytest.raises(SystemExit):
        bench.without_all(["method=all,bicubic"])


# ----------------------------------------------------------------------------- timing and NFE
def test_nfe_comes_from_the_method_per_call(toy, tmp_path, monkeypatch):
    import toy_sr_plugin

    monkeypatch.setattr(toy_sr_plugin.NearestToy, "nfe_per_image", lambda self: [7, 9], raising=False)
    with bench_config(["method=toy_nearest", "batch_size=2", f"results_dir={tmp_path}",
                       "dataset.images=[camera,astronaut]", "metrics.lpips_nets=[]", "num_workers=0"]) as cfg:
        result = bench.run_bench(cfg)  # two 512² images: one call of two
    import csv

    with open(result.run_dir / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["nfe"]) for r in rows] == [7.0, 9.0] and result.summary["nfe"] == 8.0


def test_bench_perf_and_benchmarks_time_with_srbench_timing():
    import inspect

    from srbench import timing
    from srbench.runners import perf

    assert perf.measure is timing.measure
    src = inspect.getsource(bench.BenchLoop._upscale)
    assert "timed_call" in src and "perf_counter" not in src
    bound = (bench.CONF_DIR.parent / "benchmarks" / "ecdp_compute_bound.py").read_text()
    assert "from srbench.timing import measure" in bound


# ----------------------------------------------------------------------------- records
def test_summary_is_written_once_per_state_change(tmp_path, monkeypatch):
    from srbench.results.store import RunDir

    written = []
    real = RunDir.write_summary
    monkeypatch.setattr(RunDir, "write_summary", lambda self, s: written.append(s["status"]) or real(self, s))
    with bench_config(["method=bicubic", "batch_size=1", f"results_dir={tmp_path}", *SMALL]) as cfg:
        bench.run_bench(cfg)
    assert written == ["running", "complete"]


def test_bench_score_and_report_print_the_one_leaderboard(tmp_path, capsys):
    from srbench.commands.report import load_frame
    from srbench.results import leaderboard

    with bench_config(["method=bicubic", f"results_dir={tmp_path}", *SMALL]) as cfg:
        (result,) = bench.execute(cfg)
    printed = capsys.readouterr().out
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert leaderboard.console(leaderboard.frame([summary])) in printed
    df = load_frame([result.run_dir])
    assert df.loc[0, "psnr"] == summary["metrics"]["psnr"]["mean"] and df.loc[0, "method"] == "bicubic"


# ----------------------------------------------------------------------------- errors
def test_every_user_facing_error_has_the_one_root():
    import srbench.data.base
    import srbench.data.degradations
    import srbench.data.io
    import srbench.method
    import srbench.metrics.planes
    import srbench.metrics.profiles
    import srbench.results.lock
    import srbench.results.store
    import srbench.training
    import srbench.weights
    from methods.ecdp import errors as ecdp_errors
    from srbench.errors import CheckpointError, UserError

    for cls in (srbench.data.base.DatasetError, srbench.data.degradations.DegradationConfigError,
                srbench.data.io.ImageReadError, srbench.method.UnsupportedInput, srbench.method.UnknownMethod,
                srbench.method.DuplicateMethod, srbench.metrics.planes.ShapeMismatchError,
                srbench.metrics.planes.ImageTooSmall, srbench.metrics.profiles.UnknownProfile,
                srbench.results.lock.RunLocked, srbench.results.store.ResultsError, srbench.weights.MissingWeightsError,
                srbench.weights.WeightsFormatError, ecdp_errors.ECDPConfigError):
        assert issubclass(cls, UserError), cls
    # one CheckpointError: the training runner's, ECDP's and the weights loader's are the same class
    assert srbench.training.CheckpointError is ecdp_errors.CheckpointError is CheckpointError
    assert issubclass(srbench.weights.WeightsFormatError, CheckpointError)


def test_methods_import_no_runner_module():
    import ast

    from srbench.paths import CONF_DIR

    methods_dir = CONF_DIR.parent / "methods"
    for path in methods_dir.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("srbench.runners") for n in names), f"{path} imports {names}"
