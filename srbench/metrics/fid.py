"""FID and patch-FID: dataset-level metrics between the SR set and the HR set.

    FID(X, Y) = ||μ_X − μ_Y||² + Tr(Σ_X + Σ_Y − 2 (Σ_X Σ_Y)^{1/2})          (Heusel et al. 2017, eq. 6)

over 2048-d Inception-v3 pool features (the TF-ported "pt_inception-2015-12-05" weights).

Implementation: **pyiqa's FID**, which is clean-fid's (Parmar et al. 2022) ported into pyiqa —
the same Inception network, the same "clean" preprocessing (8-bit image, PIL bicubic resize of
each channel as float32 to 299×299, then ``(x − 128) / 128``) and the same Fréchet distance
(``pyiqa.archs.fid_arch.frechet_distance``, scipy ``sqrtm``). It is the call OSEDiff makes
(``pyiqa.create_metric('fid')``, folder vs folder) and what InvSR's ``--fid`` computes, so a paper's
number and ours differ only by the images (protocols.md §3). The network and the distance are
pyiqa's objects; what is written here is the in-memory feeding: the harness has SR tensors, not
folders, so :func:`clean_resize` does what ``pyiqa.archs.fid_arch.ResizeDataset`` (mode
``clean``) does to a file; tests/test_metrics_fid.py checks features and FID against
``pyiqa.create_metric('fid')(sr_dir, hr_dir)`` on the same images to 1e-4.

Patch-FID: FID over fixed crops of SR and HR, so a set of 100 images gives several hundred
samples and the statistic sees the full-resolution texture (a 512² image shrunk to 299² does
not). The crops are a non-overlapping grid of ``size``×``size`` tiles (:func:`patch_grid`) whose
offset is drawn per image from ``seed`` and the image name: the same grid in every run and for
every method, identical for SR and HR. Its rule and a sha256 of every (image, top, left) are
recorded with the value. No paper in protocols.md fixes a patch protocol; 256 is the default.

N guard. Below :data:`MIN_N` samples (1,000; protocols.md §3) the value is marked ``low_n`` and the
summary says so; with N ≤ 2048 the feature covariance has rank ≤ N − 1 < 2048, so FID is biased
upward and not comparable with published numbers — said in the same sentence. Below 2 samples it
is refused (no covariance).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from srbench.metrics.color import quantize_8bit
from srbench.metrics.iqa import offline_downloads, pyiqa_version
from srbench.weights import MissingWeightsError

#: the file pyiqa (and clean-fid) load the FID Inception weights from
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: pool3 feature dimension
FEATURE_DIM = 2048
#: below this many samples the value is marked (protocols.md §3: "warn when N < 1,000")
MIN_N = 1000
#: clean-fid's Inception input size
INCEPTION_SIZE = (299, 299)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of N(μ1, Σ1) and N(μ2, Σ2) — pyiqa's (= clean-fid's) implementation."""
    from pyiqa.archs.fid_arch import frechet_distance as pyiqa_frechet

    with contextlib.redirect_stdout(None):  # its "adding eps to diagonal" print
        return float(pyiqa_frechet(mu1, sigma1, mu2, sigma2))


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID of two N×D feature sets: mean and unbiased covariance (``np.cov``), as pyiqa's FID does."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


def clean_resize(img: np.ndarray, size: tuple[int, int] = INCEPTION_SIZE) -> np.ndarray:
    """clean-fid's "clean" resize of one H×W×3 uint8 image: PIL bicubic per channel in float32 ('F'
    mode, no quantisation), clipped to [0, 255]; returns 3×size float32 (pyiqa ``ResizeDataset``)."""
    from PIL import Image

    chans = []
    for c in range(3):
        pil = Image.fromarray(img[:, :, c].astype(np.float32), mode="F").resize(size, resample=Image.BICUBIC)
        chans.append(np.asarray(pil).clip(0, 255))
    return np.stack(chans).astype(np.float32)


@contextlib.contextmanager
def _no_pretrained_load() -> Iterator[None]:
    from pyiqa.archs import inception

    saved = inception.load_pretrained_network
    inception.load_pretrained_network = lambda *a, **k: None
    try:
        yield
    finally:
        inception.load_pretrained_network = saved


