"""The visual comparison page: for each image every run of a table kept in ``<run>/samples/``,
the same crop for every method, chosen where the methods differ most (the window with the largest
mean per-pixel standard deviation over methods), shown enlarged with nearest-neighbour zoom and
linked to the full image. The HR image is shown when a run kept it (``samples/<name>.hr.png``)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from PIL import Image

from srbench.report.runs import Run

CROP = 64
ZOOM = 3


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def most_different_window(images: list[np.ndarray], size: int = CROP) -> tuple[int, int]:
    """Top-left (y, x) of the ``size``² window where the per-pixel spread over ``images`` is largest."""
    spread = np.stack(images).std(axis=0).mean(axis=-1)
    h, w = spread.shape
    size = min(size, h, w)
    # window sums from the integral image
    ii = np.pad(spread.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x)


def write(runs: list[Run], labels: list[str], out: Path, slug: str) -> Path | None:
    """``<slug>-visual.html`` and its crops under ``out/<slug>-crops/`` (listed in its ``index.json``:
    image, crop box and the label of each crop file, read by the W&B mirror); None when fewer than two
    runs kept the same image."""
    pairs = [(r, lab, {p.stem: p for p in (r.path / "samples").glob("*.png") if not p.stem.endswith(".hr")})
             for r, lab in zip(runs, labels)]
    pairs = [t for t in pairs if t[2]]  # runs that kept no image are left out of the page
    runs, labels, kept = [t[0] for t in pairs], [t[1] for t in pairs], [t[2] for t in pairs]
    names = sorted(set.intersection(*(set(k) for k in kept))) if len(kept) >= 2 else []
    if not names:
        return None
    crops_dir = out / f"{slug}-crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    sections, listing = [], []
    for name in names:
        imgs = [_read(k[name]) for k in kept]
        if len({i.shape for i in imgs}) != 1:
            continue
        y, x = most_different_window(imgs)
        s = min(CROP, imgs[0].shape[0], imgs[0].shape[1])
        cells, files = [], []
        hr = next((r.path / "samples" / f"{name}.hr.png" for r in runs if (r.path / "samples" / f"{name}.hr.png").exists()), None)
        entries = ([("HR", _read(hr))] if hr is not None else []) + list(zip(labels, imgs))
        for i, (label, im) in enumerate(entries):
            crop = (im[y:y + s, x:x + s] * 255 + 0.5).astype(np.uint8)
            f = crops_dir / f"{name}-{i}.png"
            Image.fromarray(crop).save(f)
            files.append({"label": label, "file": f.name})
            cells.append(f'<figure><img src="{crops_dir.name}/{f.name}" width="{s * ZOOM}" height="{s * ZOOM}" '
                         f'style="image-rendering:pixelated" alt="{html.escape(label)}">'
                         f"<figcaption>{html.escape(label)}</figcaption></figure>")
        listing.append({"image": name, "y": y, "x": x, "size": s, "crops": files})
        sections.append(f"<h2>{html.escape(name)} — crop at (y={y}, x={x}), {s}×{s} px, ×{ZOOM} zoom</h2>"
                        f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(cells)}</div>')
    (crops_dir / "index.json").write_text(json.dumps(listing, indent=1))
    page = out / f"{slug}-visual.html"
    page.write_text('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>visual comparison</title>'
                    "</head><body><h1>Visual comparison</h1><p>Crops where the methods differ most "
                    "(largest per-pixel spread over methods).</p>" + "".join(sections) + "</body></html>\n")
    return page
