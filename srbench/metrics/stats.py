"""Set-level statistics of per-image scores: mean, bootstrap CI, paired comparison of two runs.

The set score is the arithmetic mean of per-image values (mean of per-image PSNR in dB, not
PSNR of the pooled MSE). ``inf`` (identical images) is left out of the mean and counted;
NaN (a broken output) is counted and makes the summary invalid. Bootstrap resampling uses a
fixed seed, so every number here is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_RESAMPLES = 10_000
SEED = 0
_CHUNK = 500  # resamples per vectorised draw: bounds memory at _CHUNK × n indices


def _bootstrap_means(x: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement, size n) of ``x``."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, _CHUNK):
        stop = min(start + _CHUNK, n_resamples)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def summarize(
    values: Sequence[float], *, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> dict[str, float | int | bool]:
    """Mean, sample std (ddof=1), counts and 95% percentile-bootstrap CI of the mean.

    Returns a dict with ``mean, std, n`` (finite values used), ``n_inf, n_nan``,
    ``ci95_low, ci95_high`` and ``valid`` (False when any value is NaN: the set score of a
    run that produced a broken image must not be read as a number).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    nan, inf = np.isnan(v), np.isinf(v)
    finite = v[~nan & ~inf]
    n = int(finite.size)
    out: dict[str, float | int | bool] = {
        "mean": float(finite.mean()) if n else float("nan"),
        "std": float(finite.std(ddof=1)) if n > 1 else float("nan"),
        "n": n,
        "n_inf": int(inf.sum()),
        "n_nan": int(nan.sum()),
        "ci95_low": float("nan"),
        "ci95_high": float("nan"),
        "valid": bool(n > 0 and not nan.any()),
    }
    if n > 1:
        lo, hi = np.percentile(_bootstrap_means(finite, n_resamples, seed), [2.5, 97.5])
        out["ci95_low"], out["ci95_high"] = float(lo), float(hi)
    elif n == 1:
        out["ci95_low"] = out["ci95_high"] = float(finite[0])
    return out


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> dict[str, float | int]:
    """Paired bootstrap comparison of two runs scored on the same images (a − b).

    Images are resampled as pairs, so per-image difficulty cancels. The CI is the 95%
    percentile interval of the resampled mean difference; the two-sided p-value tests
    "mean difference = 0" by resampling the differences shifted to mean zero
    (Efron & Tibshirani 1993, ch. 16): p = (1 + #{|d̄*₀| ≥ |d̄|}) / (1 + B).
    Pairs where either value is not finite are dropped and counted.

    Returns ``mean_diff, ci95_low, ci95_high, p_value, n, n_dropped``.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_bootstrap needs the same images in both runs, got {a.size} and {b.size} values")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(d.size)
    out = {"mean_diff": float("nan"), "ci95_low": float("nan"), "ci95_high": float("nan"),
           "p_value": float("nan"), "n": n, "n_dropped": int((~keep).sum())}
    if n < 2:
        return out
    d_bar = float(d.mean())
    boot = _bootstrap_means(d, n_resamples, seed)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    # Same resamples, centred: the null distribution of the mean difference.
    null = boot - d_bar
    p = (1 + np.count_nonzero(np.abs(null) >= abs(d_bar))) / (1 + n_resamples)
    out.update(mean_diff=d_bar, ci95_low=float(lo), ci95_high=float(hi), p_value=float(min(1.0, p)))
    return out