class InceptionFeatures:
    """pyiqa's FID Inception-v3 (pool3, 2048-d), fed in memory with clean-fid preprocessing.

    Args:
        device: where the network runs.
        random_init: skip loading the weight file (random network under ``seed``; tests and perf,
            the id says so). Otherwise the file is found as every pyiqa weight is
            (``$SRBENCH_WEIGHTS/pyiqa/`` or ``torch.hub.get_dir()/pyiqa/``), missing → one line.
        batch_size: images per Inception forward.
    """

    def __init__(self, device: torch.device | str = "cpu", *, random_init: bool = False, seed: int = 0,
                 batch_size: int = 16):
        from pyiqa.archs.inception import InceptionV3

        self.device, self.random_init, self.seed, self.batch_size = torch.device(device), random_init, seed, batch_size
        self.weights: dict[str, str] = {}
        try:
            with offline_downloads(self.weights), torch.random.fork_rng(devices=[]), \
                    (_no_pretrained_load() if random_init else contextlib.nullcontext()), \
                    contextlib.redirect_stdout(None), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torchvision's "pretrained is deprecated" (pyiqa's call)
                torch.manual_seed(seed)
                model = InceptionV3(output_blocks=[InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]])
        except MissingWeightsError as err:
            raise MissingWeightsError(f"fid: {err}") from None
        self.model = model.eval().to(self.device)

    @property
    def metric_id(self) -> str:
        tag = f"random{self.seed}" if self.random_init else "-".join(s[:12] for _, s in sorted(self.weights.items()))
        return f"pyiqa-{pyiqa_version()}-clean-inception{FEATURE_DIM}-{tag}"

    def __call__(self, images: Tensor) -> np.ndarray:
        """B×3×H×W RGB in [0, 1] → B×2048 float32 features (the image as its 8-bit PNG would be)."""
        u8 = quantize_8bit(images.detach().cpu().float()).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        out = []
        for i in range(0, len(u8), self.batch_size):
            batch = torch.from_numpy(np.stack([clean_resize(im) for im in u8[i:i + self.batch_size]]))
            batch = ((batch - 128) / 128).to(self.device)  # pyiqa get_folder_features, mode clean
            with torch.inference_mode():
                feat = self.model(batch, False, False)[0]
            out.append(feat.reshape(feat.shape[0], -1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


# ----------------------------------------------------------------------------- patch-FID crops
def patch_grid(height: int, width: int, size: int, *, seed: int, name: str) -> list[tuple[int, int]]:
    """(top, left) of the non-overlapping ``size``² tiles of one image.

    ⌊H/size⌋ × ⌊W/size⌋ tiles; the whole grid is shifted by (dy, dx), each uniform in
    [0, H mod size] × [0, W mod size], drawn from ``random.Random(f"{seed}:{name}")`` — fixed per image
    name and seed, independent of the method, the batch and the run. An image smaller than
    ``size`` gives no tile.
    """
    rows, cols = height // size, width // size
    if rows == 0 or cols == 0:
        return []
    rng = random.Random(f"{seed}:{name}")
    dy, dx = rng.randint(0, height - rows * size), rng.randint(0, width - cols * size)
    return [(dy + r * size, dx + c * size) for r in range(rows) for c in range(cols)]


def crop_patches(image: Tensor, grid: Sequence[tuple[int, int]], size: int) -> Tensor:
    """The tiles of one C×H×W image at ``grid`` as N×C×size×size."""
    return torch.stack([image[:, t:t + size, left:left + size] for t, left in grid]) if grid else \
        image.new_zeros((0, image.shape[0], size, size))


def grid_sha256(grids: dict[str, list[tuple[int, int]]], size: int) -> str:
    blob = json.dumps({"size": size, "grids": {k: grids[k] for k in sorted(grids)}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------- the N guard
def guarded_fid(feats_sr: np.ndarray, feats_hr: np.ndarray, *, what: str, metric_id: str,
                min_n: int = MIN_N) -> dict[str, Any]:
    """FID with its N and the guard's verdict: ``value`` (None when refused), ``n``, ``low_n``,
    ``rank_deficient`` and a ``note`` sentence whenever N is short."""
    n = int(min(len(feats_sr), len(feats_hr)))
    dim = int(np.shape(feats_sr)[1]) if np.ndim(feats_sr) == 2 else FEATURE_DIM
    out: dict[str, Any] = {"id": metric_id, "n": n, "feature_dim": dim, "min_n": min_n,
                           "low_n": n < min_n, "rank_deficient": n <= dim, "higher_is_better": False}
    if n < 2:
        return out | {"value": None, "note": f"{what} not computed: N={n} {what} samples, at least 2 are needed"}
    out["value"] = fid_from_features(feats_sr, feats_hr)
    if out["low_n"] or out["rank_deficient"]:
        out["note"] = (f"{what} over N={n} samples" + (f" (< {min_n})" if out["low_n"] else "")
                       + ": high-variance" + (f"; with N ≤ {dim} the {dim}-d feature covariance has rank ≤ N−1,"
                                               " so the value is biased upwards" if out["rank_deficient"] else "")
                       + "; not comparable with published FIDs")
    return out


# ----------------------------------------------------------------------------- one run's collection
@dataclass
class FIDSettings:
    """``metrics.fid`` (whole-image FID) and ``metrics.patch_fid`` (tile size, or None)."""

    fid: bool = False
    patch_size: int | None = None
    seed: int = 0
    min_n: int = MIN_N

    @property
    def enabled(self) -> bool:
        return self.fid or bool(self.patch_size)


class FIDCollector:
    """Features of one run's SR and HR images, stored under ``directory`` (one .npz per batch) so that a
    resumed or multi-GPU run sees every image; :meth:`result` computes the dataset-level values."""

    def __init__(self, extractor: InceptionFeatures, settings: FIDSettings, directory: Path):
        self.extractor, self.settings, self.dir = extractor, settings, Path(directory)

    def add(self, names: Sequence[str], sr: Tensor, hr: Tensor | None) -> None:
        """Features of the batch (HR needed: FID is SR vs HR)."""
        if hr is None or not names:
            return
        s = self.settings
        data: dict[str, Any] = {"names": np.array(list(names))}
        if s.fid:
            data["sr"], data["hr"] = self.extractor(sr), self.extractor(hr)
        if s.patch_size:
            owners, sr_p, hr_p = [], [], []
            for i, name in enumerate(names):
                grid = patch_grid(sr.shape[-2], sr.shape[-1], s.patch_size, seed=s.seed, name=name)
                owners += [name] * len(grid)
                sr_p.append(crop_patches(sr[i], grid, s.patch_size))
                hr_p.append(crop_patches(hr[i], grid, s.patch_size))
                data[f"grid:{name}"] = np.array(grid, np.int64).reshape(-1, 2)
            data["patch_owner"] = np.array(owners)
            data["patch_sr"] = self.extractor(torch.cat(sr_p))
            data["patch_hr"] = self.extractor(torch.cat(hr_p))
        self.dir.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        tmp = self.dir / f".{key}.tmp.npz"
        np.savez(tmp, **data)
        tmp.replace(self.dir / f"{key}.npz")

    def _load(self) -> dict[str, dict[str, Any]]:
        per_image: dict[str, dict[str, Any]] = {}
        for path in sorted(self.dir.glob("*.npz")) if self.dir.is_dir() else []:
            with np.load(path) as z:
                names = [str(n) for n in z["names"]]
                for i, name in enumerate(names):
                    entry: dict[str, Any] = {}
                    if "sr" in z:
                        entry["sr"], entry["hr"] = z["sr"][i], z["hr"][i]
                    if "patch_owner" in z:
                        mine = np.array([str(o) == name for o in z["patch_owner"]], bool)
                        entry["patch_sr"], entry["patch_hr"] = z["patch_sr"][mine], z["patch_hr"][mine]
                        entry["grid"] = [tuple(int(v) for v in t) for t in z[f"grid:{name}"]]
                    per_image[name] = entry
        return per_image

    def result(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{"fid": {...}, "patch_fid": {...}}`` over ``names`` (the run's scored images)."""
        s, stored = self.settings, self._load()
        have = [n for n in names if n in stored]
        out: dict[str, dict[str, Any]] = {}
        base = self.extractor.metric_id
        if s.fid:
            have_f = [n for n in have if "sr" in stored[n]]
            sr = np.stack([stored[n]["sr"] for n in have_f]) if have_f else np.zeros((0, FEATURE_DIM))
            hr = np.stack([stored[n]["hr"] for n in have_f]) if have_f else np.zeros((0, FEATURE_DIM))
            out["fid"] = guarded_fid(sr, hr, what="fid", metric_id=f"fid@{base}", min_n=s.min_n) | {
                "n_images": len(have_f)}
        if s.patch_size:
            have_p = [n for n in have if "patch_sr" in stored[n]]
            grids = {n: stored[n]["grid"] for n in have_p}
            sr = np.concatenate([stored[n]["patch_sr"] for n in have_p]) if have_p else np.zeros((0, FEATURE_DIM))
            hr = np.concatenate([stored[n]["patch_hr"] for n in have_p]) if have_p else np.zeros((0, FEATURE_DIM))
            pid = f"patch_fid@{base}-tile{s.patch_size}-seed{s.seed}"
            out["patch_fid"] = guarded_fid(sr, hr, what="patch_fid", metric_id=pid, min_n=s.min_n) | {
                "n_images": len(have_p),
                "crop_grid": {"rule": f"non-overlapping {s.patch_size}x{s.patch_size} tiles, grid offset uniform in "
                                      f"[0, H mod {s.patch_size}] x [0, W mod {s.patch_size}] from "
                                      f"random.Random('{s.seed}:<image name>')",
                              "size": s.patch_size, "seed": s.seed, "sha256": grid_sha256(grids, s.patch_size)}}
        return out
