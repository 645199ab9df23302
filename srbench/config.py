"""Typed configs: a dataclass per config node, checked once, with one-line errors.

A method (or runner) declares what it reads as a dataclass; :func:`typed` builds it from the
Hydra/OmegaConf node or plain mapping. OmegaConf's structured configs check the types and
reject unknown keys; :func:`bounded` fields (and :func:`within` metadata) carry their allowed range, checked right after::

    @dataclass
    class SamplerConfig:
        steps: int = bounded(20, ge=1)
        method: str = bounded("dopri5", choices=("dopri5", "rk4", "euler"))

    cfg = typed(SamplerConfig, node, where="method.sampler")   # ConfigError: method.sampler.steps=0: …

Hydra's ConfigStore takes the same dataclasses as schemas for whole config files
(:func:`register_schema`), so a command line override is checked before any work starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from srbench.errors import ConfigError

T = TypeVar("T")

_CHECK = "srbench_check"


def to_container(cfg: Any) -> Any:
    """A resolved plain dict/list from an OmegaConf node (anything else is returned as is)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of one field (any bound may be omitted; ``None`` passes when ``optional``)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None

    def violation(self, value: Any) -> str | None:
        if value is None:
            return None
        if self.choices is not None:
            return None if value in self.choices else f"must be one of {', '.join(map(str, self.choices))}"
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                return f"must be a number (got {v!r})"
            if self.ge is not None and not v >= self.ge:
                return f"must be ≥ {self.ge:g}"
            if self.gt is not None and not v > self.gt:
                return f"must be > {self.gt:g}"
            if self.le is not None and not v <= self.le:
                return f"must be ≤ {self.le:g}"
            if self.lt is not None and not v < self.lt:
                return f"must be < {self.lt:g}"
        return None


def within(*, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           choices: Sequence[Any] | None = None) -> dict[str, Range]:
    """Field metadata with an allowed range (numbers, or each element of a list) or a set of choices,
    for fields that need ``dataclasses.field`` itself: ``field(default_factory=list, metadata=within(ge=0))``."""
    return {_CHECK: Range(ge, gt, le, lt, tuple(choices) if choices is not None else None)}


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, choices: Sequence[Any] | None = None) -> Any:
    """A dataclass field with a default and an allowed range or set of choices (see :func:`within`)."""
    return dataclasses.field(default=default, metadata=within(ge=ge, gt=gt, le=le, lt=lt, choices=choices))


def check_ranges(obj: Any, where: str) -> None:
    """Raise a one-line :class:`ConfigError` for the first field of ``obj`` (recursively) out of range."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{where}.{f.name}" if where else f.name
        check: Range | None = f.metadata.get(_CHECK)
        if check is not None:
            problem = check.violation(value)
            if problem:
                raise ConfigError(f"{key}={_show(value)}: {problem}")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_ranges(value, key)


def typed(cls: type[T], node: Any, *, where: str = "") -> T:
    """``cls`` (a dataclass) filled from ``node`` (mapping, OmegaConf node or None), checked.

    Unknown keys, values of the wrong type and values out of their :func:`bounded` range are one
    :class:`ConfigError` naming the full key (``where`` is the prefix, e.g. ``method``).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    data = to_container(node) if node is not None else {}
    if isinstance(data, cls):
        obj = data
    else:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
        try:
            merged = OmegaConf.merge(OmegaConf.structured(cls), data)
            obj = OmegaConf.to_object(merged)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None) or ""
            full = ".".join(k for k in (where, str(key)) if k)
            msg = str(exc).strip().splitlines()[0]
            if "not in" in msg and key:
                fields = _field_names(cls, str(key))
                raise ConfigError(f"unknown key {full}; valid keys here: {', '.join(fields)}") from None
            raise ConfigError(f"{full}: {msg}") from None
        except ConfigError as exc:  # raised by a __post_init__
            raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None
    check_ranges(obj, where)
    return obj


def _field_names(cls: type, dotted: str) -> list[str]:
    """Field names of the dataclass that holds the last component of ``dotted``."""
    parts = dotted.split(".")[:-1]
    current: Any = cls
    for part in parts:
        hints = {f.name: f for f in dataclasses.fields(current)}
        f = hints.get(part)
        default = None if f is None else (f.default_factory() if f.default_factory is not dataclasses.MISSING
                                           else f.default)
        if not dataclasses.is_dataclass(default):
            return []
        current = type(default)
    return [f.name for f in dataclasses.fields(current)]


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def register_schema(name: str, node: type, group: str | None = None) -> None:
    """Put a dataclass into Hydra's ConfigStore as a schema (``defaults: [<name>]`` in a yaml)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=name, node=node, group=group)
