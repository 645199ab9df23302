"""``srbench report --logger wandb``: the report's tables, plots and visual comparison mirrored to one W&B run.

The HTML report stays the source of truth; this writes the same numbers to a dashboard through
srbench's tracking layer (:func:`srbench.tracking.build_logger`), offline when no API key is set
(``wandb sync`` uploads it later). One W&B run (job type ``report``, name ``report``, group from
``--wandb-group``) receives:

* ``leaderboard`` — every row of ``leaderboard.csv`` (one per run, failed jobs included);
* ``leaderboard/<page>`` — per dataset × scale × metric profile (× metric card), one row per run
  with its label, mean and 95 % CI half-width of every metric, the paired p-value against the best
  run, seeds (and the std over seeds of the key metric), NFE, ms/img and peak memory — the same
  rows as the HTML table, computed by :func:`srbench.report.pages.table_rows`;
* ``card/<page>`` — that page's metric card (key, value);
* ``plots/<png stem>`` — every plot PNG of the report as an image;
* ``visual/<page>`` — the visual comparison: per image the crop position and one image column per
  method (and HR), from the crops the visual page wrote (``<page>-crops/index.json``);
* ``failed_jobs`` — label, dataset, error and run folder of every failed job.

A rerun of the report into the same ``--out`` folder continues the same W&B run (the id is derived
from the folder), so a sweep has one dashboard that updates in place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from srbench.report.pages import _slug, group, table_rows
from srbench.report.runs import Run, card_key, card_shown
from srbench.tracking import build_logger


def _plain(v: Any) -> Any:
    """A JSON-friendly cell: NaN/inf and missing values become None, numpy scalars Python numbers."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def leaderboard_rows(rows: list[dict[str, Any]], metrics: list[str], key: str | None) -> list[dict[str, Any]]:
    """The per-page table: the HTML leaderboard's rows as flat records (mean and CI per metric)."""
    out = []
    for r in rows:
        seeds = r.get("seeds") or {}
        across = ((seeds.get("across_seeds") or {}).get(key or "") or {}) if isinstance(seeds, dict) else {}
        rec: dict[str, Any] = {"label": r["label"], "method": r["run"].method, "run": r["run"].path.name,
                               "status": r.get("status"), "valid": bool(r.get("valid")), "n": r.get("n")}
        for m in metrics:
            rec[m] = _plain(r.get(m))
            rec[f"{m}_ci95"] = _plain(r.get(f"{m}_ci95"))
        rec.update({"best": bool(r.get("best")), "p_vs_best": None if r.get("best") else _plain(r.get("p_value")),
                    "p_n": _plain(r.get("p_n")),
                    "seeds": int(seeds.get("run", 1)) if isinstance(seeds, dict) and seeds else 1,
                    f"{key}_std_over_seeds" if key else "std_over_seeds": _plain(across.get("std")),
                    "nfe": _plain(r.get("nfe")), "ms_per_img": _plain(r.get("ms_per_img")),
                    "peak_mem_mb": _plain(r.get("peak_mem_mb")), "path": r.get("path")})
        out.append({k: _plain(v) for k, v in rec.items()})
    return out


def visual_rows(index_json: Path) -> list[dict[str, Any]]:
    """The visual comparison as table rows: image, crop box, then one image cell (a Path) per column."""
    out = []
    for item in json.loads(index_json.read_text()):
        row: dict[str, Any] = {"image": item["image"], "y": item["y"], "x": item["x"], "size": item["size"]}
        for crop in item["crops"]:
            row[crop["label"]] = index_json.parent / crop["file"]
        out.append(row)
    return out


def mirror(runs: list[Run], frame: pd.DataFrame, out: Path, written: list[Path], *,
           cfg: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Log the report under ``out`` to W&B; returns {table or image key: rows (1 for an image)}."""
    cfg = {"name": "wandb", **dict(cfg or {})}
    logger = build_logger(cfg, run_dir=out, run_name=str(cfg.get("run_name", "report")),
                          group=str(cfg.get("group", "report")),
                          config={"job_type": "report", "runs": [str(r.path) for r in runs], "out": str(out)})
    logged: dict[str, int] = {}
    try:
        lead = [{k: _plain(v) for k, v in rec.items()} for rec in frame.to_dict("records")]
        logger.log_table("leaderboard", lead)
        logged["leaderboard"] = len(lead)
        for key, members in sorted(group(runs).items(), key=lambda kv: _slug(*list(kv[1][0].card().values())[:3])):
            card = members[0].card()
            slug = _slug(card["dataset"], f"x{card['scale']}", card["profile"], key)
            rows, metrics, best = table_rows(members)
            table = leaderboard_rows(rows, metrics, best)
            for rec in table:
                rec.update(dataset=_plain(card["dataset"]), scale=_plain(card["scale"]), profile=_plain(card["profile"]),
                           card=card_key(card))
            logger.log_table(f"leaderboard/{slug}", table)
            logged[f"leaderboard/{slug}"] = len(table)
            shown = card_shown(members)
            logger.log_table(f"card/{slug}", [{"key": k, "value": str(_plain(v))} for k, v in shown.items()])
            logged[f"card/{slug}"] = len(shown)
            index = out / f"{slug}-crops" / "index.json"
            if index.exists():
                vis = visual_rows(index)
                logger.log_table(f"visual/{slug}", vis)
                logged[f"visual/{slug}"] = len(vis)
        pngs = {f"plots/{p.stem}": p for p in written if p.suffix == ".png"}
        if pngs:
            logger.log_images(pngs)
            logged.update({k: 1 for k in pngs})
        failed = [{"label": r.label, "dataset": _plain(r.summary.get("dataset")),
                   "error": f"{r.summary.get('error_type', '')}: {r.summary.get('error', '')}", "path": str(r.path)}
                  for r in runs if r.failed]
        if failed:
            logger.log_table("failed_jobs", failed)
            logged["failed_jobs"] = len(failed)
        logger.log_summary({"runs": len(runs), "failed_jobs": len(failed)})
    finally:
        logger.finish()
    return logged
