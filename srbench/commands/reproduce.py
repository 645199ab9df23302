"""``srbench reproduce TABLE``: a published table, run under its protocol and compared number by number.

    srbench reproduce --list
    srbench reproduce bicubic_set5_x4 --data ../shared/data

Each table is a data file ``conf/reproduce/<table>.yaml``: the protocol (method preset, dataset, the
folder its images live in under ``--data``, metric profile, extra overrides), the published numbers
with their source and a stated tolerance. The run goes through ``srbench-bench`` (same harness, same
results store under ``--results``); each metric prints ours next to theirs with PASS or FAIL, and a
table that cannot run prints SKIPPED with a one-line reason (method not installed, data missing,
weights missing, or no published number retrievable: ``published: {}`` with ``not_retrievable:``).
A table's ``not_compared: {metric: reason}`` lists published columns it leaves out, and why.

``protocol.route`` says how ours is made: ``bench`` (default: the method preset through
``srbench-bench``) or ``y-channel`` (the SRCNN/VDSR MATLAB test script behind the classic bicubic
column: bicubic down and up on the HR's 8-bit Y, :mod:`srbench.commands.reproduce_y`).
``--route bench`` runs a ``y-channel`` table through the bench instead (official RGB LR files) to
compare the two routes.

    srbench reproduce osediff_realsr --sr-dir PATH --data DIR

scores a folder of SR images — the authors' released outputs — against the table's HR under the
table's metric profile (``srbench score``) instead of running the method, and compares the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
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


def route_of(t: dict[str, Any], override: str | None = None) -> str:
    return override or str(t["protocol"].get("route", "bench"))


def why_not_runnable(t: dict[str, Any], data: Path, route: str | None = None) -> str | None:
    from srbench.method import method_entries

    proto = t["protocol"]
    if not t.get("published"):
        return f"no published numbers retrievable: {t.get('not_retrievable', 'none given in the table')}"
    if route_of(t, route) == "y-channel":
        hr = data / proto["data"] / "HR"
        return None if hr.is_dir() else f"data missing: {hr} (pass --data DIR holding {proto['data']}/HR/)"
    method = str(proto["method"]).split("_")[0]
    if proto["method"] not in method_entries() and method not in method_entries():
        return f"method not installed: {proto['method']}"
    folder = data / proto["data"]
    if not folder.is_dir():
        return f"data missing: {folder} (pass --data DIR holding {proto['data']}/)"
    return _weights_missing(proto)


def _weights_missing(proto: dict[str, Any]) -> str | None:
    """The one-line reason the table's method preset lacks its weights here, or None."""
    from srbench.runners.bench import available_for
    from srbench.runners.compose import method_config

    method_cfg = method_config(str(proto["method"]), [o for o in proto.get("overrides", []) if o.startswith("method.")])
    reason = available_for(str(proto["method"]), method_cfg, _scale(proto))
    return None if reason is None else f"weights missing: {reason}"


def compare(published: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, float, float, float, bool]]:
    """(metric, ours, theirs, tolerance, pass) for every published metric."""
    out = []
    for m, spec in published.items():
        ours = float(((summary.get("metrics") or {}).get(m) or {}).get("mean", float("nan")))
        out.append((m, ours, float(spec["value"]), float(spec["tolerance"]),
                    abs(ours - float(spec["value"])) <= float(spec["tolerance"])))
    return out


def _scale(proto: dict[str, Any]) -> float:
    """The table's scale: ``protocol.scale``, else its ``dataset.scale=`` override, else 4."""
    if "scale" in proto:
        return float(proto["scale"])
    for o in proto.get("overrides", []):
        key, _, value = str(o).partition("=")
        if key == "dataset.scale":
            return float(value)
    return 4.0


def report_verdict(name: str, t: dict[str, Any], summary: dict[str, Any], how: str) -> str:
    """Print ours next to published for every metric; PASS only when every published metric was
    computed, on the stated number of images, within its tolerance. A metric that could not be
    computed here (weights missing) is SKIPPED with its reason, and so is the table unless one fails."""
    proto = t["protocol"]
    rows = compare(t["published"], summary)
    missing = summary.get("missing_metrics") or {}
    n, want = summary.get("n_images"), proto.get("n_images", summary.get("n_images"))
    computed = [r for r in rows if math.isfinite(r[1])]
    if any(not ok for *_, ok in computed) or n != want:
        verdict = "FAIL"
    elif not computed:
        verdict = "SKIPPED"
    else:
        verdict = "PASS"
    partial = f" on {len(computed)} of {len(rows)} metrics, the others SKIPPED" if 0 < len(computed) < len(rows) else ""
    print(f"{name}: {verdict}{partial} — {t['title']} ({how}; n={n}{'' if n == want else f', table has {want}'}; "
          f"source: {t['source']})")
    for m, reason in (t.get("not_compared") or {}).items():
        print(f"  {m:8s} not compared: {reason}")
    for m, ours, theirs, tol, ok in rows:
        if not math.isfinite(ours):
            print(f"  {m:8s} not computed: {missing.get(m, 'no such column in this run')}  published {theirs:.4f}  SKIPPED")
            continue
        print(f"  {m:8s} ours {ours:.4f}  published {theirs:.4f}  |Δ| {abs(ours - theirs):.4f}  tol {tol}  "
              f"{'PASS' if ok else 'FAIL'}")
    return verdict


