"""``srbench``: the umbrella command.

    srbench list                       methods (entry points), scales, weights present; datasets
    srbench score SR_DIR HR_DIR        score images made by any code with the same harness
    srbench weights list|verify|download
    srbench data prepare|list|verify
    srbench perf                       speed/memory table (random weights)
    srbench report                     leaderboard from results/
    srbench reproduce TABLE            a published table, run and compared (--list: every table)
    srbench bench ...                  same as srbench-bench (Hydra overrides)
    srbench train ...                  same as srbench-train
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "list": ("srbench.commands.list", "methods and datasets srbench can see"),
    "score": ("srbench.commands.score", "score an SR folder against an HR folder"),
    "weights": ("srbench.commands.weights", "weight files: list, verify, download"),
    "data": ("srbench.commands.data", "datasets: prepare, list, verify"),
    "perf": ("srbench.runners.perf", "speed / memory benchmark"),
    "report": ("srbench.commands.report", "leaderboard and plots from results/"),
    "reproduce": ("srbench.commands.reproduce", "a published table: ours next to theirs, PASS/FAIL/SKIPPED"),
}


def _usage() -> str:
    lines = ["usage: srbench <command> [args]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["  bench    run the benchmark (Hydra app, = srbench-bench)", "  train    train a method (= srbench-train)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd in ("bench", "train"):
        module = importlib.import_module(f"srbench.runners.{cmd}")
        sys.argv = [f"srbench-{cmd}", *rest]
        module.main()
        return 0
    if cmd not in COMMANDS:
        print(f"srbench: error: unknown command {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[cmd][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
