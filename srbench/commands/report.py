"""``srbench report``: one leaderboard from any set of run directories in the results store.

    srbench report                         # every run under results/
    srbench report results/set5 --out results/report --status complete

Reads each run's ``summary.json`` (and ``manifest.json`` for the run's identity) into one
pandas frame and writes ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.html``.
Rows carry the metric profile, so numbers from different profiles are never merged.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

METRICS = ("psnr", "ssim", "lpips", "lpips_vgg", "lr_psnr")


def find_runs(roots: list[Path]) -> list[Path]:
    runs = []
    for root in roots:
        runs += [p.parent for p in root.rglob("summary.json") if (p.parent / "manifest.json").exists()]
    return sorted(set(runs))


def load_frame(runs: list[Path]) -> pd.DataFrame:
    records = []
    for run in runs:
        s = json.loads((run / "summary.json").read_text())
        scale = s.get("scale")
        rec = {"dataset": s.get("dataset") or s.get("hr_dir"), "scale": ",".join(map(str, scale))
               if isinstance(scale, list) else scale, "method": s.get("method") or s.get("sr_dir"),
               "profile": s.get("profile"), "run": run.name, "status": s.get("status"), "n": s.get("n_images"),
               "valid": s.get("valid"), "protocol": (s.get("hr_preparation") or {}).get("protocol"),
               # ids tell apart what a label hides: crop, Y definition, a random-backbone LPIPS
               "ids": " ".join(sorted((s.get("metric_ids") or {}).values()))}
        for m in METRICS:
            stats = s.get("metrics", {}).get(m)
            rec[m] = _num(stats.get("mean")) if stats else math.nan
            rec[f"{m}_ci95"] = (_num(stats.get("ci95_high")) - _num(stats.get("ci95_low"))) / 2 if stats else math.nan
        rec["ms_per_img"] = _num(s.get("timing", {}).get("time_ms", {}).get("mean"))
        rec["nfe"] = s.get("nfe")
        rec["path"] = str(run)
        records.append(rec)
    return pd.DataFrame.from_records(records)


def _num(v: object) -> float:
    try:
        return float(v)  # "inf"/"nan" strings come back as floats
    except (TypeError, ValueError):
        return math.nan


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="srbench report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="*", type=Path, default=[Path("results")])
    parser.add_argument("--out", type=Path, default=Path("results") / "report")
    parser.add_argument("--status", default=None, help="keep only runs with this status (e.g. complete)")
    args = parser.parse_args(argv)
    runs = find_runs([r for r in args.roots if r.exists()])
    if not runs:
        print(f"srbench report: no runs found under {', '.join(map(str, args.roots))} (run `make bench` first)")
        return 1
    df = load_frame(runs)
    if args.status:
        df = df[df["status"] == args.status]
    df = df.sort_values(["dataset", "scale", "profile", "psnr"], ascending=[True, True, True, False])
    cols = ["dataset", "scale", "profile", "method", "status", "valid", "n",
            *[m for m in METRICS if df[m].notna().any()], "ms_per_img", "nfe", "run"]
    table = df[cols]
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "leaderboard.csv", index=False)
    (args.out / "leaderboard.md").write_text(_markdown(table) + "\n")
    (args.out / "leaderboard.html").write_text(table.to_html(index=False, float_format=lambda x: f"{x:.4f}"))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"\nwrote {args.out}/leaderboard.{{md,csv,html}}")
    return 0


def _markdown(df: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else ("—" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