def compared_extra_metrics(t: dict[str, Any]) -> list[str]:
    """The table's pyiqa extras that it compares with a published number (``maniqa-pipal`` is published
    as ``maniqa_pipal``). Both routes compute exactly these: the bench route would otherwise take the
    profile's default extras, computing columns no table compares (five learned metrics over 3,000
    DIV2K-Val images) and missing any the profile lacks."""
    published = set(t.get("published") or {})
    return [m for m in t["protocol"].get("extra", []) if m.replace("-", "_") in published]


def run_table(name: str, t: dict[str, Any], data: Path, results: Path, route: str | None = None) -> str:
    proto = t["protocol"]
    reason = why_not_runnable(t, data, route)
    if reason:
        print(f"{name}: SKIPPED — {reason}")
        return "SKIPPED"
    if route_of(t, route) == "y-channel":
        from srbench.commands import reproduce_y

        s = int(_scale(proto))
        summary = reproduce_y.run(data / proto["data"] / "HR", s, results / "reproduce" / f"{name}-y-channel",
                                  profile=str(proto["metrics"]))
        return report_verdict(name, t, summary, "route y-channel: bicubic on the HR's 8-bit Y, SRCNN/VDSR test script")
    run_name = f"reproduce-{name}"
    cmd = [str(Path(sys.executable).parent / "srbench-bench"), f"method={proto['method']}", f"dataset={proto['dataset']}",
           f"dataset.root={data / proto['data']}", f"metrics={proto['metrics']}", f"results_dir={results}",
           f"run_name={run_name}", "print_table=false", f"metrics.extra=[{','.join(compared_extra_metrics(t))}]",
           *proto.get("overrides", [])]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    summary_path = results / str(proto["dataset"]) / str(proto["method"]) / run_name / "summary.json"
    if proc.returncode != 0 or not summary_path.exists():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{name}: FAIL — the run did not complete: {last}")
        return "FAIL"
    return report_verdict(name, t, json.loads(summary_path.read_text()), f"ran {proto['method']}")


def score_sr_dir(name: str, t: dict[str, Any], sr_dir: Path, data: Path, results: Path) -> str:
    """``--sr-dir``: score a folder of SR images (e.g. the authors' released outputs) against the
    table's HR with the table's metric profile (``srbench score``), and compare with the published numbers."""
    from srbench.commands import score
    from srbench.data.io import list_images

    proto = t["protocol"]
    if not t.get("published"):
        print(f"{name}: SKIPPED — no published numbers retrievable: {t.get('not_retrievable', 'none given in the table')}")
        return "SKIPPED"
    candidates = proto.get("hr", "HR")
    candidates = [candidates] if isinstance(candidates, str) else list(candidates)
    hr_dir = next((data / proto["data"] / c for c in candidates if (data / proto["data"] / c).is_dir()), None)
    if not sr_dir.is_dir():
        print(f"{name}: SKIPPED — no SR folder {sr_dir}")
        return "SKIPPED"
    if hr_dir is None:
        print(f"{name}: SKIPPED — data missing: {data / proto['data']}/{{{','.join(candidates)}}} "
              f"(pass --data DIR holding {proto['data']}/)")
        return "SKIPPED"
    n_hr, want = len(list_images(hr_dir)), proto.get("n_images")
    if want is not None and n_hr != int(want):
        print(f"{name}: SKIPPED — {hr_dir} holds {n_hr} of the table's {want} images: the published mean is over all of them")
        return "SKIPPED"
    out = results / "reproduce" / f"{name}-sr-dir"
    published = set(t["published"])
    extra = compared_extra_metrics(t)
    argv = [str(sr_dir), str(hr_dir), "--profile", str(proto["metrics"]), "--scale", f"{_scale(proto):g}",
            "--modcrop-hr", "--out", str(out), "--lpips", "alex" if "lpips" in published else "none"]
    if extra:
        argv += ["--extra", ",".join(extra)]
    if proto.get("sr_suffix"):
        argv += ["--sr-suffix", str(proto["sr_suffix"])]
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        rc = score.main(argv)  # a user error (unmatched files, size mismatch) is one line on stderr, rc 2
    if rc != 0 or not (out / "summary.json").exists():
        last = ([ln for ln in errors.getvalue().splitlines() if ln.startswith("srbench score")] or ["no output"])[-1]
        print(f"{name}: FAIL — scoring {sr_dir} did not complete: {last}")
        return "FAIL"
    verdict = report_verdict(name, t, json.loads((out / "summary.json").read_text()), f"scored {sr_dir}")
    logs = sorted(sr_dir.glob(str(proto.get("per_image_log", "metrics/*.log"))))
    if logs:
        agree = compare_per_image(parse_per_image_log(logs[-1]), out / "per_image.csv", t["published"])
        print(f"  per-image log {logs[-1]}: " + "; ".join(
            f"{m} {k} images, max |Δ| {d:.2g}, {bad} beyond tol" for m, (k, d, bad) in agree.items()))
        if verdict == "PASS" and any(bad for _, _, bad in agree.values()):
            verdict = "FAIL"
            print(f"{name}: FAIL — some images differ from the authors' per-image log beyond the tolerance")
    return verdict


