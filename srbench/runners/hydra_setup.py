"""Hydra glue: every registered method/dataset is a config-group option, and a wrong name is one line.

A third-party method registered through entry points but shipping no ``conf/method/<name>.yaml``
still works as ``method=<name>``: a minimal node ``{name: <name>}`` is put in Hydra's ConfigStore.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence

from srbench.paths import CONF_DIR


def method_name_of(option: str) -> str:
    """The registered method a ``conf/method/<option>.yaml`` runs (its ``name:``, possibly inherited
    through its defaults list, e.g. ``ecdp_tiny`` → ``ecdp``); the option itself when there is no file."""
    from omegaconf import OmegaConf

    seen = set()
    while option not in seen:
        seen.add(option)
        path = CONF_DIR / "method" / f"{option}.yaml"
        if not path.is_file():
            return option
        node = OmegaConf.load(path)
        if "name" in node:
            return str(node["name"])
        parents = [d for d in node.get("defaults", []) if isinstance(d, str) and d != "_self_"]
        if not parents:
            return option
        option = parents[0]
    return option


def group_options(group: str) -> set[str]:
    return {p.stem for p in (CONF_DIR / group).glob("*.yaml")}


def _override_values(argv: Sequence[str], group: str) -> Iterable[str]:
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") == group:
            # multirun sweeps: a,b,c ; ignore Hydra sweep functions such as glob(...)
            if "(" in value:
                continue
            yield from (v.strip() for v in value.split(",") if v.strip())


def prepare_hydra(argv: Sequence[str], groups: Mapping[str, Callable[[], Mapping[str, str]]]) -> None:
    """Register plugin options and reject unknown ones before Hydra composes anything."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, registry in groups.items():
        registered = set(registry())
        files = group_options(group)
        for name in sorted(registered - files):
            cs.store(group=group, name=name, node={"name": name})
        valid = files | registered
        for value in _override_values(argv, group):
            if value not in valid:
                print(f"srbench: error: unknown {group} {value!r}; valid: {', '.join(sorted(valid))}",
                      file=sys.stderr)
                raise SystemExit(2)
