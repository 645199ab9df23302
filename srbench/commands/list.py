"""``srbench list``: every method found through the ``srbench.methods`` entry points, and datasets."""

from __future__ import annotations

import argparse

from srbench.commands.weights import method_config
from srbench.errors import one_line
from srbench.method import method_entries
from srbench.weights import explicit_path, find


def method_rows() -> list[dict]:
    rows = []
    for name, entry in method_entries().items():
        row = {"method": name, "target": entry.target, "package": entry.distribution or "?"}
        try:
            cls = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is listed, not fatal
            row.update(scales="?", weights=f"cannot load: {one_line(exc)}")
            rows.append(row)
            continue
        row["scales"] = "any" if cls.scales is None else ",".join(f"x{s:g}" for s in sorted(cls.scales))
        try:
            cfg = method_config(name)  # conf/method/<name>.yaml: the config `method=<name>` runs with
            files = cls.required_weights(cfg)
        except Exception as exc:  # noqa: BLE001
            files, row["weights"] = [], f"? ({one_line(exc)})"
        if files:
            missing = [wf.filename for wf in files if find(wf, explicit_path(wf, cfg.get("weights"))) is None]
            row["weights"] = "present" if not missing else f"missing: {', '.join(missing)}"
        else:
            row.setdefault("weights", "none needed")
        rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="srbench list", description=__doc__)
    parser.add_argument("what", nargs="?", default="all", choices=["all", "methods", "datasets"])
    args = parser.parse_args(argv)
    if args.what in ("all", "methods"):
        rows = method_rows()
        print("methods (entry-point group srbench.methods):")
        width = max([len(r["method"]) for r in rows] + [6])
        for r in rows:
            print(f"  {r['method']:<{width}}  scales={r['scales']:<12} weights: {r['weights']}  [{r['target']}, {r['package']}]")
    if args.what in ("all", "datasets"):
        from srbench.data.base import dataset_registry

        print("datasets:")
        for name, target in dataset_registry().items():
            print(f"  {name:<18} [{target}]")
    return 0
