"""Regression tests for what real images and bad input broke (issue 18): concurrent runs, stale
resume, tiny and huge images, `score`'s scale, unchecked config values, what the console says."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import BIN, bench_config, plugin_env, run_cli
from PIL import Image

from srbench.runners.bench import execute, run_bench


def _png(path: Path, h: int, w: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "per_image.csv", newline="") as f:
        return list(csv.DictReader(f))


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and "HYDRA_FULL_ERROR" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]




@pytest.fixture(scope="module")
def forty(tmp_path_factory) -> Path:
    hr = tmp_path_factory.mktemp("forty")
    for i in range(40):
        _png(hr / f"img{i:02d}.png", 32, 32, i)
    return hr


def _bench_cmd(hr: Path, results: Path, *extra: str) -> list[str]:
    exe = BIN / "srbench-bench"
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "srbench.runners.bench"]
    return head + ["method=toy_nearest", "dataset=folder", f"dataset.hr_dir={hr}", f"results_dir={results}",
                   "run_name=r", "metrics.lpips_nets=[]", "num_workers=0", "batch_size=1", *extra]


# ----------------------------------------------------------------------------- 1. one writer per run
def test_second_writer_refuses_in_one_line_and_killed_holder_releases_the_lock(forty, toy_site, tmp_path):
    env = plugin_env(toy_site, OMP_NUM_THREADS="1")
    run_dir = tmp_path / "res" / "folder" / "toy_nearest" / "r"
    # 40 × 0.4 s: the first run is still writing when the second one (a few seconds of start-up) comes
    first = subprocess.Popen(_bench_cmd(forty, tmp_path / "res", "+method.delay=0.4"), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / ".lock.json").exists():
        assert first.poll() is None, first.communicate()
        assert time.time() < deadline
        time.sleep(0.02)
    second = subprocess.run(_bench_cmd(forty, tmp_path / "res"), env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert second.returncode == 2
    line = _one_error_line(second.stderr)
    assert f"is being written by pid {first.pid} on " in line and "since 20" in line, line
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    rows = _rows(run_dir)
    assert len(rows) == 40 and len({r["image"] for r in rows}) == 40
    assert json.loads((run_dir / "summary.json").read_text())["n_images"] == 40

    # kill -9 the holder mid-run: the lock dies with it, and a rerun resumes where it stopped
    killed_dir = tmp_path / "res2" / "folder" / "toy_nearest" / "r"
    victim = subprocess.Popen(_bench_cmd(forty, tmp_path / "res2", "+method.delay=0.05"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (killed_dir / "per_image.csv").exists() or len(_rows(killed_dir)) < 5:
        assert victim.poll() is None and time.time() < deadline + 120
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done_before = len(_rows(killed_dir))
    assert 5 <= done_before < 40
    resumed = subprocess.run(_bench_cmd(forty, tmp_path / "res2"), env=env, capture_output=True, text=True,
                             timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert len(_rows(killed_dir)) == 40
    summary = json.loads((killed_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["n_images"] == 40
    manifest = json.loads((killed_dir / "manifest.json").read_text())
    assert len(manifest["resumes"]) == 1  # a resumption, not a fresh run


def test_summary_never_counts_an_image_twice(forty, tmp_path, capsys):
    overrides = ["method=bicubic", "dataset=folder", f"dataset.hr_dir={forty}", f"results_dir={tmp_path}",
                 "run_name=r", "metrics.lpips_nets=[]", "num_workers=0"]
    with bench_config(overrides) as cfg:
        first = run_bench(cfg)
    psnr = first.summary["metrics"]["psnr"]["mean"]
    # what two concurrent writers used to leave: 12 rows twice (52 rows for 40 images)
    path = first.run_dir / "per_image.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + lines[1:13]))
    with bench_config(overrides) as cfg:
        again = run_bench(cfg)
    assert again.summary["n_images"] == 40 and again.summary["metrics"]["psnr"]["n"] == 40
    assert again.summary["metrics"]["psnr"]["mean"] == pytest.approx(psnr, abs=1e-12)
    assert len(_rows(again.run_dir)) == 40  # the table is repaired too
    from srbench.results.records import summarize_rows

    doubled = _rows(again.run_dir) + _rows(again.run_dir)[:12]
    assert summarize_rows(doubled, ["psnr"])["metrics"]["psnr"]["n"] == 40


# ----------------------------------------------------------------------------- 2. per-image failure paths
def _zero_rows_png(path: Path, w: int, h: int) -> None:
    """A valid grey PNG of w×h zeros, written row by row (a 14000² image in a few hundred kB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    comp = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    body = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _folder_with(tmp_path: Path, name: str, make) -> Path:
    hr = tmp_path / "hr"
    _png(hr / "good.png", 32, 32, 1)
    make(hr / name)
    return hr


FAILURES = {
    "tiny": ("tiny.png", lambda p: _png(p, 3, 3), ["tiny.png is 3×3 pixels, smaller than the scale ×4"]),
    "crop": ("crop.png", lambda p: _png(p, 4, 4), ["crop (×4)", "too small for the metric's border crop of 4"]),
    "huge": ("huge.png", lambda p: _zero_rows_png(p, 14000, 14000),
             ["huge.png is 14000×14000 = 196.0 megapixels", "max_image_pixels=196000000"]),
    "zero-byte": ("empty.png", lambda p: p.write_bytes(b""), ["empty.png"]),
    "not-an-image": ("notes.png", lambda p: p.write_text("hello"), ["notes.png", "not a recognised image"]),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_bad_image_is_one_line_or_a_skipped_row(case, tmp_path):
    name, make, needles = FAILURES[case]
    hr = _folder_with(tmp_path, name, make)
    out = run_cli(["srbench-bench", "method=bicubic", "dataset=folder", f"dataset.hr_dir={hr}",
                   f"results_dir={tmp_path / 'r'}", "metrics.lpips_nets=[]", "num_workers=0", "batch_size=1"],
                  cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    line = _one_error_line(out.stderr)
    assert all(n in line for n in needles), line
    skipped = run_cli(["srbench-bench", "method=bicubic", "dataset=folder", f"dataset.hr_dir={hr}",
                       f"results_dir={tmp_path / 's'}", "metrics.lpips_nets=[]", "num_workers=0", "batch_size=2",
                       "on_error=skip"], cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stderr
    assert "Traceback" not in skipped.stderr
    run_dir = next((tmp_path / "s" / "folder" / "bicubic").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_images"] == 1 and summary["n_skipped"] == 1 and summary["valid"] is False
    assert all(n in summary["skipped"][0]["error"] for n in needles)
    # the console says so (regression: the table read "complete 2" and nothing else)
    table = skipped.stdout.splitlines()
    header = next(line for line in table if line.split()[:6] == ["method", "status", "n", "skip", "NaN", "valid"])
    row = table[table.index(header) + 1].split()
    assert row[:6] == ["bicubic", "complete", "1", "1", "0", "no"], skipped.stdout


def test_pixel_limit_is_a_setting(tmp_path):
    hr = tmp_path / "hr"
    _png(hr / "a.png", 40, 40)
    base = ["method=bicubic", "dataset=folder", f"dataset.hr_dir={hr}", f"results_dir={tmp_path / 'r'}",
            "metrics.lpips_nets=[]", "num_workers=0"]
    with bench_config([*base, "max_image_pixels=1000"]) as cfg, pytest.raises(SystemExit):
        execute(cfg)
    with bench_config([*base, "max_image_pixels=1600"]) as cfg:
        assert execute(cfg)[0].status == "complete"
    from srbench.data.io import set_max_image_pixels

    set_max_image_pixels(None)


@pytest.mark.parametrize("fail, needle", [("nan", "produced NaN/Inf for image(s) a"),
                                          ("shape", "returned shape (1, 3, 31, 32)"),
                                          ("unsupported", "toy_nearest cannot take a 8×8 input")])
def test_broken_method_output_is_one_line(fail, needle, toy_site, tmp_path):
    hr = tmp_path / "hr"
    _png(hr / "a.png", 32, 32)
    out = run_cli(["srbench-bench", "method=toy_nearest", f"+method.fail={fail}", "dataset=folder",
                   f"dataset.hr_dir={hr}", f"results_dir={tmp_path / 'r'}", "metrics.lpips_nets=[]",
                   "num_workers=0"], env=plugin_env(toy_site), cwd=tmp_path)
    assert out.returncode == 2
    assert needle in _one_error_line(out.stderr)


def test_score_tiny_pair_is_one_line(tmp_path, capsys):
    from srbench.commands.score import main as score_main

    _png(tmp_path / "sr" / "a.png", 3, 3)
    _png(tmp_path / "hr" / "a.png", 3, 3, 1)
    assert score_main([str(tmp_path / "sr"), str(tmp_path / "hr"), "--scale", "4", "--lpips", "none",
                       "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "a.png" in line and "×4" in line and "3×3 pixels is too small" in line, line


# ----------------------------------------------------------------------------- 3. score's --scale
def test_score_asks_for_the_scale_only_where_the_profile_crops_by_it(tmp_path, capsys):
    from srbench.commands.score import main as score_main

    _png(tmp_path / "sr" / "a.png", 32, 32)
    _png(tmp_path / "hr" / "a.png", 32, 32, 1)
    args = [str(tmp_path / "sr"), str(tmp_path / "hr"), "--lpips", "none"]
    for profile in ("pyiqa-ycbcr", "piq-rgb", "basicsr-rgb"):
        assert score_main([*args, "--profile", profile, "--out", str(tmp_path / profile)]) == 0, profile
        summary = json.loads((tmp_path / profile / "summary.json").read_text())
        assert summary["n_images"] == 1 and summary["metric_ids"]["psnr"].endswith("-crop0")
    capsys.readouterr()
    assert score_main([*args, "--profile", "matlab", "--out", str(tmp_path / "m")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "the matlab profile crops a border of `scale`" in line, line


def test_score_size_mismatch_hints_at_exif_when_transposed(tmp_path, capsys):
    from srbench.commands.score import main as score_main

    _png(tmp_path / "hr" / "a.png", 20, 30)
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "sr").mkdir()
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(tmp_path / "sr" / "a.jpg", exif=exif)
    with pytest.warns(UserWarning, match="EXIF orientation 6"):
        rc = score_main([str(tmp_path / "sr"), str(tmp_path / "hr"), "--profile", "piq-rgb", "--lpips", "none",
                         "--out", str(tmp_path / "o")])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "sizes are transposed" in line and "EXIF orientation" in line, line


# ----------------------------------------------------------------------------- 4. config values
@pytest.mark.parametrize("override, needle", [
    ("batch_size=-1", "batch_size=-1: must be ≥ 1"),
    ("batch_size=0", "batch_size=0: must be ≥ 1"),
    ("num_workers=-2", "num_workers=-2: must be ≥ 0"),
    ("save_images=-3", "save_images=-3: must be an integer ≥ 0 or all"),
    ("save_images=some", "save_images='some': must be an integer ≥ 0 or all"),
    ("warmup=-1", "warmup=-1: must be an integer ≥ 0 or auto"),
    ("seed=-5", "seed=-5: must be ≥ 0"),
    ("max_images=0", "max_images=0: must be ≥ 1"),
    ("on_error=ignore", "on_error='ignore': must be one of raise, skip"),
    ("batch_size=abc", "batch_size: Value 'abc' of type 'str' could not be converted to Integer"),
    ("+batchsize=4", "unknown key batchsize"),
    ("max_image_pixels=-1", "max_image_pixels=-1: must be ≥ 0"),
])
def test_impossible_bench_settings_are_refused_before_any_work(override, needle, tmp_path, capsys):
    """Regression: `batch_size=-1` ran and exited 0."""
    with bench_config(["method=bicubic", override, f"results_dir={tmp_path / 'r'}"]) as cfg, \
            pytest.raises(SystemExit) as exit_:
        execute(cfg)
    assert exit_.value.code == 2
    assert needle in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()  # refused before any work


def test_impossible_setting_on_the_command_line_is_one_line(tmp_path):
    out = run_cli(["srbench-bench", "method=bicubic", "batch_size=-1", f"results_dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert out.returncode == 2
    assert "batch_size=-1: must be ≥ 1" in _one_error_line(out.stderr)


@pytest.mark.parametrize("override, needle", [
    ("batch_size=0", "batch_size=0: must be ≥ 1"),
    ("grad_accum=0", "grad_accum=0: must be ≥ 1"),
    ("log_every=0", "log_every=0: must be ≥ 1"),
    ("ema.decay=1.5", "ema.decay=1.5: must be < 1"),
    ("schedule.gamma=0", "schedule.gamma=0.0: must be > 0"),
    ("clip.mode=sometimes", "clip.mode='sometimes': must be one of none, value, norm"),
])
def test_impossible_train_settings_are_refused(override, needle, tmp_path):
    from srbench.errors import ConfigError
    from srbench.runners.train import compose_config, train

    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        train(compose_config(["method=ecdp_tiny", override, f"results_dir={tmp_path}"]))


def test_impossible_perf_settings_are_refused(capsys):
    from srbench.runners.perf import main as perf_main

    assert perf_main(["targets=[metrics.psnr_ssim]", "sizes=[0]"]) == 2
    assert "sizes=[0]: must be ≥ 1" in _one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- 7. stale resume
def test_resume_rescores_an_image_whose_file_changed(tmp_path, capsys):
    hr = tmp_path / "hr"
    for i, n in enumerate("abc"):
        _png(hr / f"{n}.png", 32, 32, i)
    base = ["method=bicubic", "dataset=folder", f"dataset.hr_dir={hr}", "metrics.lpips_nets=[]", "num_workers=0",
            "run_name=r"]
    with bench_config([*base, f"results_dir={tmp_path / 'res'}"]) as cfg:
        first = run_bench(cfg)
    old = {r["image"]: r["psnr"] for r in _rows(first.run_dir)}
    os.utime(hr / "a.png", ns=(1, 1))  # touched, same bytes: not rescored
    _png(hr / "b.png", 32, 32, 99)  # replaced in place
    capsys.readouterr()
    with bench_config([*base, f"results_dir={tmp_path / 'res'}"]) as cfg:
        resumed = run_bench(cfg)
    err = capsys.readouterr().err
    assert "1 image(s) changed since they were scored, rescoring them: b" in err
    with bench_config([*base, f"results_dir={tmp_path / 'fresh'}"]) as cfg:
        fresh = run_bench(cfg)
    now = {r["image"]: r["psnr"] for r in _rows(resumed.run_dir)}
    assert now == {r["image"]: r["psnr"] for r in _rows(fresh.run_dir)}
    assert now["a"] == old["a"] and now["c"] == old["c"] and now["b"] != old["b"]
    assert resumed.summary["metrics"]["psnr"]["mean"] == fresh.summary["metrics"]["psnr"]["mean"]


# ----------------------------------------------------------------------------- 8. what the console says
def test_infinite_psnr_shows_n_and_inf_beside_the_mean(toy, tmp_path, capsys):
    from helpers import bench_config as cfg_of

    hr = tmp_path / "hr"
    for i in range(3):
        _png(hr / f"{i}.png", 16, 16, i)
    lr = tmp_path / "lr"
    # image 0's LR is its HR subsampled, so nearest-neighbour ×2 of it … is not the HR; instead give
    # pairs whose HR *is* the nearest upsampling of the LR: PSNR = inf for that image
    lr.mkdir()
    for i in range(3):
        small = np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).save(lr / f"{i}.png")
        big = small.repeat(2, 0).repeat(2, 1) if i == 0 else np.random.default_rng(10 + i).integers(
            0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(big).save(hr / f"{i}.png")
    with cfg_of(["method=toy_nearest", "dataset=folder", f"dataset.hr_dir={hr}", f"dataset.lr_dir={lr}",
                 "dataset.scale=2", f"results_dir={tmp_path / 'r'}", "metrics.lpips_nets=[]",
                 "num_workers=0"]) as cfg:
        (result,) = execute(cfg)
    psnr = result.summary["metrics"]["psnr"]
    assert psnr["n"] == 2 and psnr["n_inf"] == 1 and result.summary["metrics"]["ssim"]["n"] == 3
    out = capsys.readouterr().out
    assert f"{psnr['mean']:.3f} (n=2, 1 inf)" in out, out