#: ``name.png | PSNR: 25.79; SSIM: 0.85; ... | Runtime`` — the per-image lines of the IQA log the
#: OSEDiff authors ship with their outputs (``results_osediff/metrics/*.log``)
_LOG_LINE = re.compile(r"([^/\s|]+)\.(?:png|jpg|jpeg) \| ([^|]+)")


def parse_per_image_log(path: Path) -> dict[str, dict[str, float]]:
    """{image stem: {metric (lower case): value}} from a per-image metrics log."""
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = _LOG_LINE.search(line)
        if not m:
            continue
        values = {}
        for item in m.group(2).split(";"):
            key, _, value = item.partition(":")
            try:
                values[key.strip().lower()] = float(value)
            except ValueError:
                continue
        if values:
            out[m.group(1)] = values
    return out


def compare_per_image(log: dict[str, dict[str, float]], per_image_csv: Path,
                      published: dict[str, Any]) -> dict[str, tuple[int, float, int]]:
    """Per published metric that both have: (images compared, max |ours − log|, images beyond the tolerance)."""
    import csv

    with open(per_image_csv, newline="") as f:
        ours = {r["image"]: r for r in csv.DictReader(f)}
    out = {}
    for m, spec in published.items():
        key = m.replace("-", "_").split("_")[0]  # maniqa_pipal is the log's MANIQA
        diffs = [abs(float(ours[img][m]) - vals[key]) for img, vals in log.items()
                 if img in ours and key in vals and ours[img].get(m) not in (None, "")]
        if diffs:
            out[m] = (len(diffs), max(diffs), sum(d > float(spec["tolerance"]) for d in diffs))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="srbench reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", nargs="*")
    parser.add_argument("--list", action="store_true", help="every table and what it needs")
    parser.add_argument("--data", type=Path, default=Path("data"), help="folder holding the tables' image folders")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--route", choices=["bench", "y-channel"], default=None,
                        help="how ours is made, overriding the table's protocol.route (bench: the method through "
                             "srbench-bench; y-channel: bicubic on the HR's Y, the SRCNN/VDSR test script)")
    parser.add_argument("--sr-dir", type=Path, default=None,
                        help="score this folder of SR images (e.g. the authors' released outputs) instead of running "
                             "the method; pairs with the table's HR by file stem")
    args = parser.parse_args(argv)
    known = tables()
    if args.list or not args.table:
        for name, path in known.items():
            t = load(path)
            reason = why_not_runnable(t, args.data, args.route)
            p = t["protocol"]
            route = route_of(t, args.route)
            needs = (f"data={args.data / p['data']}/HR" if route == "y-channel" else
                     f"method={p['method']} (weights) data={args.data / p['data']}")
            cols = ",".join(t.get("published") or {}) or "none"
            print(f"{name:24s} {t['title']} — route={route} needs {needs} metrics={p['metrics']} published={cols}"
                  f" — {'runnable' if reason is None else 'SKIPPED: ' + reason}")
        print("every table also scores a folder of SR images instead of running the method: --sr-dir PATH "
              "(paired with the table's HR by file stem)")
        return 0
    verdicts = []
    for name in args.table:
        if name not in known:
            print(f"srbench reproduce: no table {name!r}; known: {', '.join(known)}")
            return 2
        t = load(known[name])
        verdicts.append(score_sr_dir(name, t, args.sr_dir, args.data, args.results) if args.sr_dir
                        else run_table(name, t, args.data, args.results, args.route))
    return 1 if "FAIL" in verdicts else 0
