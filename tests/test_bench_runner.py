"""The bench runner: results store, resume, batching, bad input, LR-only folders, `all` mode."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import bench_config, run_cli
from PIL import Image

from srbench.runners import bench
from srbench.runners.bench import execute, run_bench

SMALL = ["dataset.images=[coins,chelsea,camera]", "metrics.lpips_nets=[]", "num_workers=0"]
SCORE_COLUMNS = ["image", "seed", "status", "psnr", "ssim", "lr_psnr"]


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "per_image.csv", newline="") as f:
        return list(csv.DictReader(f))


def scores(run_dir: Path) -> list[tuple]:
    """Identity columns as strings, metric values rounded to 1e-12 (conv2d sums may differ in the last ulp)."""
    return [tuple(r[c] if c in ("image", "seed", "status") else round(float(r[c]), 12) for c in SCORE_COLUMNS)
            for r in rows(run_dir)]




def test_bicubic_run_writes_results_store(tmp_path):
    with bench_config(["method=bicubic", f"results_dir={tmp_path}", *SMALL]) as cfg:
        result = run_bench(cfg)
    assert result.status == "complete"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert summary["n_images"] == 3 and summary["n_total"] == 3 and summary["profile"] == "standard"
    assert summary["metric_ids"]["psnr"].startswith("psnr@")
    assert {"sha", "dirty"} <= set(manifest["git"]) and manifest["libraries"]["torch"]
    assert manifest["config"]["method"]["name"] == "bicubic" and manifest["dataset"]["num_images"] == 3
    table = rows(result.run_dir)
    assert [r["image"] for r in table] == ["coins", "chelsea", "camera"]
    for r in table:
        assert r["status"] == "ok" and r["profile"] == "standard"
        assert 15 < float(r["psnr"]) < 45 and 0 < float(r["ssim"]) < 1 and float(r["time_ms"]) > 0
        # LR consistency of MATLAB bicubic up then down is high but not exact
        assert float(r["lr_psnr"]) > 30
    assert sorted(p.name for p in (result.run_dir / "samples").iterdir()) == ["camera.png", "chelsea.png", "coins.png"]
    mean = np.mean([float(r["psnr"]) for r in table])
    assert summary["metrics"]["psnr"]["mean"] == pytest.approx(mean, abs=1e-9)


def test_metrics_equal_direct_computation(tmp_path):
    """The runner's row for an image equals scoring bicubic(LR) against HR by hand."""
    from srbench.data.resize import imresize
    from srbench.data.samples import SamplesDataset
    from srbench.metrics import build_metrics

    with bench_config(["method=bicubic", f"results_dir={tmp_path}", "dataset.images=[chelsea]",
                       "metrics.lpips_nets=[]", "num_workers=0"]) as cfg:
        result = run_bench(cfg)
    sample = SamplesDataset(scale=4, images=["chelsea"])[0]
    sr = imresize(sample.lr[None], 4, quantize=True).clamp(0, 1)
    suite = build_metrics("standard", lpips_nets=())
    direct = suite(sr, sample.hr[None], sample.lr[None], scale=4, degrade=SamplesDataset(scale=4).degrade)
    row = next(r for r in rows(result.run_dir) if r["image"] == "chelsea")
    assert float(row["psnr"]) == pytest.approx(float(direct["psnr"][0]), abs=1e-9)
    assert float(row["ssim"]) == pytest.approx(float(direct["ssim"][0]), abs=1e-9)


def test_batch_size_does_not_change_results(tmp_path, toy):
    outs = []
    for bs in (1, 3):
        with bench_config(["method=toy_nearest", "+method.noise=0.05", f"batch_size={bs}",
                           f"results_dir={tmp_path / str(bs)}", "dataset.images=[coins,astronaut,camera]",
                           "metrics.lpips_nets=[]", "num_workers=0"]) as cfg:
            outs.append(scores(run_bench(cfg).run_dir))
    assert outs[0] == outs[1]


class _Interrupt(BaseException):
    pass


