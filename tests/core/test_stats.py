"""Intervals and significance of the comparison report, against values worked out by hand."""

import math

import pytest

from core.report.stats import cell_stats, versus_best

T975 = {1: 12.7062, 2: 4.3027, 4: 2.7764}  # Student's t quantiles from a printed table


def test_t_interval_over_seeds():
    c = cell_stats([0.90, 0.92, 0.97])
    sd = math.sqrt(((0.90 - 0.93) ** 2 + (0.92 - 0.93) ** 2 + (0.97 - 0.93) ** 2) / 2)
    half = T975[2] * sd / math.sqrt(3)
    assert c.n == 3 and c.mean == pytest.approx(0.93)
    assert (c.low, c.high) == (pytest.approx(0.93 - half, abs=1e-4), pytest.approx(0.93 + half, abs=1e-4))
    assert c.text() == f"0.9300 ± {half:.4f} (n=3)"
    one = cell_stats([0.5, float("nan")])
    assert one.n == 1 and math.isnan(one.low) and one.text() == "0.5000 (n=1)"


def test_paired_by_seed_against_the_best():
    # diffs best - other per seed: 0.4, 0.2 -> mean 0.3, sd 0.1414, t = 3.0 on 1 df: p = 0.2048
    best, p = versus_best({"rope": {0: 0.9, 1: 0.8}, "none": {0: 0.5, 1: 0.6}}, higher_is_better=True)
    assert best == "rope" and p["none"] == pytest.approx(0.2048, abs=1e-3)
    # lower is better (WER); three seeds with a steady gap: t = 0.1 / (0.01 / sqrt 3) = 17.32 on 2 df
    best, p = versus_best({"rope": {0: 0.10, 1: 0.12, 2: 0.11}, "none": {0: 0.19, 1: 0.23, 2: 0.21}}, False)
    assert best == "rope" and p["none"] == pytest.approx(0.00332, abs=2e-4)


def test_unpaired_seeds_use_welch_and_constant_gaps_are_decided():
    best, p = versus_best({"a": {0: 1.0, 1: 0.8}, "b": {5: 0.2, 6: 0.4}}, True)
    # Welch with equal variances and sizes: t = 0.6 / sqrt(0.02/2 + 0.02/2) = 4.243 on 2 df: p = 0.0513
    assert best == "a" and p["b"] == pytest.approx(0.0513, abs=1e-3)
    _, p = versus_best({"a": {0: 0.9, 1: 0.8}, "b": {0: 0.8, 1: 0.7}}, True)  # same gap every seed
    assert p["b"] == 0.0
    _, p = versus_best({"a": {0: 0.9}, "b": {0: 0.8}}, True)  # one seed: nothing to test
    assert math.isnan(p["b"])
