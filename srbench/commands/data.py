"""``srbench data prepare|verify|list``: lay out, check and list the benchmark datasets.

    srbench data list                                    every dataset: prepared or not, what to put where
    srbench data prepare NAME --source PATH [--copy]     check a copy you have and lay it out under data/NAME/
    srbench data prepare NAME --download                 fetch the public archives (checksums verified)
    srbench data verify NAME [--quick]                   re-check data/NAME against its manifest

The data root is ``--root``, else ``$SRBENCH_DATA``, else ``./data`` (``conf/bench.yaml``'s
``paths.data``). Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from srbench.data.base import DatasetError
from srbench.data.catalog import CATALOG
from srbench.data.prepare import data_root, prepare, status, verify


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="srbench data", description="Lay out, check and list the benchmark datasets.")
    p.add_argument("--root", default=None, help="data root (default: $SRBENCH_DATA or ./data)")
    sub = p.add_subparsers(dest="cmd", required=True)

    sub.add_parser("list", help="every dataset: prepared or not, and what to put where")

    pp = sub.add_parser("prepare", help="check a copy of a dataset and lay it out under <root>/NAME/")
    pp.add_argument("name", choices=sorted(CATALOG), metavar="NAME", help=f"one of: {', '.join(sorted(CATALOG))}")
    pp.add_argument("--source", default=None, help="folder holding your copy (any of the usual layouts)")
    pp.add_argument("--download", action="store_true", help="fetch the public archives first (needs network)")
    how = pp.add_mutually_exclusive_group()
    how.add_argument("--copy", dest="mode", action="store_const", const="copy", help="copy files (default: symlink)")
    how.add_argument("--hardlink", dest="mode", action="store_const", const="hardlink", help="hard-link files")
    pp.add_argument("--sha256", default=None, metavar="FILE", help="sha256sum-format list to check the files against")
    pp.add_argument("--no-hash", action="store_true", help="record sizes only (faster; verify then checks sizes)")
    pp.add_argument("--force", action="store_true", help="replace an existing layout")
    pp.set_defaults(mode="symlink")

    pv = sub.add_parser("verify", help="re-check <root>/NAME against the manifest written by prepare")
    pv.add_argument("name", choices=sorted(CATALOG), metavar="NAME")
    pv.add_argument("--quick", action="store_true", help="check presence and sizes only, not sha256")
    return p


def _list(root: str | None) -> int:
    rows = status(root)
    width = max(len(str(r["name"])) for r in rows)
    print(f"data root: {data_root() if root is None else root}")
    for r in rows:
        state = f"prepared ({r['files']} files)" if r["files"] is not None else "not prepared"
        dl = "  [--download available]" if r["download"] else ""
        print(f"{r['name']:<{width}}  {state:<24} {r['title']}{dl}")
        if r["files"] is None:
            print(f"{'':<{width}}  → {r['instructions']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.cmd == "list":
            return _list(args.root)
        if args.cmd == "prepare":
            report = prepare(args.name, args.source, root=args.root, download=args.download, mode=args.mode,
                             sha256_manifest=args.sha256, force=args.force, hash_files=not args.no_hash,
                             progress=sys.stderr.isatty())
            groups = ", ".join(f"{k}: {v}" for k, v in report.groups.items())
            print(f"{report.name}: laid out {report.files} files ({groups}) under {report.dest} "
                  f"[{args.mode}] in {report.seconds:.1f} s")
            if report.skipped:
                print(f"  not in the source (optional): {', '.join(report.skipped)}")
            if report.ignored:
                print(f"  ignored {report.ignored} other files in the source folders")
            return 0
        if args.cmd == "verify":
            problems = verify(args.name, root=args.root, quick=args.quick)
            for line in problems[:50]:
                print(f"{args.name}: {line}", file=sys.stderr)
            if len(problems) > 50:
                print(f"{args.name}: … and {len(problems) - 50} more problems", file=sys.stderr)
            if not problems:
                print(f"{args.name}: OK")
            return 1 if problems else 0
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse enforces a subcommand


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
