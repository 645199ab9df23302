"""Every command-line example in the READMEs and in conf/**/*.yaml comments composes.

Regression: ``conf/dataset/pairs.yaml`` documented ``dataset.lr_pattern={base}_LR{scale}.png``,
which Hydra rejects ("no viable alternative at input '{base}'") — documentation that does not
run. Each example's overrides are composed against the app it names (bench, train, perf), as
its command would; sweeps (``a,b``) compose their first value. Nothing is run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from srbench.paths import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]
#: what starts a command whose arguments are Hydra overrides, and the app it composes
APPS = {"srbench-bench": "bench", "srbench.runners.bench": "bench", "srbench-train": "train",
        "srbench.runners.train": "train", "srbench perf": "perf", "srbench-perf": "perf"}
MAKE = {"bench": "bench", "sweep": "bench", "train": "train", "perf": "perf"}
PLACEHOLDER = re.compile(r"<[^>]*>|…|\.\.\.|\$|=mymethod$")


def _documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "methods").glob("*/README.md"))]
    return docs + sorted(CONF_DIR.rglob("*.yaml"))


def _is_command(text: str) -> bool:
    return any(a in text for a in APPS) or bool(re.search(r"\bmake (bench|sweep|train|perf)\b", text))


def _command_lines(path: Path) -> list[str]:
    """Command lines of a document; a yaml comment that gives bare overrides (``dataset.x=…``) counts too,
    as a command of the app that file belongs to."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if path.suffix == ".yaml":
            if not line.startswith("#"):
                continue
            line = line.lstrip("#").strip()
        spans = re.findall(r"`([^`]+)`", line)
        if any(_is_command(sp) for sp in spans):  # commands quoted inside prose
            lines += [sp for sp in spans if _is_command(sp)]
            continue
        line = line.strip("`").removeprefix("$ ").strip()
        if _is_command(line):
            lines.append(line)
        elif path.suffix == ".yaml" and (bare := re.search(r"(^|\s|')(dataset|method|metrics)(\.\w+)?=", line)):
            app = "srbench-train" if "train" in path.name else "srbench-bench"
            group = path.parent.name  # the option this file is: conf/dataset/pairs.yaml → dataset=pairs
            select = f"{group}={path.stem} " if group in ("dataset", "method", "metrics") else ""
            lines.append(f"{app} {select}" + line[bare.start():])
    return lines


def _cut_comment(line: str) -> str:
    for marker in ("  #", "   (", "  ("):
        if marker in line:
            line = line[: line.index(marker)]
    return line.split("`")[0] if line.count("`") % 2 else line


def _overrides(line: str) -> tuple[str, list[str]] | None:
    """(app, overrides) of a documented command line, or None when it is not one."""
    line = _cut_comment(line)
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    app, args = None, []
    make = re.search(r"\bmake (bench|sweep|train|perf)\b", line)
    if make:
        if make.group(1) not in tokens:  # prose that mentions `make bench`
            return None
        app = MAKE[make.group(1)]
        for tok in tokens[tokens.index(make.group(1)) + 1:]:
            key, _, value = tok.partition("=")
            if key == "METHOD":
                args += [] if value == "all" else [f"method={value}"]
            elif key in ("DATASET", "TRAIN_DATASET"):
                args.append(f"dataset={value}")
            elif key in ("DATASET_ARGS", "ARGS"):
                args += shlex.split(value)
    else:
        for i, tok in enumerate(tokens):
            name = f"{tok} {tokens[i + 1]}" if tok == "srbench" and i + 1 < len(tokens) else tok
            if name in APPS:
                app = APPS[name]
                args = tokens[i + (2 if tok == "srbench" else 1):]
                break
    if app is None:
        return None
    out = []
    for tok in args:
        if tok in ("-m", "\\") or "=" not in tok or PLACEHOLDER.search(tok) or tok.startswith(("hydra", "[")):
            continue
        key, _, value = tok.rstrip(".;:)").partition("=")  # prose: "… use dataset=x."
        if "," in value and not value.startswith(("[", "{", '"', "'")):  # a sweep: compose its first value
            value = value.split(",")[0]
        out.append(f"{key}={value}")
    if app == "train" and not any(o.startswith(("method=", "experiment=")) for o in out):
        out.append("method=ecdp_tiny")  # an example that leaves the method to the reader (method=<name>)
    return app, out


def _examples() -> list[tuple[str, str, str, list[str]]]:
    found = []
    for doc in _documents():
        for line in _command_lines(doc):
            parsed = _overrides(line)
            if parsed and parsed[1]:
                found.append((str(doc.relative_to(ROOT)), line, *parsed))
    return found


EXAMPLES = _examples()


def test_the_documents_hold_examples():
    docs = {e[0] for e in EXAMPLES}
    assert "README.md" in docs and "conf/dataset/pairs.yaml" in docs and len(EXAMPLES) >= 25, docs


@pytest.mark.parametrize(("doc", "line", "app", "overrides"), EXAMPLES, ids=[f"{e[0]}:{e[1][:60]}" for e in EXAMPLES])
def test_documented_example_composes(doc, line, app, overrides):
    from omegaconf import OmegaConf

    from srbench.runners.bench import without_all
    from srbench.runners.compose import compose_app

    cfg = compose_app(app, without_all(overrides) if app == "bench" else overrides)
    OmegaConf.to_container(cfg, resolve=True)  # interpolations resolve too
