"""The report's static pages: ``index.html`` (every table, the failed jobs) and one page per
dataset × scale × metric profile (× metric card), each with its metric card, leaderboard and plots.

Leaderboard cells are ``mean ± CI half-width`` (95 % bootstrap over images, from the summary);
each method is compared with the best one (highest PSNR, else lowest LPIPS) on the images both
scored, with :func:`srbench.metrics.stats.paired_bootstrap`; p ≥ 0.05 is marked "n.s.", and a p from
fewer than :data:`MIN_PAIRED_N` images carries a warning. Runs are labelled by the settings that tell
them apart (:func:`srbench.report.runs.labels`). A ``seeds=K`` run shows the std of its per-seed means
next to the CI over images, and its per-seed means below the table; a deterministic method asked
for K seeds says it ran once.
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
from srbench.report.runs import Run, card_key, card_shown, labels
from srbench.results import leaderboard as lb

ALPHA = 0.05
#: below this many paired images the bootstrap p-value gets a warning: its resampling distribution
#: has few distinct values (35 for n = 4) and its variance is the plug-in one, smaller than the
#: sample variance by (n − 1)/n, so small p-values come too easily (p = 1/(B + 1) whenever every
#: difference has the same sign and none exceeds twice the mean difference)
MIN_PAIRED_N = 10
SMALL_N_NOTE = (f"⚠ fewer than {MIN_PAIRED_N} images: the paired bootstrap p-value is unreliable (too few "
                "distinct resamples, plug-in variance too small); read it as descriptive, not as a test.")
#: metrics where lower is better; every other metric is higher-is-better
LOWER_BETTER = ("lpips", "lpips_vgg", "dists", "niqe")

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}
.card{background:#f8f8ff;border:1px solid #ccd;padding:.5em 1em;font-size:.9em}.ns{color:#b00;font-weight:bold}
.failed{background:#fee}img{max-width:100%}.warn{color:#a60;font-weight:bold}"""


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
    for run, label in zip(runs, labels(runs)):
        rec = lb.record(run.summary, metrics)
        peak = (run.summary.get("timing") or {}).get("peak_mem_mb") or {}
        rec.update(label=label, run=run, path=str(run.path), seeds=run.summary.get("seeds"),
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


def _series(rows: list[dict[str, Any]], x: str, y: str) -> dict[str, list[tuple[float, float, float]]]:
    """(x, y, CI of y) of every run, one series per method (a sweep over steps is one line)."""
    out: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for r in rows:
        out[r["run"].method].append((lb.num(r.get(x)), r.get(y, math.nan), r.get(f"{y}_ci95", math.nan)))
    return dict(out)


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
    n = r.get("p_n") or 0
    if n < MIN_PAIRED_N:
        mark += f' <span class="warn small-n" title="{_esc(SMALL_N_NOTE)}">⚠ n={n}</span>'
    return f"{p:.4f}{mark}"


def _seeds_cell(r: dict[str, Any], key: str | None) -> str:
    """Draws per image; with K > 1 the std over seeds of the key metric's per-seed means."""
    blk = r.get("seeds")
    if not blk:
        return "1"
    if blk.get("deterministic") and int(blk.get("requested", 1)) > 1:
        return f'<span title="{_esc(blk.get("note", ""))}">1 (deterministic, {int(blk["requested"])} asked)</span>'
    across = (blk.get("across_seeds") or {}).get(key or "") or {}
    if not across:
        return _esc(blk.get("run", 1))
    d = lb._DIGITS.get(key, 4)
    return f'{int(blk["run"])} · σ<sub>seeds</sub> {across["std"]:.{d}f}'


def seeds_html(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    """Per-seed means of every ``seeds=K`` run of a table, with mean ± std over seeds; '' when none."""
    parts = []
    for r in rows:
        blk = r.get("seeds") or {}
        if not blk.get("per_seed"):
            continue
        head = "".join(f"<th>{_esc(lb.LABELS.get(m, m))}</th>" for m in metrics)
        body = ""
        for s in blk["per_seed"]:
            body += (f"<tr><td>seed {s['seed_index']}</td><td>{s['n_images']}</td>"
                     + "".join(f"<td>{_num(s['means'].get(m), f'.{lb._DIGITS.get(m, 4)}f')}</td>" for m in metrics)
                     + "</tr>")
        across = blk.get("across_seeds") or {}
        body += ("<tr><th>mean ± std over seeds</th><td></td>"
                 + "".join(f"<td>{across[m]['mean']:.{lb._DIGITS.get(m, 4)}f} ± {across[m]['std']:.{lb._DIGITS.get(m, 4)}f}"
                           "</td>" if m in across else "<td>—</td>" for m in metrics) + "</tr>")
        parts.append(f'<h3>{_esc(r["label"])}: {int(blk["run"])} seeds</h3><table class="seeds"><tr><th>draw</th>'
                     f"<th>n</th>{head}</tr>{body}</table>")
    if not parts:
        return ""
    return ("<h2>Variance over seeds</h2><p>Per-seed means (each over the images of that draw) and the mean ± "
            "sample std of those means; the table's ± is the 95 % CI over images of each image's mean over "
            "its draws.</p>" + "".join(parts))


def _num(v: Any, fmt: str) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def leaderboard_html(rows: list[dict[str, Any]], metrics: list[str], key: str | None) -> str:
    head = ["method", "status", "valid", "n", *[lb.LABELS.get(m, m) + " (±95% CI)" for m in metrics],
            f"p vs best ({lb.LABELS.get(key, key)})" if key else "p vs best", "seeds", "NFE", "ms/img", "peak MB"]
    out = ['<table class="leaderboard"><thead><tr>' + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cells = [f'<td class="l">{_esc(r["label"])}</td>', f"<td>{_esc(r['status'])}</td>",
                 f"<td>{'yes' if r['valid'] else 'no'}</td>", f"<td>{_esc(r['n'])}</td>"]
        cells += [f'<td data-metric="{m}" data-value="{r[m]!r}">{_cell(r, m)}</td>' for m in metrics]
        cells += [f"<td>{_p_cell(r)}</td>", f"<td>{_seeds_cell(r, key)}</td>",
                  f"<td>{_esc(r['nfe'] if r['nfe'] is not None else '—')}</td>",
                  f"<td>{_num(r['ms_per_img'], '.1f')}</td>", f"<td>{_num(r['peak_mem_mb'], '.0f')}</td>"]
        out.append("<tr>" + "".join(cells) + "</tr>")
    note = ""
    if any(not r.get("best") and math.isfinite(r.get("p_value", math.nan)) and (r.get("p_n") or 0) < MIN_PAIRED_N for r in rows):
        note = f'<p class="warn small-n-note">{_esc(SMALL_N_NOTE)}</p>'
    return "\n".join(out) + "</tbody></table>" + note


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
    by_scale: dict[tuple[Any, Any], dict[str, list[tuple[float, float, float]]]] = defaultdict(dict)
    for key, members in sorted(group(runs).items(), key=lambda kv: _slug(*list(kv[1][0].card().values())[:3])):
        card = members[0].card()
        title = f"{card['dataset']} ×{card['scale']} · {card['profile']}"
        slug = _slug(card["dataset"], f"x{card['scale']}", card["profile"], key)
        rows, metrics, best = table_rows(members)
        body = [card_html(card_shown(members)), leaderboard_html(rows, metrics, best), seeds_html(rows, metrics)]
        pd_png = out / f"{slug}-perception-distortion.png"
        lpips = "lpips" if "lpips" in metrics else None
        if lpips and "psnr" in metrics and plots.scatter(rows, "psnr", lpips, pd_png, xlabel="PSNR (dB)",
                                                         ylabel="LPIPS", title="perception–distortion"):
            written.append(pd_png)
            body.append(f'<h2>Perception–distortion</h2><img src="{pd_png.name}" alt="LPIPS vs PSNR">')
        tq_png = out / f"{slug}-time-quality.png"
        if best and plots.scatter(rows, "ms_per_img", best, tq_png, xlabel="ms / image",
                                  ylabel=lb.LABELS.get(best, best), title="time vs quality", logx="auto"):
            written.append(tq_png)
            body.append(f'<h2>Time vs quality</h2><img src="{tq_png.name}" alt="quality vs time">')
        nfe_png = out / f"{slug}-quality-nfe.png"
        if best and plots.lines(_series(rows, "nfe", best), nfe_png, xlabel="NFE per image",
                                ylabel=lb.LABELS.get(best, best), title="quality vs NFE (steps)", logx=True):
            written.append(nfe_png)
            body.append(f'<h2>Quality vs NFE</h2><img src="{nfe_png.name}" alt="quality vs NFE">')
        if "psnr" in metrics:
            for r in rows:
                by_scale[(card["dataset"], card["profile"])].setdefault(r["run"].method, []).append(
                    (lb.num(card["scale"]), r["psnr"], r.get("psnr_ci95", math.nan)))
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
    for (dataset, profile), series in sorted(by_scale.items(), key=lambda kv: _slug(*kv[0])):
        png = out / f"{_slug(dataset, profile)}-psnr-scale.png"
        if plots.lines(series, png, xlabel="scale factor", ylabel="PSNR (dB)",
                       title=f"PSNR vs scale · {dataset} · {profile}"):
            written.append(png)
            index_parts.append(f'<h2>PSNR vs scale · {_esc(dataset)} · {_esc(profile)}</h2>'
                               f'<img src="{png.name}" alt="PSNR vs scale">')
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
