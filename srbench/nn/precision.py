"""Precision guard: re-run, at a wider precision, the images whose output is not finite.

The most reported failure of SD-based SR is an fp16 overflow in the VAE/UNet that turns an
output into NaN/Inf. :func:`run_with_precision_guard` calls a batched function at the requested
precision, finds the images of the batch whose output has any non-finite value, and re-runs
only those at the next precision of the ladder

    fp16 → bf16 → fp32,    bf16 → fp32,    fp32 (no retry)

logging ONE warning per affected image (naming it and the precisions tried) and returning, per
image, the precision that produced its output — methods hand that to
:meth:`srbench.method.SRMethod.per_image_notes` so the results row records it. When even fp32 is
not finite, :class:`srbench.errors.NonFiniteOutput` is raised naming the images.

The function must compute image ``i`` the same way whatever batch it is in (per-image seeds),
so a re-run of a subset reproduces the same draw at another precision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from srbench.errors import NonFiniteOutput

__all__ = ["PRECISION_LADDER", "GuardResult", "precision_name", "run_with_precision_guard"]

log = logging.getLogger("srbench.precision")

_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}
_DTYPES = {v: k for k, v in _NAMES.items()}
PRECISION_LADDER: dict[str, tuple[str, ...]] = {
    "fp16": ("fp16", "bf16", "fp32"),
    "bf16": ("bf16", "fp32"),
    "fp32": ("fp32",),
    "fp64": ("fp64",),
}


def precision_name(dtype: torch.dtype | str) -> str:
    """``torch.float16`` / ``"float16"`` / ``"fp16"`` → ``"fp16"``."""
    if isinstance(dtype, torch.dtype):
        return _NAMES[dtype]
    aliases = {"float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32", "float": "fp32", "float64": "fp64"}
    name = aliases.get(dtype, dtype)
    if name not in PRECISION_LADDER:
        raise ValueError(f"unknown precision {dtype!r}; use fp16, bf16 or fp32")
    return name


@dataclass
class GuardResult:
    """The batch output plus, per image, the precision used and a note when it was retried."""

    output: torch.Tensor
    precisions: list[str]
    retried: list[str] = field(default_factory=list)  # "" where the first precision was finite

    def notes(self) -> list[dict[str, str]]:
        """One mapping per image for the results rows (``precision``, and ``retried`` when it was)."""
        return [{"precision": p, **({"retried": r} if r else {})} for p, r in zip(self.precisions, self.retried)]


def _finite_per_image(x: torch.Tensor) -> list[bool]:
    return torch.isfinite(x).flatten(1).all(dim=1).tolist()


def run_with_precision_guard(
    fn: Callable[[Sequence[int], torch.dtype], torch.Tensor],
    batch_size: int,
    precision: torch.dtype | str,
    *,
    labels: Sequence[str] | None = None,
    logger: logging.Logger | None = None,
) -> GuardResult:
    """Run ``fn(indices, dtype)`` for all images, re-running non-finite ones at wider precisions.

    ``fn`` returns the outputs of the images ``indices`` (a list of positions in the batch), stacked
    along dim 0, computed at ``dtype``. ``labels`` name the images in the warning (default
    ``image <i>``). The returned output has the dtype of the first call's output.
    """
    logger = logger or log
    labels = list(labels) if labels is not None else [f"image {i}" for i in range(batch_size)]
    ladder = PRECISION_LADDER[precision_name(precision)]
    everyone = list(range(batch_size))
    out = fn(everyone, _DTYPES[ladder[0]])
    if out.shape[0] != batch_size:
        raise ValueError(f"guarded function returned {out.shape[0]} outputs for {batch_size} images")
    chosen = [ladder[0]] * batch_size
    failed_at: dict[int, list[str]] = {}
    todo = [i for i, ok in zip(everyone, _finite_per_image(out)) if not ok]
    for name in ladder[1:]:
        if not todo:
            break
        for i in todo:
            failed_at.setdefault(i, []).append(chosen[i])
        redo = fn(todo, _DTYPES[name])
        ok = _finite_per_image(redo)
        out[todo] = redo.to(out.dtype)
        for i in todo:
            chosen[i] = name
        todo = [i for i, good in zip(todo, ok) if not good]
    if todo:
        bad = ", ".join(labels[i] for i in todo)
        raise NonFiniteOutput(f"non-finite output in {'/'.join(ladder)} for {bad}")
    retried = [""] * batch_size
    for i, tried in failed_at.items():
        retried[i] = f"{'+'.join(tried)} gave non-finite output"
        logger.warning("%s: %s gave a non-finite output; re-ran in %s", labels[i], " and ".join(tried), chosen[i])
    return GuardResult(out, chosen, retried)
