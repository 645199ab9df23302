"""Variance over seeds: ``seeds=K`` runs a stochastic method K times per image.

* :func:`seed_for` — the seed of draw ``k`` of an image, from (global seed, k, image name) only, so
  it does not depend on order, batch, resume or sharding. Draw 0 is :func:`srbench.data.base.image_seed`
  unchanged, so a ``seeds=1`` run keeps the numbers it always had.
* :func:`row_key` — a results row is identified by (image, seed_index); a run without the
  ``seed_index`` column has one draw, index 0.
* :func:`average_over_seeds` — one row per image, each metric the mean over that image's draws;
  the summary's CI over images and the report's paired tests use these rows.
* :func:`seed_block` — ``summary.json["seeds"]``: per-seed means (each over the images that draw
  covers) and, per metric, the mean ± sample std (ddof = 1) of the K per-seed means.

A method that draws no random numbers (:attr:`srbench.method.SRMethod.deterministic`) runs once
whatever ``seeds`` asks; the block then says so instead of reporting a std of zero.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from srbench.results.store import STATUS_NONFINITE, STATUS_OK, STATUS_SKIPPED, parse_float

#: the per-image column holding k (only in runs with more than one draw)
SEED_INDEX = "seed_index"


def seed_for(global_seed: int, name: str, k: int) -> int:
    """Seed of draw ``k`` of image ``name``: SHA-256 of ``"<seed>:<k>:<name>"`` (63 bits); k = 0 is
    ``image_seed(seed, name)``, the seed every single-draw run has used."""
    if k == 0:
        from srbench.data.base import image_seed  # torch-free import of this module for the report

        return image_seed(global_seed, name)
    digest = hashlib.sha256(f"{int(global_seed)}:{int(k)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seed_index(row: Mapping[str, Any]) -> int:
    v = row.get(SEED_INDEX)
    return 0 if v in (None, "") else int(v)


def row_key(row: Mapping[str, Any]) -> tuple[str, int]:
    return str(row["image"]), seed_index(row)


def n_draws(rows: Iterable[Mapping[str, Any]]) -> int:
    return max((seed_index(r) for r in rows), default=0) + 1


def _value(v: Any) -> float | None:
    if v is None or v == "":
        return None
    return float(v) if isinstance(v, (int, float)) else parse_float(v)


def average_over_seeds(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], draws: int) -> list[dict[str, Any]]:
    """One row per image that has all ``draws`` rows: numeric ``columns`` averaged over the draws.

    An image is ``skipped`` if any draw was, else ``nonfinite`` if any draw was (its metrics NaN, so
    the set score is flagged invalid as for one draw), else ``ok``. Images missing a draw are left
    out (the run is not complete for them). Single-draw rows are returned as they are.
    """
    if draws <= 1:
        return [dict(r) for r in rows]
    by_image: dict[str, dict[int, Mapping[str, Any]]] = {}
    for r in rows:
        by_image.setdefault(str(r["image"]), {})[seed_index(r)] = r
    out = []
    for draws_of in by_image.values():
        if any(k not in draws_of for k in range(draws)):
            continue
        group = [draws_of[k] for k in range(draws)]
        statuses = {g.get("status", STATUS_OK) for g in group}
        status = (STATUS_SKIPPED if STATUS_SKIPPED in statuses else
                  STATUS_NONFINITE if STATUS_NONFINITE in statuses else STATUS_OK)
        row: dict[str, Any] = {**group[0], "status": status, SEED_INDEX: "",
                               "error": next((g.get("error") for g in group if g.get("error")), "")}
        for col in columns:
            vals = [_value(g.get(col)) for g in group]
            row[col] = None if any(v is None for v in vals) else math.fsum(vals) / len(vals)
        out.append(row)
    return out


def seed_block(rows: Sequence[Mapping[str, Any]], metric_columns: Sequence[str], *, requested: int, draws: int,
               deterministic: bool) -> dict[str, Any]:
    """``summary["seeds"]``: what was asked, what ran, per-seed means and the spread across seeds."""
    block: dict[str, Any] = {"requested": requested, "run": draws, "deterministic": deterministic,
                             "policy": "seed of draw k of image i = sha256(seed, k, image name); k = 0 as seeds=1"}
    if deterministic and requested > 1:
        block["note"] = f"deterministic method: run once, stands for all {requested} seeds (std over seeds is 0)"
    if draws <= 1:
        return block
    per_seed: list[dict[str, Any]] = []
    for k in range(draws):
        ok = [r for r in rows if seed_index(r) == k and r.get("status", STATUS_OK) == STATUS_OK]
        means = {}
        for col in metric_columns:
            vals = [v for v in (_value(r.get(col)) for r in ok) if v is not None and math.isfinite(v)]
            if vals:
                means[col] = math.fsum(vals) / len(vals)
        per_seed.append({"seed_index": k, "n_images": len(ok), "means": means})
    across: dict[str, Any] = {}
    for col in metric_columns:
        m = [s["means"][col] for s in per_seed if col in s["means"]]
        if not m:
            continue
        mean = math.fsum(m) / len(m)
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in m) / (len(m) - 1)) if len(m) > 1 else float("nan")
        across[col] = {"mean": mean, "std": std, "n_seeds": len(m)}
    block["per_seed"] = per_seed
    block["across_seeds"] = across
    return block
