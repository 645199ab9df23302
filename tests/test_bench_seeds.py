"""seeds=K: K draws per image of a stochastic method, per-(image, seed) rows and resume, per-seed
means and the std over seeds in summary.json; a deterministic method runs once and says so."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import bench_config

from srbench.data.base import image_seed
from srbench.results.seeds import seed_for
from srbench.runners import bench
from srbench.runners.bench import run_bench

IMAGES = "dataset.images=[coins,chelsea,camera]"
TOY = ["method=toy_nearest", "+method.noise=0.1", IMAGES, "metrics.lpips_nets=[]", "num_workers=0"]


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "per_image.csv", newline="") as f:
        return list(csv.DictReader(f))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_seed_of_draw_zero_is_the_single_draw_seed_and_draws_differ():
    assert seed_for(7, "coins", 0) == image_seed(7, "coins")
    seeds = {seed_for(7, "coins", k) for k in range(5)} | {seed_for(7, "camera", k) for k in range(5)}
    assert len(seeds) == 10 and all(0 <= s < 2**63 for s in seeds)
    assert seed_for(7, "coins", 2) != seed_for(8, "coins", 2)


def test_three_seeds_give_per_seed_rows_means_and_std(tmp_path, toy):
    with bench_config([*TOY, "seeds=3", "batch_size=2", f"results_dir={tmp_path / 'k3'}"]) as cfg:
        result = run_bench(cfg)
    with bench_config([*TOY, f"results_dir={tmp_path / 'k1'}"]) as cfg:
        single = run_bench(cfg)
    assert result.status == "complete" and result.run_dir.name != single.run_dir.name
    table = rows(result.run_dir)
    assert sorted((r["image"], r["seed_index"]) for r in table) == sorted(
        (n, str(k)) for n in ("coins", "chelsea", "camera") for k in range(3))
    for r in table:
        assert int(r["seed"]) == seed_for(0, r["image"], int(r["seed_index"]))
    # draw 0 is exactly the seeds=1 run
    one = {r["image"]: r for r in rows(single.run_dir)}
    for r in table:
        if r["seed_index"] == "0":
            assert r["seed"] == one[r["image"]]["seed"] and r["psnr"] == one[r["image"]]["psnr"]
    s = summary(result.run_dir)
    blk = s["seeds"]
    assert blk["requested"] == 3 and blk["run"] == 3 and blk["deterministic"] is False
    per_seed = [[float(r["psnr"]) for r in table if r["seed_index"] == str(k)] for k in range(3)]
    means = [statistics.fmean(v) for v in per_seed]
    assert [p["means"]["psnr"] for p in blk["per_seed"]] == pytest.approx(means, abs=1e-12)
    assert [p["n_images"] for p in blk["per_seed"]] == [3, 3, 3]
    assert blk["across_seeds"]["psnr"]["std"] == pytest.approx(statistics.stdev(means), abs=1e-12)
    assert blk["across_seeds"]["psnr"]["std"] > 0 and blk["across_seeds"]["psnr"]["n_seeds"] == 3
    # the CI over images is over each image's mean over its draws
    per_image = [statistics.fmean(float(r["psnr"]) for r in table if r["image"] == n)
                 for n in ("coins", "chelsea", "camera")]
    assert s["n_images"] == 3 and s["metrics"]["psnr"]["n"] == 3
    assert s["metrics"]["psnr"]["mean"] == pytest.approx(statistics.fmean(per_image), abs=1e-12)


class _Interrupt(BaseException):
    pass


def test_killed_seed_run_resumes_without_redoing_finished_pairs(tmp_path, toy, monkeypatch):
    base = [*TOY, "seeds=3", "batch_size=1"]
    with bench_config([*base, f"results_dir={tmp_path / 'full'}"]) as cfg:
        full = run_bench(cfg)

    real = bench.BenchLoop.group
    calls: list[tuple[str, int]] = []

    def counting(self, group, k=0):
        if len(calls) == 4 and die["on"]:  # killed on the 5th (image, seed) pair
            raise _Interrupt()
        calls.extend((s.name, k) for s in group)
        return real(self, group, k)

    die = {"on": True}
    monkeypatch.setattr(bench.BenchLoop, "group", counting)
    with bench_config([*base, f"results_dir={tmp_path / 'resumed'}"]) as cfg:
        with pytest.raises(_Interrupt):
            run_bench(cfg)
        run_dir = next((tmp_path / "resumed" / "samples" / "toy_nearest").iterdir())
        first = list(calls)
        assert len(rows(run_dir)) == 4 and summary(run_dir)["status"] == "failed"
        calls.clear()
        die["on"] = False
        resumed = run_bench(cfg)
    assert resumed.status == "complete"
    assert len(calls) == 5 and not set(calls) & set(first)  # only the pairs that were missing
    assert sorted(first + calls) == sorted((n, k) for n in ("coins", "chelsea", "camera") for k in range(3))
    key = lambda r: (r["image"], r["seed_index"])
    assert sorted((key(r), r["seed"], r["psnr"]) for r in rows(resumed.run_dir)) == sorted(
        (key(r), r["seed"], r["psnr"]) for r in rows(full.run_dir))
    a, b = summary(resumed.run_dir)["seeds"], summary(full.run_dir)["seeds"]
    assert a["across_seeds"] == b["across_seeds"] and a["per_seed"] == b["per_seed"]


def test_deterministic_method_runs_once_and_says_so(tmp_path, capsys):
    common = ["method=bicubic", IMAGES, "metrics.lpips_nets=[]", "num_workers=0", f"results_dir={tmp_path}"]
    with bench_config([*common, "seeds=3"]) as cfg:
        result = run_bench(cfg)
    assert "bicubic is deterministic: seeds=3 runs it once" in capsys.readouterr().err
    table = rows(result.run_dir)
    assert len(table) == 3 and "seed_index" not in table[0]
    blk = summary(result.run_dir)["seeds"]
    assert blk["requested"] == 3 and blk["run"] == 1 and blk["deterministic"] is True
    assert "deterministic" in blk["note"] and "per_seed" not in blk
    with bench_config(common) as cfg:  # the same run as seeds=1: same directory, resumed, nothing redone
        again = run_bench(cfg)
    assert again.run_dir == result.run_dir and "seeds" not in summary(again.run_dir)


def test_ecdp_is_deterministic_only_at_temperature_zero():
    from methods.ecdp.method import ECDP

    assert ECDP.is_stochastic
    assert ECDP.deterministic.fget(SimpleNamespace(cfg=SimpleNamespace(temperature=0.0)))
    assert not ECDP.deterministic.fget(SimpleNamespace(cfg=SimpleNamespace(temperature=0.8)))
