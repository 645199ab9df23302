"""Hydra config composition — the one place a config (or a method's part of it) is composed.

* :func:`prepare_hydra` — every registered method/dataset is a config-group option (a plugin
  without ``conf/method/<name>.yaml`` gets a minimal node ``{name: <name>}`` in Hydra's
  ConfigStore), and an unknown ``method=``/``dataset=`` value is one line before Hydra composes.
* :func:`compose_app` — a whole app config (``bench``, ``train``, ``perf``) with overrides.
* :func:`method_config` — the method node ``method=<option>`` composes to (its yaml with the
  defaults list that presets inherit through, plus ``method.*`` overrides), as a plain dict.

Behaviour is the same whether or not Hydra is initialised (inside a Hydra app the app's
instance is used; elsewhere a temporary one over :data:`srbench.paths.CONF_DIR`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from srbench.paths import CONF_DIR


def group_options(group: str) -> set[str]:
    return {p.stem for p in (CONF_DIR / group).glob("*.yaml")}


def override_values(argv: Sequence[str], group: str) -> Iterable[str]:
    """The options a command line gives a config group (``method=a,b`` in a sweep gives a and b)."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") == group:
            if "(" in value:  # Hydra sweep functions such as glob(...)
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
        for value in override_values(argv, group):
            if value not in valid:
                print(f"srbench: error: unknown {group} {value!r}; valid: {', '.join(sorted(valid))}",
                      file=sys.stderr)
                raise SystemExit(2)


def _register_methods() -> None:
    from srbench.method import method_entries

    prepare_hydra([], groups={"method": method_entries})


@contextlib.contextmanager
def _hydra() -> Iterator[None]:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app, or a caller's initialize()
        yield
        return
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def compose_app(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """The ``conf/<config_name>.yaml`` app config with command-line style overrides (an OmegaConf node)."""
    from hydra import compose

    _register_methods()
    with _hydra():
        return compose(config_name=config_name, overrides=list(overrides))


def method_overrides(overrides: Sequence[str]) -> list[str]:
    """The ``method.*`` overrides of a command line (``+method.x=1``, ``~method.y`` included)."""
    return [o for o in overrides if o.lstrip("+~").startswith("method.")]


def method_config(option: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The method node ``method=<option>`` gives, with the ``method.*`` entries of ``overrides`` applied."""
    from hydra import compose
    from omegaconf import OmegaConf

    _register_methods()
    with _hydra():
        cfg = compose(overrides=[f"+method={option}", *method_overrides(overrides)])
    return OmegaConf.to_container(cfg.method, resolve=True)  # type: ignore[return-value]


def method_name_of(option: str) -> str:
    """The registered method a ``method=<option>`` preset runs (``ecdp_tiny`` → ``ecdp``); an option
    that is neither a preset nor a registered method is returned as is (the caller reports it)."""
    from srbench.method import method_entries

    if option not in group_options("method") and option not in method_entries():
        return option
    return str(method_config(option).get("name", option))