def test_resume_after_kill_equals_uninterrupted_run(tmp_path, toy, monkeypatch):
    overrides = ["method=toy_nearest", "+method.noise=0.05", "batch_size=1", "metrics.lpips_nets=[]",
                 "dataset.images=[coins,chelsea,camera,coffee]", "num_workers=0"]
    with bench_config(overrides + [f"results_dir={tmp_path / 'full'}"]) as cfg:
        full = run_bench(cfg)

    calls = {"n": 0}
    real = bench.BenchLoop.group

    def dying(self, group, *draw):
        if calls["n"] == 2:  # killed while processing the 3rd image
            raise _Interrupt()
        calls["n"] += 1
        return real(self, group, *draw)

    monkeypatch.setattr(bench.BenchLoop, "group", dying)
    with bench_config(overrides + [f"results_dir={tmp_path / 'resumed'}"]) as cfg:
        with pytest.raises(_Interrupt):
            run_bench(cfg)
        run_dir = next((tmp_path / "resumed" / "samples" / "toy_nearest").iterdir())
        assert len(rows(run_dir)) == 2
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
        # a crash in the middle of writing a row leaves a torn line: it must be dropped, not counted
        with open(run_dir / "per_image.csv", "a") as f:
            f.write("camera,123,ok,,17.")
        monkeypatch.setattr(bench.BenchLoop, "group", real)
        resumed = run_bench(cfg)
    assert resumed.status == "complete"
    assert scores(resumed.run_dir) == scores(full.run_dir)
    names = [r["image"] for r in rows(resumed.run_dir)]
    assert len(names) == len(set(names)) == 4
    manifest = json.loads((resumed.run_dir / "manifest.json").read_text())
    assert len(manifest["resumes"]) == 1 and manifest["identity"]["dataset"]["image_list_sha256"]


def _folder_run(tmp_path, hr, extra=()):
    with bench_config(["method=bicubic", "dataset=folder", f"dataset.hr_dir={hr}", "run_name=r",
                       f"results_dir={tmp_path / 'r'}", "metrics.lpips_nets=[]", "num_workers=0", *extra]) as cfg:
        return run_bench(cfg)


def test_resume_refuses_changed_images_and_retries_skipped(tmp_path, capsys):
    hr = tmp_path / "hr"
    _png(hr / "a.png", 48, 64, 1)
    _png(hr / "b.png", 48, 64, 2)
    (hr / "c.png").write_bytes(b"not a png")
    first = _folder_run(tmp_path, hr, ["on_error=skip"])
    assert first.summary["n_skipped"] == 1 and first.summary["valid"] is False
    _png(hr / "c.png", 48, 64, 3)  # the user fixes the broken file: it is scored on resume
    second = _folder_run(tmp_path, hr)
    assert second.summary["n_images"] == 3 and second.summary["valid"] is True
    assert [r["image"] for r in rows(second.run_dir)] == ["a", "b", "c"]
    (hr / "b.png").unlink()  # a different image list must not resume into the old rows
    with pytest.raises(Exception, match="different dataset"):
        _folder_run(tmp_path, hr)


def test_warmup_call_is_not_timed(tmp_path, toy, monkeypatch):
    import toy_sr_plugin

    calls = []
    real = toy_sr_plugin.NearestToy.upscale
    monkeypatch.setattr(toy_sr_plugin.NearestToy, "upscale", lambda self, lr, s, *, seeds: calls.append(1) or
                        real(self, lr, s, seeds=seeds))
    with bench_config(["method=toy_nearest", "warmup=1", f"results_dir={tmp_path}", *SMALL]) as cfg:
        result = run_bench(cfg)
    assert len(calls) == 4 and result.summary["n_images"] == 3
    assert {r["batch"] for r in rows(result.run_dir)} == {"1"}


def test_all_mode_runs_available_and_lists_skipped(tmp_path, toy, capsys):
    with bench_config(["method=all", f"results_dir={tmp_path}", *SMALL]) as cfg:
        results = execute(cfg, overrides=["method=all"])
    status = {r.method: r.status for r in results}
    assert status["bicubic"] == "complete" and status["toy_nearest"] == "complete"
    assert status["toy_weighted"] == "skipped"
    out = capsys.readouterr()
    assert "toy_weighted_v1.pth" in out.err and "PSNR" in out.out and "bicubic" in out.out


