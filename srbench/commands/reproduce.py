"""``srbench reproduce TABLE``: a published table, run under its protocol and compared number by number.

    srbench reproduce --list
    srbench reproduce bicubic_set5_x4 --data ../shared/data

Each table is a data file ``conf/reproduce/<table>.yaml``: the protocol (method preset, dataset, the
folder its images live in under ``--data``, metric profile, extra overrides), the published numbers
with their source and a stated tolerance. The run goes through ``srbench-bench`` (same harness, same
results store under ``--results``); each metric prints ours next to theirs with PASS or FAIL, and a
table that cannot run prints SKIPPED with a one-line reason (method not installed, data missing).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from srbench.paths import CONF_DIR


def tables() -> dict[str, Path]:
    return {p.stem: p for p in sorted((CONF_DIR / "reproduce").glob("*.yaml"))}


def load(path: Path) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def why_not_runnable(t: dict[str, Any], data: Path) -> str | None:
    from srbench.method import method_entries

    proto = t["protocol"]
    method = str(proto["method"]).split("_")[0]
    if proto["method"] not in method_entries() and method not in method_entries():
        return f"method not installed: {proto['method']}"
    folder = data / proto["data"]
    if not folder.is_dir():
        return f"data missing: {folder} (pass --data DIR holding {proto['data']}/)"
    return None


def compare(published: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, float, float, float, bool]]:
    """(metric, ours, theirs, tolerance, pass) for every published metric."""
    out = []
    for m, spec in published.items():
        ours = float(((summary.get("metrics") or {}).get(m) or {}).get("mean", float("nan")))
        out.append((m, ours, float(spec["value"]), float(spec["tolerance"]),
                    abs(ours - float(spec["value"])) <= float(spec["tolerance"])))
    return out


def run_table(name: str, t: dict[str, Any], data: Path, results: Path) -> str:
    proto = t["protocol"]
    reason = why_not_runnable(t, data)
    if reason:
        print(f"{name}: SKIPPED — {reason}")
        return "SKIPPED"
    run_name = f"reproduce-{name}"
    cmd = [str(Path(sys.executable).parent / "srbench-bench"), f"method={proto['method']}", f"dataset={proto['dataset']}",
           f"dataset.root={data / proto['data']}", f"metrics={proto['metrics']}", f"results_dir={results}",
           f"run_name={run_name}", "print_table=false", *proto.get("overrides", [])]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    summary_path = results / str(proto["dataset"]) / str(proto["method"]) / run_name / "summary.json"
    if proc.returncode != 0 or not summary_path.exists():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{name}: FAIL — the run did not complete: {last}")
        return "FAIL"
    summary = json.loads(summary_path.read_text())
    rows = compare(t["published"], summary)
    verdict = "PASS" if all(ok for *_, ok in rows) and summary.get("n_images") == proto.get("n_images",
                                                                                          summary.get("n_images")) else "FAIL"
    print(f"{name}: {verdict} — {t['title']} (n={summary.get('n_images')}; source: {t['source']})")
    for m, ours, theirs, tol, ok in rows:
        print(f"  {m:6s} ours {ours:.4f}  published {theirs:.4f}  |Δ| {abs(ours - theirs):.4f}  tol {tol}  "
              f"{'PASS' if ok else 'FAIL'}")
    return verdict


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="srbench reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", nargs="*")
    parser.add_argument("--list", action="store_true", help="every table and what it needs")
    parser.add_argument("--data", type=Path, default=Path("data"), help="folder holding the tables' image folders")
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    known = tables()
    if args.list or not args.table:
        for name, path in known.items():
            t = load(path)
            reason = why_not_runnable(t, args.data)
            p = t["protocol"]
            print(f"{name:24s} {t['title']} — method={p['method']} data={args.data / p['data']} metrics={p['metrics']}"
                  f" — {'runnable' if reason is None else 'SKIPPED: ' + reason}")
        return 0
    verdicts = []
    for name in args.table:
        if name not in known:
            print(f"srbench reproduce: no table {name!r}; known: {', '.join(known)}")
            return 2
        verdicts.append(run_table(name, load(known[name]), args.data, args.results))
    return 1 if "FAIL" in verdicts else 0
