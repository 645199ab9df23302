"""``srbench report --logger wandb``: the report mirrored to a real offline W&B run; the test reads the
run's files back and checks the tables hold the numbers of leaderboard.csv and of the per-run summaries."""

from __future__ import annotations

import csv
import json
import math

import pytest

pytest.importorskip("wandb")

from srbench.commands import report
from tests.test_report_pages import results  # noqa: F401  (the fixture: 3 runs, a failed job, kept images)


def _tables(out):
    """{logged key: (columns, rows)} from the offline run's media/table/*.table.json files."""
    found = {}
    for f in out.glob("wandb/offline-run-*/files/media/table/**/*.table.json"):
        rel = f.relative_to(next(p for p in f.parents if p.name == "table"))
        key = str(rel.parent / rel.name.split(".table.json")[0]).rsplit("_", 2)[0].lstrip("./")
        blob = json.loads(f.read_text())
        found[key] = (blob["columns"], blob["data"])
    return found


def test_report_tables_and_plots_go_to_an_offline_wandb_run(results, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # artifact staging
    out = tmp_path / "report"
    assert report.main([str(results), "--out", str(out), "--logger", "wandb", "--wandb-group", "sweep"]) == 0
    printed = capsys.readouterr().out
    assert "wandb: logged" in printed and "wandb sync" in printed
    tables = _tables(out)
    assert {"leaderboard", "failed_jobs"} <= set(tables), sorted(tables)

    # leaderboard: every row of leaderboard.csv, same PSNR to full precision
    with open(out / "leaderboard.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    cols, data = tables["leaderboard"]
    assert len(data) == len(csv_rows) == 5
    got = {r[cols.index("run")]: r[cols.index("psnr")] for r in data}  # run names are unique here
    for row in csv_rows:
        want = float(row["psnr"]) if row["psnr"] else None
        have = got[row["run"]]
        assert (have is None and (want is None or math.isnan(want))) or have == pytest.approx(want, abs=1e-9)

    # one table per page, rows = runs, with mean, CI and p-value as in the summaries
    pages = {k: v for k, v in tables.items() if k.startswith("leaderboard/")}
    assert len(pages) == 2  # standard and matlab profiles never share a table
    std_key = next(k for k in pages if "standard" in k)
    cols, data = pages[std_key]
    by_run = {r[cols.index("run")]: r for r in data}
    assert set(by_run) == {"good", "close", "bad"}
    for name, method in [("good", "a"), ("close", "b"), ("bad", "c")]:
        s = json.loads((results / "samples" / method / name / "summary.json").read_text())["metrics"]["psnr"]
        assert by_run[name][cols.index("psnr")] == pytest.approx(s["mean"], abs=1e-12)
        assert by_run[name][cols.index("psnr_ci95")] == pytest.approx((s["ci95_high"] - s["ci95_low"]) / 2, abs=1e-12)
        assert by_run[name][cols.index("dataset")] == "samples" and by_run[name][cols.index("profile")] == "standard"
    ps = [r[cols.index("p_vs_best")] for r in data if not r[cols.index("best")]]
    assert len(ps) == 2 and all(isinstance(p, float) and 0 < p <= 1 for p in ps)
    html = next(p for p in out.glob("samples-x4-standard-*.html") if "visual" not in p.name).read_text()
    for p in ps:
        assert f"{p:.4f}" in html  # the same p-values as the HTML page

    # failed job with its error; metric cards; visual comparison rows with image cells
    cols, data = tables["failed_jobs"]
    assert len(data) == 1 and "boom: out of memory" in data[0][cols.index("error")]
    assert any(k.startswith("card/") for k in tables)
    vis = [v for k, v in tables.items() if k.startswith("visual/")]
    assert vis and vis[0][1][0][vis[0][0].index("image")] == "im0" and vis[0][0][-2:] == ["a", "b"]
    # W&B stages a table holding images as an artifact (WANDB_DATA_DIR): there the crops are image files
    staged = [json.loads(f.read_text()) for f in (tmp_path / "wandb-data").rglob("*")
              if f.is_file() and f.read_bytes()[:1] == b"{"]
    visual = [t for t in staged if t.get("columns", [])[:1] == ["image"]]
    assert visual, "the visual-comparison table was not staged"
    cells = [c for c in visual[0]["data"][0] if isinstance(c, dict)]
    assert len(cells) == 2 and all(c["_type"] == "image-file" and c["width"] == 64 for c in cells)  # a crop per method
    # every plot PNG of the report was logged as an image
    pngs = {p.stem for p in out.glob("*.png")}
    logged = {f.name.rsplit("_", 2)[0] for f in out.glob("wandb/offline-run-*/files/media/images/plots/*.png")}
    assert pngs and logged == pngs
