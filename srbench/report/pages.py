"""The report's static pages: ``index.html`` (every table, the failed jobs) and one page per
dataset × scale × metric profile (× metric card), each with its metric card, leaderboard and plots.

Leaderboard cells are ``mean ± CI half-width`` (95 % bootstrap over images, from the summary);
each method is compared with the best one (highest PSNR, else lowest LPIPS) on the images both
scored, with :func:`srbench.metrics.stats.paired_bootstrap`; p ≥ 0.05 is marked "n.s.".
"""

from __future__ import annotations

import html
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from srbench.metrics.stats import paired_bootstrap
from srbench.report import plots, visual
from srbench.report.runs import Run, card_key
from srbench.results import leaderboard as lb

ALPHA = 0.05
#: metrics where lower is better; every other metric is higher-is-better
LOWER_BETTER = ("lpips", "lpips_vgg", "dists", "niqe")

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}
.card{background:#f8f8ff;border:1px solid #ccd;padding:.5em 1em;font-size:.9em}.ns{color:#b00;font-weight:bold}
.failed{background:#fee}img{max-width:100%}"""


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _slug(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", "-".join(str(p) for p in parts)).strip("-")


def best_metric(metrics: list[str]) -> str | None:
    for m in ("psnr", "lpips", *metrics):
        if m in metrics:
            return m
    return None


def table_rows(runs: list[Run]) -> tuple[list[dict[str, Any]], list[str], str | None]:
    """One leaderboard row per run, sorted best first, with the paired p-value against the best."""
    summaries = [r.summary for r in runs]
    metrics = [m for m in lb.metric_columns(summaries)
               if any((s.get("metrics") or {}).get(m) for s in summaries)]
    rows = []
    for run in runs:
        rec = lb.record(run.summary, metrics)
        peak = (run.summary.get("timing") or {}).get("peak_mem_mb") or {}
        rec.update(label=run.label, run=run, path=str(run.path),
                   peak_mem_mb=lb.num(peak.get("max", peak.get("mean")) if isinstance(peak, dict) else peak))
        rows.append(rec)
    key = best_metric(metrics)
    if key:
        sign = 1 if key in LOWER_BETTER else -1
        rows.sort(key=lambda r: sign * r[key] if math.isfinite(r[key]) else math.inf)
        best = rows[0]
        ref = best["run"].per_image(key)
        for r in rows:
            r["best"] = r is best
            if r is best:
                continue
            mine = r["run"].per_image(key)
            common = sorted(set(ref) & set(mine))
            test = paired_bootstrap([mine[i] for i in common], [ref[i] for i in common])
            r["p_value"], r["p_n"] = test["p_value"], test["n"]
    return rows, metrics, key


def _cell(r: dict[str, Any], m: str) -> str:
    v, ci = r.get(m), r.get(f"{m}_ci95")
    if v is None or not math.isfinite(v):
        return "—"
    d = lb._DIGITS.get(m, 4)
    return f"{v:.{d}f} ± {ci:.{d}f}" if ci is not None and math.isfinite(ci) else f"{v:.{d}f}"


def _p_cell(r: dict[str, Any]) -> str:
    if r.get("best"):
        return "best"
    p = r.get("p_value")
    if p is None or not math.isfinite(p):
        return "—"
    mark = ' <span class="ns" title="not significant at p&lt;0.05">n.s.</span>' if p >= ALPHA else ""
    return f"{p:.4f}{mark}"


def _num(v: Any, fmt: str) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def leaderboard_html(rows: list[dict[str, Any]], metrics: list[str], key: str | None) -> str:
    head = ["method", "status", "valid", "n", *[lb.LABELS.get(m, m) + " (±95% CI)" for m in metrics],
            f"p vs best ({lb.LABELS.get(key, key)})" if key else "p vs best", "NFE", "ms/img", "peak MB"]
    out = ['<table class="leaderboard"><thead><tr>' + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cells = [f'<td class="l">{_esc(r["label"])}</td>', f"<td>{_esc(r['status'])}</td>",
                 f"<td>{'yes' if r['valid'] else 'no'}</td>", f"<td>{_esc(r['n'])}</td>"]
        cells += [f'<td data-metric="{m}" data-value="{r[m]!r}">{_cell(r, m)}</td>' for m in metrics]
        cells += [f"<td>{_p_cell(r)}</td>", f"<td>{_esc(r['nfe'] if r['nfe'] is not None else '—')}</td>",
                  f"<td>{_num(r['ms_per_img'], '.1f')}</td>", f"<td>{_num(r['peak_mem_mb'], '.0f')}</td>"]
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</tbody></table>"


def card_html(card: dict[str, Any]) -> str:
    items = "".join(f"<tr><th>{_esc(k)}</th><td class='l'>{_esc(v)}</td></tr>" for k, v in card.items())
    return f'<div class="card"><b>Metric card</b><table>{items}</table></div>'


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{_esc(title)}</h1>{body}</body></html>\n")


def group(runs: list[Run]) -> dict[str, list[Run]]:
    """Completed/partial runs by their metric card (dataset × scale × profile and everything else on it)."""
    out: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        if not r.failed:
            out[card_key(r.card())].append(r)
    return out


def write(runs: list[Run], out: Path) -> list[Path]:
    """Every page and plot of the report under ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index_parts = []
    for key, members in sorted(group(runs).items(), key=lambda kv: _slug(*list(kv[1][0].card().values())[:3])):
        card = members[0].card()
        title = f"{card['dataset']} ×{card['scale']} · {card['profile']}"
        slug = _slug(card["dataset"], f"x{card['scale']}", card["profile"], key)
        rows, metrics, best = table_rows(members)
        body = [card_html(card), leaderboard_html(rows, metrics, best)]
        pd_png = out / f"{slug}-perception-distortion.png"
        lpips = "lpips" if "lpips" in metrics else None
        if lpips and "psnr" in metrics and plots.scatter(rows, "psnr", lpips, pd_png, xlabel="PSNR (dB)",
                                                         ylabel="LPIPS", title="perception–distortion"):
            written.append(pd_png)
            body.append(f'<h2>Perception–distortion</h2><img src="{pd_png.name}" alt="LPIPS vs PSNR">')
        tq_png = out / f"{slug}-time-quality.png"
        if best and plots.scatter(rows, "ms_per_img", best, tq_png, xlabel="ms / image",
                                  ylabel=lb.LABELS.get(best, best), title="time vs quality"):
            written.append(tq_png)
            body.append(f'<h2>Time vs quality</h2><img src="{tq_png.name}" alt="quality vs time">')
        vis = visual.write([r["run"] for r in rows], [r["label"] for r in rows], out, slug)
        if vis is not None:
            written.append(vis)
            body.append(f'<p><a href="{vis.name}">Visual comparison (crops where methods differ most)</a></p>')
        body.append("<p>Runs: " + ", ".join(_esc(r["path"]) for r in rows) + "</p>")
        page = out / f"{slug}.html"
        page.write_text(_page(title, "\n".join(body)))
        written.append(page)
        index_parts.append(f'<h2><a href="{page.name}">{_esc(title)}</a></h2>' + card_html(card)
                           + leaderboard_html(rows, metrics, best))
    failed = [r for r in runs if r.failed]
    if failed:
        items = "".join(f'<tr class="failed"><td class="l">{_esc(r.label)}</td><td class="l">{_esc(r.summary.get("dataset"))}'
                        f'</td><td class="l">{_esc(r.summary.get("error_type", ""))}: {_esc(r.summary.get("error", ""))}</td>'
                        f'<td class="l">{_esc(r.path)}</td></tr>' for r in failed)
        index_parts.append('<h2>Failed jobs</h2><table class="failed-jobs"><tr><th>job</th><th>dataset</th>'
                           f"<th>error</th><th>run dir</th></tr>{items}</table>")
    index = out / "index.html"
    index.write_text(_page("srbench report", "\n".join(index_parts) or "<p>no runs</p>"))
    written.append(index)
    return written
