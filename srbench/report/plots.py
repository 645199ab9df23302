"""Report plots (matplotlib, Agg backend, PNG): perception–distortion and time vs quality (one point
per run), quality vs NFE and PSNR vs scale (one line per method); every point with its 95 % CI bars."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ci(row: dict[str, Any], m: str) -> float:
    v = row.get(f"{m}_ci95")
    return 0.0 if v is None or not math.isfinite(v) else float(v)


def scatter(rows: list[dict[str, Any]], x: str, y: str, out: Path, *, xlabel: str, ylabel: str, title: str,
            logx: bool | str = False) -> bool:
    """One point per row at (x, y) with CI bars where the row has them; False when no row has both.
    ``logx="auto"``: a log x axis when the positive x span more than 100× (bicubic's 50 ms beside a
    diffusion method's minutes would otherwise pin every fast method to zero)."""
    pts = [r for r in rows if math.isfinite(r.get(x, math.nan)) and math.isfinite(r.get(y, math.nan))]
    if not pts:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
    for r in pts:
        ax.errorbar(r[x], r[y], xerr=_ci(r, x), yerr=_ci(r, y), fmt="o", capsize=3, label=r["label"])
    xs = [r[x] for r in pts]
    if logx is True or (logx == "auto" and min(xs) > 0 and max(xs) / min(xs) > 100):
        ax.set_xscale("log")
    _finish(plt, fig, ax, out, xlabel=xlabel, ylabel=ylabel, title=title)
    return True


def lines(series: dict[str, list[tuple[float, float, float]]], out: Path, *, xlabel: str, ylabel: str, title: str,
          logx: bool = False) -> bool:
    """One line per series through its (x, y, CI half-width) points, sorted by x; False when no series
    has two distinct x (nothing varies, so there is no curve to draw)."""
    series = {k: sorted(p for p in v if math.isfinite(p[0]) and math.isfinite(p[1])) for k, v in series.items()}
    series = {k: v for k, v in series.items() if len({p[0] for p in v}) >= 2}
    if not series:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
    for label, pts in sorted(series.items()):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        err = [p[2] if math.isfinite(p[2]) else 0.0 for p in pts]
        ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=3, label=label)
    if logx:
        ax.set_xscale("log")
    _finish(plt, fig, ax, out, xlabel=xlabel, ylabel=ylabel, title=title)
    return True


def _finish(plt, fig, ax, out: Path, *, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, grid, legend and the PNG: the same for every plot of the report."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