def _png(path: Path, h: int, w: int, seed: int = 0, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)


def test_folder_hr_only_corrupt_image_raise_or_skip(tmp_path, capsys):
    hr = tmp_path / "hr"
    _png(hr / "a.png", 48, 64, 1)
    _png(hr / "b.png", 50, 66, 2)  # not divisible by 4 → modcrop
    (hr / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    base = ["method=bicubic", "dataset=folder", f"dataset.hr_dir={hr}", f"results_dir={tmp_path / 'r'}",
            "metrics.lpips_nets=[]", "num_workers=0"]
    with bench_config(base) as cfg, pytest.raises(SystemExit) as err:
        execute(cfg)
    assert err.value.code == 2
    msg = capsys.readouterr().err.strip().splitlines()
    assert len(msg) == 1 and "c.png" in msg[0]
    with bench_config(base + ["on_error=skip"]) as cfg:
        result = run_bench(cfg)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["n_images"] == 2 and summary["n_skipped"] == 1
    assert summary["skipped"][0]["image"] == "c" and "c.png" in summary["skipped"][0]["error"]


def test_lr_only_folder_gives_sr_images_and_no_reference_columns(tmp_path):
    lr = tmp_path / "lr"
    _png(lr / "x.png", 12, 16, 3)
    with bench_config(["method=bicubic", "dataset=folder", f"dataset.lr_dir={lr}", f"results_dir={tmp_path / 'r'}",
                       "num_workers=0", "save_images=all"]) as cfg:
        result = run_bench(cfg)
    header = list(rows(result.run_dir)[0])
    assert "psnr" not in header and "ssim" not in header and "lpips" not in header
    sr = np.asarray(Image.open(result.run_dir / "samples" / "x.png"))
    assert sr.shape == (48, 64, 3)


def test_given_pairs_size_mismatch_is_one_line(tmp_path, capsys):
    _png(tmp_path / "hr" / "a.png", 40, 40)
    _png(tmp_path / "lr" / "a.png", 12, 10)
    with bench_config(["method=bicubic", "dataset=folder", f"dataset.hr_dir={tmp_path / 'hr'}",
                       f"dataset.lr_dir={tmp_path / 'lr'}", f"results_dir={tmp_path / 'r'}", "num_workers=0",
                       "metrics.lpips_nets=[]"]) as cfg, pytest.raises(SystemExit):
        execute(cfg)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "size mismatch" in err[0] and "a.png" in err[0]


def test_nan_output_is_reported(tmp_path, toy, monkeypatch, capsys):
    import toy_sr_plugin

    def nan_upscale(self, lr, scale, *, seeds):
        return torch.full((lr.shape[0], 3, lr.shape[2] * int(scale), lr.shape[3] * int(scale)), float("nan"))

    monkeypatch.setattr(toy_sr_plugin.NearestToy, "upscale", nan_upscale)
    base = ["method=toy_nearest", f"results_dir={tmp_path}", *SMALL]
    with bench_config(base) as cfg, pytest.raises(SystemExit):
        execute(cfg)
    assert "NaN/Inf" in capsys.readouterr().err
    with bench_config(base + ["on_error=skip", "run_name=skip"]) as cfg:
        result = run_bench(cfg)
    s = result.summary
    assert s["status"] == "complete" and s["n_nonfinite"] == 3 and s["n_images"] == 0 and s["valid"] is False
    assert s["metrics"]["psnr"]["n_nan"] == 3 and s["metrics"]["psnr"]["valid"] is False


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["method=nope"], "unknown method 'nope'; valid:"),
        (["dataset=nope"], "unknown dataset 'nope'; valid:"),
        (["method=toy_nearest", "dataset.scale=3"], "does not support scale x3"),
        (["method=bicubic", "dataset=folder", "dataset.hr_dir=/does/not/exist"], "/does/not/exist"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, toy, args, needle):
    from helpers import plugin_env

    out = run_cli(["srbench-bench", *args, f"results_dir={tmp_path}", "metrics.lpips_nets=[]"],
                  env=plugin_env(toy), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    err = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0], out.stderr


