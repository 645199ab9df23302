"""``srbench reproduce``: table files parse, --list names each table and what it needs, missing data or
method is SKIPPED with one line, and the comparison passes only within the stated tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from srbench.commands import reproduce

#: the issue's tables beyond the bicubic baselines (#14): ECDP's three, InvSR, OSEDiff, IDM
PAPER_TABLES = ["ecdp_div2k_x4", "ecdp_imagenet_x4", "ecdp_celeba_x8", "invsr_imagenet_test_x4", "invsr_realsr_x4",
                "osediff_div2k_val_x4", "osediff_realsr", "osediff_drealsr", "idm_celebahq_x8"]


def test_every_table_file_parses_and_lists(capsys, tmp_path):
    known = reproduce.tables()
    assert {"bicubic_set5_x4", "bicubic_set14_x4", *PAPER_TABLES} <= set(known)
    for name, path in known.items():
        t = reproduce.load(path)
        assert t["title"] and t["source"] and t["protocol"]["method"] and t["protocol"]["metrics"], name
        assert t["protocol"].get("route", "bench") in ("bench", "y-channel"), name
        for m, spec in t["published"].items():
            assert isinstance(spec["value"], (int, float)) and float(spec["tolerance"]) > 0, (name, m)
        # a table without a single retrievable number says why, and never runs
        assert t["published"] or t.get("not_retrievable"), name
        assert all(isinstance(r, str) and r for r in (t.get("not_compared") or {}).values()), name
    assert reproduce.main(["--list", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} " in out for name in known) and "data missing" in out
    assert "route=y-channel" in out and "published=none" in out


@pytest.mark.parametrize("name", PAPER_TABLES)
def test_paper_tables_skip_in_one_line_without_weights(name, tmp_path, monkeypatch, capsys):
    """With the data folder present but no weights (or no published numbers) a table is SKIPPED with
    one line naming the reason — never a stack trace, never a run."""
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch"))
    t = reproduce.load(reproduce.tables()[name])
    (tmp_path / "data" / t["protocol"]["data"]).mkdir(parents=True)
    assert reproduce.run_table(name, t, tmp_path / "data", tmp_path / "results") == "SKIPPED"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"{name}: SKIPPED — ")
    want = "no published numbers retrievable" if not t["published"] else "weights missing"
    assert want in out, out


def test_missing_data_is_skipped_in_one_line(capsys, tmp_path):
    t = reproduce.load(reproduce.tables()["bicubic_set5_x4"])
    assert reproduce.run_table("bicubic_set5_x4", t, tmp_path, tmp_path / "results") == "SKIPPED"
    assert capsys.readouterr().out.count("\n") == 1


def test_uninstalled_method_is_skipped(tmp_path):
    t = {"protocol": {"method": "no_such_method", "data": "x"}, "published": {"psnr": {"value": 1, "tolerance": 1}}}
    assert reproduce.why_not_runnable(t, tmp_path) == "method not installed: no_such_method"


@pytest.mark.parametrize("ours,ok", [(28.415, True), (28.43, True), (28.44, False), (28.399, False)])
def test_tolerance(ours, ok):
    rows = reproduce.compare({"psnr": {"value": 28.42, "tolerance": 0.01}}, {"metrics": {"psnr": {"mean": ours}}})
    assert rows[0][-1] is ok


@pytest.mark.shared_data
def test_bicubic_set5_x4_passes(tmp_path):
    from pathlib import Path

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    data = data if data.is_dir() else Path("/work/shared/data")
    if not (data / "Set5").is_dir():
        pytest.skip("../shared/data/Set5 not present")
    t = reproduce.load(reproduce.tables()["bicubic_set5_x4"])
    assert reproduce.run_table("bicubic_set5_x4", t, data, tmp_path) == "PASS"
    # the same table through the bench harness (bicubic on the official RGB LR files) also passes at ×4
    assert reproduce.run_table("bicubic_set5_x4", t, data, tmp_path, route="bench") == "PASS"


@pytest.mark.shared_data
@pytest.mark.parametrize("name", [f"bicubic_{d}_x{s}" for d in ("set5", "set14") for s in (2, 3, 4)])
def test_bicubic_y_channel_route_passes_set5_set14(name, tmp_path, capsys):
    """The published Bicubic column (VDSR Table 3) is bicubic on the HR's Y: all six tables pass."""
    from pathlib import Path

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    data = data if data.is_dir() else Path("/work/shared/data")
    if not (data / "Set14").is_dir():
        pytest.skip("../shared/data/Set5, Set14 not present")
    t = reproduce.load(reproduce.tables()[name])
    assert t["protocol"]["route"] == "y-channel"
    assert reproduce.run_table(name, t, data, tmp_path) == "PASS", capsys.readouterr().out


