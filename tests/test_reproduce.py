"""``srbench reproduce``: table files parse, --list names each table and what it needs, missing data or
method is SKIPPED with one line, and the comparison passes only within the stated tolerance."""

from __future__ import annotations

import pytest

from srbench.commands import reproduce


def test_every_table_file_parses_and_lists(capsys, tmp_path):
    known = reproduce.tables()
    assert {"bicubic_set5_x4", "bicubic_set14_x4"} <= set(known)
    for path in known.values():
        t = reproduce.load(path)
        assert t["source"] and t["protocol"]["method"] and all("tolerance" in v for v in t["published"].values())
    assert reproduce.main(["--list", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bicubic_set5_x4" in out and "data missing" in out


def test_missing_data_is_skipped_in_one_line(capsys, tmp_path):
    t = reproduce.load(reproduce.tables()["bicubic_set5_x4"])
    assert reproduce.run_table("bicubic_set5_x4", t, tmp_path, tmp_path / "results") == "SKIPPED"
    assert capsys.readouterr().out.count("\n") == 1


def test_uninstalled_method_is_skipped(tmp_path):
    t = {"protocol": {"method": "no_such_method", "data": "x"}}
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
