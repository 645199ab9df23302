"""`srbench score`: outside SR images scored with the same harness, strict pairing."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from srbench.commands.score import main as score_main
from srbench.data.resize import imresize
from srbench.metrics import build_metrics


def _save(path, x: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).save(path)


@pytest.fixture
def folders(tmp_path):
    gen = torch.Generator().manual_seed(0)
    for i, name in enumerate(["a", "b"]):
        base = torch.rand(3, 12, 16, generator=gen)
        hr = imresize(base, 4).clamp(0, 1)  # smooth 48×64 image
        hr = (hr * 255).round() / 255
        lr = imresize(hr, 1 / 4, quantize=True)
        sr = imresize(lr, 4, quantize=True).clamp(0, 1)
        _save(tmp_path / "hr" / f"{name}.png", hr)
        _save(tmp_path / "lr" / f"{name}.png", lr)
        _save(tmp_path / "sr" / f"{name}_out.png", sr)
    return tmp_path


def test_score_matches_harness_and_writes_store(folders, capsys):
    out = folders / "out"
    rc = score_main([str(folders / "sr"), str(folders / "hr"), "--lr-dir", str(folders / "lr"), "--sr-suffix",
                     "_out", "--lpips", "none", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO((out / "per_image.csv").read_text())))
    summary = json.loads((out / "summary.json").read_text())
    assert [r["image"] for r in rows] == ["a", "b"] and summary["scale"] == 4.0
    suite = build_metrics("standard", lpips_nets=())
    for r in rows:
        def load(p):
            return torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1).float().div(255)[None]
        sr, hr = load(folders / "sr" / f"{r['image']}_out.png"), load(folders / "hr" / f"{r['image']}.png")
        direct = suite(sr, hr, scale=4)
        assert float(r["psnr"]) == pytest.approx(float(direct["psnr"][0]), abs=1e-9)
        assert 15 < float(r["lr_psnr"]) < 100
    assert summary["metric_ids"]["psnr"] == "psnr@basicsr-y-crop4"


def test_unmatched_files_are_listed(folders, capsys):
    (folders / "hr" / "c.png").write_bytes((folders / "hr" / "a.png").read_bytes())
    rc = score_main([str(folders / "sr"), str(folders / "hr"), "--sr-suffix", "_out", "--scale", "4",
                     "--lpips", "none", "--out", str(folders / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "HR without SR: ['c']" in err[0]


def test_size_mismatch_is_an_error_unless_modcrop_asked(folders, capsys):
    hr = np.asarray(Image.open(folders / "hr" / "a.png"))
    padded = np.pad(hr, ((0, 2), (0, 3), (0, 0)), mode="edge")
    Image.fromarray(padded).save(folders / "hr" / "a.png")
    args = [str(folders / "sr"), str(folders / "hr"), "--sr-suffix", "_out", "--scale", "4", "--lpips", "none"]
    assert score_main(args + ["--out", str(folders / "o1")]) == 2
    err = capsys.readouterr().err
    assert "size mismatch" in err and "a_out.png" in err and "--modcrop-hr" in err
    assert score_main(args + ["--out", str(folders / "o2"), "--modcrop-hr"]) == 0
    assert json.loads((folders / "o2" / "summary.json").read_text())["hr_modcropped"] == ["a"]


def test_same_stem_twice_is_an_error(folders, capsys):
    (folders / "sr" / "a_out.jpg").write_bytes((folders / "sr" / "a_out.png").read_bytes())
    rc = score_main([str(folders / "sr"), str(folders / "hr"), "--sr-suffix", "_out", "--scale", "4",
                     "--lpips", "none", "--out", str(folders / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "a_out.jpg" in err and "a_out.png" in err


def test_rescoring_replaces_results_and_report_reads_them(folders, capsys, monkeypatch):
    """Scoring another SR folder into the same output replaces every row (no stale resume)."""
    out = folders / "out"
    args = ["--sr-suffix", "_out", "--scale", "4", "--lpips", "none", "--out", str(out)]
    assert score_main([str(folders / "sr"), str(folders / "hr"), *args]) == 0
    first = {r["image"]: r["psnr"] for r in csv.DictReader(io.StringIO((out / "per_image.csv").read_text()))}
    other = folders / "sr2"
    other.mkdir()
    for p in (folders / "sr").iterdir():
        img = np.asarray(Image.open(p)).astype(np.int16)
        Image.fromarray(np.clip(img + 9, 0, 255).astype(np.uint8)).save(other / p.name)
    assert score_main([str(other), str(folders / "hr"), *args]) == 0
    second = {r["image"]: r["psnr"] for r in csv.DictReader(io.StringIO((out / "per_image.csv").read_text()))}
    assert first.keys() == second.keys() and all(first[k] != second[k] for k in first)
    from srbench.commands.report import main as report_main

    monkeypatch.chdir(folders)
    assert report_main([str(folders), "--out", str(folders / "rep")]) == 0
    assert "standard" in (folders / "rep" / "leaderboard.md").read_text()


def test_score_without_hr_gives_the_no_reference_columns(folders, capsys):
    """SR + LR, no HR: LR-PSNR and colour shift (no-reference), equal to the suite called without HR."""
    from srbench.data.paired import MatlabBicubicLR

    out = folders / "nr"
    rc = score_main([str(folders / "sr"), "--lr-dir", str(folders / "lr"), "--sr-suffix", "_out", "--lpips", "none",
                     "--colour-shift", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO((out / "per_image.csv").read_text())))
    summary = json.loads((out / "summary.json").read_text())
    assert [r["image"] for r in rows] == ["a", "b"] and summary["hr_dir"] is None
    assert "psnr" not in rows[0] and "ssim" not in rows[0]
    assert set(summary["metric_ids"]) == {"colour_shift", "lr_psnr"}
    suite = build_metrics("standard", lpips_nets=(), colour=True)

    def load(p):
        return torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1).float().div(255)[None]
    for r in rows:
        sr, lr = load(folders / "sr" / f"{r['image']}_out.png"), load(folders / "lr" / f"{r['image']}.png")
        direct = suite(sr, None, lr, scale=4, degrade=MatlabBicubicLR(4).operator)
        assert float(r["lr_psnr"]) == pytest.approx(float(direct["lr_psnr"][0]), abs=1e-9)
        assert float(r["colour_shift"]) == pytest.approx(float(direct["colour_shift"][0]), abs=1e-9)


def test_score_without_hr_and_nothing_no_reference_is_one_line(folders, capsys):
    rc = score_main([str(folders / "sr"), "--sr-suffix", "_out", "--lpips", "none"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--extra" in err and "--lr-dir" in err
    rc = score_main([str(folders / "sr"), "--sr-suffix", "_out", "--colour-shift"])
    err = capsys.readouterr().err
    assert rc == 2 and "--lr-dir" in err


def test_score_sr_only_scores_no_reference_pyiqa_metric(tmp_path, monkeypatch, capsys):
    """`srbench score SR_DIR --extra niqe` (no HR, no LR): the niqe column equals pyiqa's NIQE via the bridge."""
    pytest.importorskip("pyiqa")
    from test_metrics_iqa import _niqe_params

    from srbench.metrics.iqa import PyiqaMetric

    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "w" / "pyiqa").mkdir(parents=True)
    _niqe_params(tmp_path / "w" / "pyiqa" / "niqe_modelparameters.mat")
    gen = torch.Generator().manual_seed(3)
    for name in ("a", "b"):
        _save(tmp_path / "sr" / f"{name}.png", imresize(torch.rand(3, 32, 32, generator=gen), 4).clamp(0, 1))
    rc = score_main([str(tmp_path / "sr"), "--extra", "niqe", "--lpips", "none", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "o" / "per_image.csv").read_text())))
    assert [r["image"] for r in rows] == ["a", "b"] and "psnr" not in rows[0] and "lr_psnr" not in rows[0]
    niqe = PyiqaMetric("niqe")
    for r in rows:
        x = torch.from_numpy(np.array(Image.open(tmp_path / "sr" / f"{r['image']}.png"))).permute(2, 0, 1)
        assert float(r["niqe"]) == pytest.approx(float(niqe(x.float().div(255)[None])[0]), abs=1e-9)