def test_logger_receives_table_summary_and_thumbnails(tmp_path, monkeypatch):
    from srbench import tracking
    from srbench.tracking.base import Logger

    seen = {}

    class Recorder(Logger):
        def log_table(self, name, rows, images=None):
            seen["table"], seen["images"] = list(rows), dict(images or {})

        def log_summary(self, summary):
            seen["summary"] = dict(summary)

        def finish(self):
            seen["finished"] = True

    monkeypatch.setattr(tracking, "build_logger", lambda cfg, **kw: seen.update(kw) or Recorder())
    with bench_config(["method=bicubic", "logger=wandb", f"results_dir={tmp_path}", *SMALL]) as cfg:
        result = run_bench(cfg)
    assert seen["finished"] and seen["group"] == "samples" and seen["run_name"].startswith("bicubic-")
    assert [r["image"] for r in seen["table"]] == ["coins", "chelsea", "camera"]
    assert set(seen["images"]) == {"coins", "chelsea", "camera"}
    assert seen["summary"]["psnr/mean"] == pytest.approx(result.summary["metrics"]["psnr"]["mean"])


def test_failed_sweep_job_is_recorded_and_does_not_raise(tmp_path, toy, capsys):
    overrides = ["method=toy_weighted", f"results_dir={tmp_path}", *SMALL]
    with bench_config(overrides) as cfg:
        (result,) = execute(cfg, overrides=overrides, multirun=True)
    assert result.status == "failed" and "toy_weighted_v1.pth" in result.message
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "toy_weighted_v1.pth" in summary["error"]
    assert (result.run_dir / "manifest.json").exists()  # so `srbench report` lists the failure


def test_call_upscale_passes_names_only_to_methods_that_want_them():
    from srbench.method import SRMethod, call_upscale

    class Plain(SRMethod):
        name = "plain"

        @classmethod
        def from_config(cls, cfg, device, dtype):
            return cls()

        def upscale(self, lr, scale, *, seeds):  # no names parameter: must still be callable
            return torch.zeros(lr.shape[0], 3, lr.shape[2] * 2, lr.shape[3] * 2)

    class Named(Plain):
        name = "named"
        wants_names = True

        def upscale(self, lr, scale, *, seeds, names):
            self.got = names
            return super().upscale(lr, scale, seeds=seeds)

    lr = torch.zeros(2, 3, 4, 4)
    assert call_upscale(Plain(), lr, 2, seeds=[1, 2], names=["a", "b"]).shape == (2, 3, 8, 8)
    m = Named()
    call_upscale(m, lr, 2, seeds=[1, 2], names=("a", "b"))
    assert m.got == ["a", "b"]


def test_sweep_job_failing_inside_its_run_is_recorded_once(tmp_path, monkeypatch):
    """A job that fails after its run directory exists (e.g. ECDP tiny asked for ×8) was listed twice by
    `srbench report`: its own run (status failed) and a failed-<hash> twin; and its summary said valid."""
    from srbench.runners import bench

    def boom(self, batch):
        raise ValueError("this model was built for x4, not x8")
        yield  # a generator, as BenchLoop.batch is

    monkeypatch.setattr(bench.BenchLoop, "batch", boom)
    overrides = ["method=bicubic", f"results_dir={tmp_path}", *SMALL]
    with bench_config(overrides) as cfg:
        (result,) = execute(cfg, overrides=overrides, multirun=True)
    runs = sorted(p.name for p in (tmp_path / "samples" / "bicubic").iterdir())
    assert len(runs) == 1 and not runs[0].startswith("failed-"), runs
    assert result.status == "failed" and result.run_dir.name == runs[0]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "built for x4" in summary["error"] and summary["valid"] is False
