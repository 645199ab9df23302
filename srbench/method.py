"""The SRMethod interface and the plugin registry.

A method is a class registered under the entry-point group ``srbench.methods``::

    [project.entry-points."srbench.methods"]
    ecdp = "methods.ecdp:ECDP"

A third-party package adds a method the same way; ``srbench list`` shows everything found.
Importing this module imports no method: entry points are read (not loaded) on the first
lookup, and a method's module is imported only when that method is asked for.
"""

from __future__ import annotations

import abc
import importlib
import importlib.metadata as importlib_metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from srbench.errors import UserError

if TYPE_CHECKING:  # keep `import srbench.method` free of torch
    import torch

    from srbench.weights import WeightFile

ENTRY_POINT_GROUP = "srbench.methods"


class UnsupportedInput(UserError, ValueError):
    """A method cannot handle this input (scale, size, channels); the message says why."""


class UnknownMethod(UserError, KeyError):
    """No method of that name is registered."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want a plain sentence
        return str(self.args[0])


class DuplicateMethod(UserError, RuntimeError):
    """Two entry points claim the same method name."""


class SRMethod(abc.ABC):
    """A super-resolution method as the benchmark sees it.

    Contract (docs/architecture.md):

    * ``upscale`` takes ``lr`` B×3×h×w float in [0, 1] on the method's device and returns
      B×3×(h·s)×(w·s) float in [0, 1]; no grad. Each method normalises internally.
    * ``seeds`` has one integer per image; a stochastic method draws that image's noise from a
      ``torch.Generator`` seeded with it, so an image's output does not depend on batch size,
      order, resume or sharding.
    * A method that cannot handle a scale or size raises :class:`UnsupportedInput`.
    """

    name: ClassVar[str]
    #: Supported scale factors; ``None`` means any positive scale.
    scales: ClassVar[frozenset[float] | None] = None
    #: Whether ``upscale`` draws random numbers (recorded in the manifest).
    is_stochastic: ClassVar[bool] = False

    # ---------------------------------------------------------------- construction
    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> SRMethod:
        """Build the model and load its weights (``cfg['weights']``: a path, or ``"random"``)."""

    @classmethod
    def required_weights(cls, cfg: Mapping[str, Any]) -> list[WeightFile]:
        """The weight files ``from_config(cfg)`` will need; empty when none (or ``weights=random``)."""
        return []

    # ---------------------------------------------------------------- inference
    @abc.abstractmethod
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        """Super-resolve a batch (see the class docstring for the contract)."""

    @property
    def label(self) -> str:
        """The name a run is filed and shown under (results/<dataset>/<label>/, leaderboard rows):
        the method's ``name`` unless one implementation serves several named presets."""
        return self.name

    def describe(self) -> dict[str, Any]:
        """Facts for the manifest: parameter counts, dtype, weight hashes (keys with ``sha256``)."""
        return {"name": self.name}

    def nfe_per_image(self) -> Sequence[float] | float | None:
        """Network evaluations of each image of the last ``upscale`` call, copied into its results row.

        A list (one value per image, e.g. an adaptive ODE solver), one number for every image
        (a fixed step count; 0 for interpolation), or ``None`` when the notion does not apply.
        """
        return None

    def per_image_notes(self) -> Sequence[Mapping[str, Any]] | None:
        """Per-image facts of the last ``upscale`` call for its results rows, or ``None``.

        One small mapping per image (e.g. ``{"precision": "bf16", "retried": "fp16 gave NaN"}``
        from the fp16 → bf16 → fp32 guard); the runner stores it in the row's ``notes`` column.
        """
        return None

    def trainer(self, cfg: Mapping[str, Any]) -> Any:
        """Return a Trainer (``training_step(batch) -> dict of losses``) for trainable methods."""
        raise NotImplementedError(f"method {self.name!r} cannot be trained in srbench")

    # ---------------------------------------------------------------- helpers
    @classmethod
    def supports_scale(cls, scale: float) -> bool:
        return scale > 0 and (cls.scales is None or float(scale) in {float(s) for s in cls.scales})

    @classmethod
    def check_scale(cls, scale: float) -> None:
        if not cls.supports_scale(scale):
            supported = sorted(cls.scales) if cls.scales is not None else "any"
            raise UnsupportedInput(
                f"method {cls.name!r} does not support scale x{scale:g} (supported: {supported})"
            )


@dataclass(frozen=True)
class MethodEntry:
    """A registered method, known by name before its module is imported."""

    name: str
    target: str  # "module:Attr"
    distribution: str | None
    _entry_point: Any = None

    def load(self) -> type[SRMethod]:
        cls = self._entry_point.load() if self._entry_point is not None else _load_target(self.target)
        if not (isinstance(cls, type) and issubclass(cls, SRMethod)):
            raise TypeError(f"entry point {self.name!r} = {self.target!r} is not an SRMethod subclass")
        if getattr(cls, "name", None) != self.name:
            raise TypeError(
                f"entry point {self.name!r} = {self.target!r} has name {getattr(cls, 'name', None)!r}; "
                "the entry-point name and SRMethod.name must agree"
            )
        return cls


def _load_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def method_entries() -> dict[str, MethodEntry]:
    """All methods found under the ``srbench.methods`` entry-point group, by name (no imports).

    Read fresh on every call (cheap), so a package installed at run time is seen.
    """
    entries: dict[str, MethodEntry] = {}
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", None)
        if ep.name in entries and entries[ep.name].target != ep.value:
            raise DuplicateMethod(
                f"method {ep.name!r} is registered twice: {entries[ep.name].target} "
                f"({entries[ep.name].distribution}) and {ep.value} ({dist})"
            )
        entries[ep.name] = MethodEntry(ep.name, ep.value, dist, ep)
    return dict(sorted(entries.items()))


def get_method(name: str) -> type[SRMethod]:
    """Load the class of a registered method; errors name the valid choices."""
    entries = method_entries()
    if name not in entries:
        raise UnknownMethod(f"unknown method {name!r}; registered methods: {', '.join(entries) or 'none'}")
    return entries[name].load()
