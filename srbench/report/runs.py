"""Reading run directories for the report: one :class:`Run` per directory, and the metric card that
decides which runs may share a table.

The card is read from each run's manifest and summary (profile, metric ids — Y definition and crop
border —, LPIPS backbone and weights, dataset protocol and name, scale, precision, seed policy). Runs whose
cards differ are never compared in one table, so a number is only ever next to numbers made the same way.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srbench.results.leaderboard import num
from srbench.results.seeds import average_over_seeds, n_draws

#: config keys that cannot change the numbers, or only name the run: never part of a label
NOT_SETTINGS = ("results_dir", "run_name", "print_table", "num_workers", "paths", "logger", "resume",
                "save_images", "save_hr", "warmup", "max_image_pixels", "on_error", "hydra")


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    manifest: dict[str, Any]
    rows: list[dict[str, str]] = field(default_factory=list)

    @property
    def method(self) -> str:
        return str(self.summary.get("method") or self.summary.get("sr_dir") or self.path.parent.name)

    @property
    def status(self) -> str:
        return str(self.summary.get("status"))

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def label(self) -> str:
        """The method plus the overrides that tell this run apart (a sweep's settings)."""
        over = [o for o in self.manifest.get("overrides") or [] if not o.startswith(("method=", "dataset="))
                and o.lstrip("+~").partition("=")[0].split(".")[0] not in NOT_SETTINGS]
        return self.method + (f" [{' '.join(over)}]" if over else "") + ("" if over else f" ({self.path.name})")

    def settings(self) -> dict[str, str]:
        """The run's config flattened to ``key.sub=value`` (what a sweep override names), without
        :data:`NOT_SETTINGS`."""
        cfg = {k: v for k, v in (self.manifest.get("config") or {}).items() if k not in NOT_SETTINGS}
        return flatten(cfg)

    def tiling(self) -> str:
        """How the method split the image, from its ``describe()`` in the manifest (InvSR's chopping or
        the shared SD tiler, spandrel's tile side); a method property shown on the card, not a reason
        to split the table (every SD method would otherwise sit alone)."""
        desc = self.manifest.get("method") or {}
        if desc.get("tiling"):
            return str(desc["tiling"])
        if desc.get("tile") not in (None, "", 0):
            return f"tile {desc['tile']} (overlap {desc.get('tile_overlap', '?')})"
        return "none (whole image)"

    def per_image(self, metric: str) -> dict[str, float]:
        """Per-image values of ``metric`` over ``ok`` rows (the last row of an image wins, as in summaries);
        with seeds=K each image's mean over its draws, as the summary's statistics over images."""
        out: dict[str, float] = {}
        for r in average_over_seeds(self.rows, [metric], n_draws(self.rows)):
            if r.get("status", "ok") == "ok" and r.get(metric) not in (None, ""):
                out[r["image"]] = num(r[metric])
        return out

    def card(self) -> dict[str, Any]:
        """What must match for two runs to share a table."""
        s, cfg = self.summary, self.manifest.get("config") or {}
        metrics_cfg = cfg.get("metrics") or {}
        ids = s.get("metric_ids") or {}
        lpips = (self.manifest.get("metrics") or {}) if isinstance(self.manifest.get("metrics"), dict) else {}
        return {
            "dataset": s.get("dataset") or s.get("hr_dir"),
            "scale": s.get("scale"),
            "profile": s.get("profile"),
            "metric ids (Y definition, crop border)": " ".join(sorted(ids.values())) or "—",
            "protocol (mod-crop, resize kernel)": json.dumps(s.get("hr_preparation") or {}, sort_keys=True),
            "LPIPS backbone": ",".join(metrics_cfg.get("lpips_nets") or []) or "—",
            "LPIPS weights": _lpips_weights(lpips, s),
            "dataset manifest": _dataset_hash(self.manifest),
            "precision": str(self.manifest.get("dtype") or cfg.get("dtype") or "—"),
            "colour fix (postprocess.colorfix)": (cfg.get("postprocess") or {}).get("colorfix", "none"),
            "seed policy": "per image from (seed, image name)",
        }


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if not isinstance(tree, dict):
        return {prefix: tree if isinstance(tree, str) else json.dumps(tree, default=str)}
    out: dict[str, str] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def labels(runs: list[Run]) -> list[str]:
    """A label per run that says what tells it apart from the others of its table: the method, then
    the settings (``key=value``, as a sweep's overrides name them) that differ between that
    method's runs, and the non-method settings (seed, seeds, colour fix…) that differ across the
    table; the run directory's name only when two runs share every setting."""
    settings = [r.settings() for r in runs]
    keys = sorted({k for s in settings for k in s})

    def differing(members: list[int], scope: str | None) -> list[str]:
        return [k for k in keys if (scope is None or k.startswith(scope)) and not k.startswith("method.name")
                and len({settings[i].get(k) for i in members}) > 1]

    table_wide = [k for k in differing(list(range(len(runs))), None) if not k.startswith("method.")]
    out = []
    for i, run in enumerate(runs):
        same = [j for j, r in enumerate(runs) if r.method == run.method]
        shown = differing(same, "method.") + table_wide
        parts = [f"{k}={settings[i].get(k, '—')}" for k in shown]
        twins = [j for j in same if all(settings[j].get(k) == settings[i].get(k) for k in shown)]
        if len(twins) > 1:  # no setting tells them apart (a rerun under another run_name)
            parts.append(f"({run.path.name})")
        out.append(" ".join([run.method, *parts]))
    return out


def _lpips_weights(metrics_manifest: dict[str, Any], summary: dict[str, Any]) -> str:
    for k, v in metrics_manifest.items():
        if "lpips" in k and isinstance(v, dict) and v.get("sha256"):
            return str(v["sha256"])[:16]
    return "missing" if "lpips" in (summary.get("missing_metrics") or {}) else "—"


def _dataset_hash(manifest: dict[str, Any]) -> str:
    ds = manifest.get("dataset")
    if not ds:
        return "—"
    if ds.get("image_list_sha256"):
        return str(ds["image_list_sha256"])[:16]
    return hashlib.sha256(json.dumps(ds, sort_keys=True, default=str).encode()).hexdigest()[:12]


def card_shown(members: list[Run]) -> dict[str, Any]:
    """The card printed above a table: the shared card plus each method's tiling."""
    tiling = {r.label: r.tiling() for r in members}
    shown = " · ".join(f"{k}: {v}" for k, v in sorted(tiling.items())) if len(set(tiling.values())) > 1 \
        else next(iter(tiling.values()))
    return {**members[0].card(), "tiling (per method)": shown}


def card_key(card: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()[:10]


def load(path: Path) -> Run:
    summary = json.loads((path / "summary.json").read_text())
    manifest = json.loads((path / "manifest.json").read_text()) if (path / "manifest.json").exists() else {}
    rows: list[dict[str, str]] = []
    if (path / "per_image.csv").exists():
        with open(path / "per_image.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    return Run(path, summary, manifest, rows)


def find(roots: list[Path]) -> list[Run]:
    seen: set[Path] = set()
    for root in roots:
        for p in root.rglob("summary.json"):
            if "report" not in p.parts[len(root.parts):]:
                seen.add(p.parent)
    return [load(p) for p in sorted(seen)]
