"""``srbench weights list|verify|download``: the weight files each registered method needs.

    srbench weights list [METHOD ...]        each required file: found or missing, and where
    srbench weights verify [METHOD ...]      recompute sha256 of found files against published digests
    srbench weights download METHOD [...]    fetch missing files (needs network; sha256 checked)

A method's requirements come from ``SRMethod.required_weights(cfg)`` with ``cfg`` read from
``conf/method/<name>.yaml`` when it exists, plus ``--set key=value`` overrides (e.g.
``--set variant=fp16``). Method classes are imported only here, one at a time, so a broken
plugin is reported on one line and the others are still listed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from srbench import method as method_registry
from srbench import weights as W
from srbench.errors import one_line


def method_config(name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The config ``method=<name>`` runs with (:func:`srbench.runners.compose.method_config`), with
    ``key=value`` overrides of the method node (``--set variant=fp16``)."""
    from srbench.runners.compose import method_config as compose_method

    return compose_method(name, [f"++method.{o}" for o in overrides])


def _requirements(
    names: Sequence[str], overrides: Sequence[str]
) -> list[tuple[str, Mapping[str, Any], list[W.WeightFile] | str]]:
    """(method, cfg, files) per method; ``files`` is an error line when the class cannot be loaded."""
    from srbench.runners.compose import group_options

    entries = method_registry.method_entries()
    presets = group_options("method")  # conf/method/<preset>.yaml, e.g. realesrgan_x4plus (runs spandrel)
    unknown = [n for n in names if n not in entries and n not in presets]
    if unknown:
        raise SystemExit(
            f"srbench weights: unknown method {', '.join(map(repr, unknown))}; registered: {', '.join(entries) or 'none'}"
        )
    out = []
    for name in names or list(entries):
        cfg = method_config(name, overrides)
        try:
            cls = entries[str(cfg.get("name", name))].load()
            files = W.required_for(cls, cfg)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the others
            out.append((name, cfg, f"cannot load method: {one_line(exc)}"))
            continue
        out.append((name, cfg, files))
    return out


def _label(wf: W.WeightFile) -> str:
    if wf.is_dir:
        return f"{wf.filename}/" + (f" ({wf.hf_repo})" if wf.hf_repo else "")
    return wf.filename


def _explicit(wf: W.WeightFile, cfg: Mapping[str, Any]) -> str | None:
    return W.explicit_path(wf, cfg.get("weights"))


def cmd_list(names: Sequence[str], overrides: Sequence[str]) -> int:
    for name, cfg, files in _requirements(names, overrides):
        print(name)
        if isinstance(files, str):
            print(f"  {files}")
            continue
        if not files:
            print("  no weight files needed" + (" (weights=random)" if W.is_random(cfg) else ""))
            continue
        width = max(len(_label(wf)) for wf in files)
        for wf in files:
            path = W.find(wf, _explicit(wf, cfg))
            digest = (
                "sha256 published"
                if (wf.sha256 or wf.sha256_prefix or getattr(wf, "files_sha256", None))
                else "no published sha256"
            )
            licence = f"; licence: {wf.licence}" if wf.licence else ""
            if path is not None:
                print(f"  {_label(wf):<{width}}  found    {path}  ({digest}{licence})")
            else:
                print(
                    f"  {_label(wf):<{width}}  MISSING  source: {wf.source or 'none published'}  ({digest}{licence})"
                )
    return 0


def cmd_verify(names: Sequence[str], overrides: Sequence[str]) -> int:
    status = 0
    for name, cfg, files in _requirements(names, overrides):
        print(name)
        if isinstance(files, str):
            print(f"  {files}")
            status = 1
            continue
        for wf in files:
            path = W.find(wf, _explicit(wf, cfg))
            if path is None:
                print(f"  {_label(wf)}: MISSING")
                status = 1
                continue
            try:
                W.verify(wf, path)
            except W.MissingWeightsError as exc:
                print(f"  {_label(wf)}: MISMATCH — {exc}")
                status = 1
                continue
            if isinstance(wf, W.WeightDir):
                pinned = len(wf.files_sha256)
                print(f"  {_label(wf)}: {'ok' if pinned else 'present'} {path} ({pinned} pinned digests)")
                for rel, digest in W.dir_sha256(path).items():
                    print(f"      {rel}  sha256={digest}")
            elif wf.sha256 or wf.sha256_prefix:
                print(f"  {_label(wf)}: ok {path}")
            else:
                print(f"  {_label(wf)}: unchecked (no published sha256) {path} sha256={W.sha256_file(path)}")
    return status


def cmd_download(names: Sequence[str], overrides: Sequence[str]) -> int:
    status = 0
    for name, cfg, files in _requirements(names, overrides):
        print(name)
        if isinstance(files, str):
            print(f"  {files}")
            status = 1
            continue
        for wf in files:
            try:
                path = W.resolve(wf, _explicit(wf, cfg), download=True)
            except W.MissingWeightsError as exc:
                print(f"  {_label(wf)}: FAILED — {exc}")
                status = 1
                continue
            print(f"  {_label(wf)}: ok {path}")
    return status


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="srbench weights", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["list", "verify", "download"])
    parser.add_argument(
        "methods", nargs="*", metavar="METHOD", help="default: every registered method (list, verify)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the method config (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.action == "download" and not args.methods:
        parser.error("download needs at least one METHOD")
    try:
        run = {"list": cmd_list, "verify": cmd_verify, "download": cmd_download}[args.action]
        return run(args.methods, args.overrides)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
