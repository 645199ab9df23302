"""``srbench report``: one leaderboard from any set of run directories in the results store.

    srbench report                         # every run under results/
    srbench report results/set5 --out results/report --status complete

Reads each run's ``summary.json`` (and ``manifest.json`` for the run's identity) into one
pandas frame and writes ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.html``.
Rows carry the metric profile, so numbers from different profiles are never merged.
It also writes the HTML report (``index.html`` and one page per dataset × scale × profile, with
metric card, mean ± 95 % CI, paired p-values against the best method, plots and failed jobs):
see :mod:`srbench.report.pages`.

    srbench report results/samples --logger wandb [--wandb-group sweep1] [--wandb-project srbench]

also mirrors the leaderboards, metric cards, plots, visual comparison and failed jobs to one W&B
run (offline without an API key; :mod:`srbench.report.wandb_mirror`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from srbench.results import leaderboard as lb


def find_runs(roots: list[Path]) -> list[Path]:
    runs = []
    for root in roots:
        runs += [p.parent for p in root.rglob("summary.json") if (p.parent / "manifest.json").exists()]
    return sorted(set(runs))


def load_frame(runs: list[Path]) -> pd.DataFrame:
    """The leaderboard frame (:mod:`srbench.results.leaderboard`) of ``runs``, with their dataset,
    scale, profile, run name, protocol, metric ids and path."""
    summaries, extra = [], []
    for run in runs:
        s = json.loads((run / "summary.json").read_text())
        scale = s.get("scale")
        summaries.append(s)
        extra.append({"dataset": s.get("dataset") or s.get("hr_dir"),
                      "scale": ",".join(map(str, scale)) if isinstance(scale, list) else scale,
                      "profile": s.get("profile"), "run": run.name,
                      "protocol": (s.get("hr_preparation") or {}).get("protocol"),
                      # ids tell apart what a label hides: crop, Y definition, a random-backbone LPIPS
                      "ids": " ".join(sorted((s.get("metric_ids") or {}).values())), "path": str(run),
                      "error": s.get("error", "")})
    return lb.frame(summaries, extra)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="srbench report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="*", type=Path, default=[Path("results")])
    parser.add_argument("--out", type=Path, default=Path("results") / "report")
    parser.add_argument("--status", default=None, help="keep only runs with this status (e.g. complete)")
    parser.add_argument("--logger", choices=["none", "wandb"], default="none",
                        help="wandb: also log the report's tables and plots to W&B (offline without an API key)")
    parser.add_argument("--wandb-project", default="srbench")
    parser.add_argument("--wandb-group", default="report", help="W&B group of the report run (e.g. the sweep name)")
    parser.add_argument("--wandb-mode", default=None, help="online | offline | disabled (default: WANDB_MODE, else "
                                                           "online when an API key is configured, else offline)")
    args = parser.parse_args(argv)
    runs = find_runs([r for r in args.roots if r.exists()])
    if not runs:
        print(f"srbench report: no runs found under {', '.join(map(str, args.roots))} (run `make bench` first)")
        return 1
    df = load_frame(runs)
    metrics = df.attrs["metrics"]
    if args.status:
        df = df[df["status"] == args.status]
    sort = ["dataset", "scale", "profile"] + (["psnr"] if "psnr" in df.columns else [])
    df = df.sort_values(sort, ascending=[True, True, True] + [False] * (len(sort) - 3))
    cols = ["dataset", "scale", "profile", "method", "status", "valid", "n", "skipped", "nonfinite",
            *[m for m in metrics if df[m].notna().any()], "ms_per_img", "nfe", "run"]
    table = df[cols]
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "leaderboard.csv", index=False)
    (args.out / "leaderboard.md").write_text(lb.markdown(table) + "\n")
    (args.out / "leaderboard.html").write_text(table.to_html(index=False, float_format=lambda x: f"{x:.4f}"))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    from srbench.report import pages
    from srbench.report import runs as report_runs

    report = report_runs.find([r for r in args.roots if r.exists()])
    written = pages.write(report, args.out)
    print(f"\nwrote {args.out}/leaderboard.{{md,csv,html}}")
    print(f"wrote {len(written)} report files; open {args.out / 'index.html'}")
    if args.logger == "wandb":
        from srbench.report import wandb_mirror

        logged = wandb_mirror.mirror(report, df, args.out, written, cfg={
            "project": args.wandb_project, "group": args.wandb_group, "mode": args.wandb_mode})
        tables = [k for k in logged if not k.startswith("plots/")]
        print(f"wandb: logged {len(tables)} tables ({', '.join(tables)}) and {len(logged) - len(tables)} plots")
    return 0