def _folders(tmp_path, n=3):
    """HR and a noisy 'SR' folder (the authors' outputs), PSNR per image computed here with numpy."""
    from PIL import Image

    rng = np.random.default_rng(0)
    hr_dir, sr_dir = tmp_path / "data" / "bench" / "test_HR", tmp_path / "sr"
    hr_dir.mkdir(parents=True)
    sr_dir.mkdir()
    psnr = {}
    for i in range(n):
        hr = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
        sr = np.clip(hr.astype(int) + rng.integers(-12, 13, hr.shape), 0, 255).astype(np.uint8)
        Image.fromarray(hr).save(hr_dir / f"im{i}.png")
        Image.fromarray(sr).save(sr_dir / f"im{i}.png")
        mse = np.mean((hr.astype(np.float64) - sr) ** 2)
        psnr[f"im{i}"] = 10 * np.log10(255.0**2 / mse)
    return tmp_path / "data", sr_dir, psnr


def _table(value, n=3):
    return {"title": "t", "source": "s", "published": {"psnr": {"value": value, "tolerance": 0.001}},
            "protocol": {"method": "bicubic", "dataset": "folder", "data": "bench", "hr": ["HR", "test_HR"],
                         "metrics": "basicsr-rgb", "scale": 4, "n_images": n}}


def test_sr_dir_scores_a_folder_and_compares(tmp_path, capsys):
    data, sr_dir, psnr = _folders(tmp_path)
    mean = float(np.mean(list(psnr.values())))
    assert reproduce.score_sr_dir("t", _table(mean), sr_dir, data, tmp_path / "r") == "PASS"
    assert f"ours {mean:.4f}" in capsys.readouterr().out
    assert reproduce.score_sr_dir("t", _table(mean + 0.01), sr_dir, data, tmp_path / "r") == "FAIL"
    assert reproduce.score_sr_dir("t", _table(mean, n=100), sr_dir, data, tmp_path / "r") == "SKIPPED"
    assert "holds 3 of the table's 100 images" in capsys.readouterr().out
    assert reproduce.score_sr_dir("t", _table(mean), sr_dir, tmp_path / "nowhere", tmp_path / "r") == "SKIPPED"


def test_sr_dir_checks_the_authors_per_image_log(tmp_path, capsys):
    data, sr_dir, psnr = _folders(tmp_path)
    mean = float(np.mean(list(psnr.values())))
    (sr_dir / "metrics").mkdir()
    log = sr_dir / "metrics" / "test_METRICS_1.log"

    def write_log(offset):
        lines = [f"24-10-23 17:29:03.278 - INFO: results/{k}.png | PSNR: {v + (offset if k == 'im1' else 0):.6f}; "
                 f"SSIM: 0.5 | Runtime: 1.06 sec" for k, v in psnr.items()]
        log.write_text("\n".join(["===== Starting Evaluation =====", *lines, "PSNR: 1; SSIM: 0.5 | FID: 3"]) + "\n")

    write_log(0.0)
    assert reproduce.parse_per_image_log(log)["im1"]["psnr"] == pytest.approx(psnr["im1"], abs=1e-6)
    assert reproduce.score_sr_dir("t", _table(mean), sr_dir, data, tmp_path / "r") == "PASS"
    assert "psnr 3 images" in capsys.readouterr().out
    write_log(0.01)  # one image of the log disagrees with our score beyond the tolerance
    assert reproduce.score_sr_dir("t", _table(mean), sr_dir, data, tmp_path / "r") == "FAIL"
    assert "1 beyond tol" in capsys.readouterr().out


@pytest.mark.parametrize("name,want", [("osediff_realsr", ["dists", "clipiqa", "musiq", "maniqa-pipal", "niqe"]),
                                       ("osediff_div2k_val_x4", [])])
def test_bench_route_computes_exactly_the_compared_extras(name, want, tmp_path, monkeypatch):
    """The bench route passes the table's compared pyiqa extras as ``metrics.extra``: without it a run took the
    profile's default extras — five learned metrics no DIV2K-Val table compares, and none for a table whose
    profile lists no extras. The override must parse as a Hydra list."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    t = reproduce.load(reproduce.tables()[name])
    assert reproduce.compared_extra_metrics(t) == want
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return type("P", (), {"returncode": 1, "stderr": "stopped by the test", "stdout": ""})()

    monkeypatch.setattr(reproduce, "why_not_runnable", lambda *a, **k: None)
    monkeypatch.setattr(reproduce.subprocess, "run", fake_run)
    assert reproduce.run_table(name, t, tmp_path, tmp_path / "results", route="bench") == "FAIL"
    extra = [a for a in seen["cmd"] if a.startswith("metrics.extra=")]
    assert len(extra) == 1
    (override,) = OverridesParser.create().parse_overrides(extra)
    assert override.key_or_group == "metrics.extra" and override.value() == want
