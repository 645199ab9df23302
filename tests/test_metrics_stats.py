"""Set statistics: counts, mean/std against numpy, bootstrap CI and paired test against scipy."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as sps

from srbench.metrics.stats import paired_bootstrap, summarize


def test_summarize_counts_inf_and_nan_and_excludes_them():
    values = [30.0, 31.5, float("inf"), 29.0, float("nan"), float("inf"), 32.25]
    s = summarize(values)
    finite = [30.0, 31.5, 29.0, 32.25]
    assert s["n"] == 4 and s["n_inf"] == 2 and s["n_nan"] == 1
    assert s["mean"] == pytest.approx(statistics.fmean(finite), abs=1e-12)
    assert s["std"] == pytest.approx(statistics.stdev(finite), abs=1e-12)
    assert s["valid"] is False
    assert summarize(finite)["valid"] is True


def test_summarize_is_deterministic_and_ci_brackets_the_mean():
    values = np.random.default_rng(1).normal(28.0, 2.0, size=57)
    a, b = summarize(values), summarize(list(values))
    assert a == b
    assert a["ci95_low"] < a["mean"] < a["ci95_high"]


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap():
    values = np.random.default_rng(2).gamma(2.0, 1.5, size=120)  # skewed, like per-image LPIPS
    ours = summarize(values)
    ref = sps.bootstrap((values,), np.mean, n_resamples=10_000, method="percentile",
                        rng=np.random.default_rng(3)).confidence_interval
    width = ref.high - ref.low
    assert abs(ours["ci95_low"] - ref.low) < 0.05 * width
    assert abs(ours["ci95_high"] - ref.high) < 0.05 * width


def test_bootstrap_ci_width_matches_normal_theory():
    values = np.random.default_rng(4).normal(0.0, 1.0, size=400)
    ours = summarize(values)
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert (ours["ci95_high"] - ours["ci95_low"]) == pytest.approx(2 * 1.959964 * se, rel=0.06)


def test_summarize_edge_sizes():
    assert summarize([])["n"] == 0 and math.isnan(summarize([])["mean"])
    one = summarize([3.0])
    assert one["mean"] == 3.0 and one["ci95_low"] == one["ci95_high"] == 3.0 and math.isnan(one["std"])
    only_inf = summarize([float("inf")])
    assert only_inf["n"] == 0 and only_inf["n_inf"] == 1 and math.isnan(only_inf["mean"])


def test_paired_bootstrap_mean_and_p_value_track_paired_t_test():
    rng = np.random.default_rng(5)
    base = rng.normal(27.0, 2.5, size=300)  # per-image difficulty, shared by both runs
    diff = rng.normal(0.0, 0.5, size=300)
    diff += 2.5 * diff.std(ddof=1) / math.sqrt(300) - diff.mean()  # t ≈ 2.5 exactly
    a, b = base + diff, base
    res = paired_bootstrap(a, b)
    t = sps.ttest_rel(a, b)
    assert res["mean_diff"] == pytest.approx(float(np.mean(a - b)), abs=1e-12)
    assert res["ci95_low"] < res["mean_diff"] < res["ci95_high"]
    assert res["ci95_low"] > 0
    assert res["p_value"] == pytest.approx(t.pvalue, abs=0.01)


def test_paired_bootstrap_small_difference_is_not_significant():
    rng = np.random.default_rng(6)
    base = rng.normal(0.3, 0.05, size=200)
    d = rng.normal(0, 0.014, size=200)
    d += 0.5 * d.std(ddof=1) / math.sqrt(200) - d.mean()  # t = 0.5
    a, b = base + d, base
    res = paired_bootstrap(a, b)
    assert res["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue, abs=0.03)
    assert res["p_value"] > 0.5
    assert res["ci95_low"] < 0 < res["ci95_high"]


def test_paired_bootstrap_drops_nonfinite_pairs_and_is_deterministic():
    a = [30.0, float("inf"), 29.0, 31.0, float("nan"), 28.5]
    b = [29.0, 30.0, 28.0, 30.5, 27.0, 28.0]
    res = paired_bootstrap(a, b)
    assert res["n"] == 4 and res["n_dropped"] == 2
    assert res["mean_diff"] == pytest.approx(statistics.fmean([1.0, 1.0, 0.5, 0.5]))
    assert res == paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap([1.0, 2.0], [1.0])
