"""Statistics helpers of the benchmark, checked against values worked out by hand."""
from __future__ import annotations

import math

import pytest

from zoo.bench.stats import mean_ci, paired_t_test, per_prompt_means, win_rate


def test_mean_ci_matches_the_student_t_interval():
    """values 1, 2, 3, 4: mean 2.5, s = √(5/3) = 1.29099, s/√4 = 0.645497,
    t_{0.975, 3} = 3.182446, half-width = 3.182446 · 0.645497 = 2.054270."""
    estimate = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert estimate.mean == pytest.approx(2.5)
    assert estimate.half_width == pytest.approx(2.054270, abs=1e-5)
    assert (estimate.low, estimate.high) == pytest.approx((0.445730, 4.554270), abs=1e-5)
    assert estimate.n == 4


def test_mean_ci_of_one_value_has_no_interval_and_skips_missing_values():
    estimate = mean_ci([3.0, None])
    assert estimate.mean == 3.0 and estimate.n == 1 and math.isnan(estimate.half_width)
    assert math.isnan(mean_ci([]).mean)


def test_paired_t_test_matches_the_closed_form_for_two_degrees_of_freedom():
    """a − b = (1, 2, 2): mean 5/3, s = 1/√3, s/√3 = 1/3, t = 5 with 2 degrees of freedom.
    For 2 degrees of freedom the two-sided p-value is 1 − |t|/√(t² + 2) = 1 − 5/√27 = 0.037750;
    the interval's half-width is t_{0.975, 2} · 1/3 = 4.302653/3 = 1.434218."""
    test = paired_t_test([1.0, 2.0, 3.0], [0.0, 0.0, 1.0])
    assert test.difference.mean == pytest.approx(5 / 3)
    assert test.p_value == pytest.approx(1 - 5 / math.sqrt(27), abs=1e-9)
    assert test.difference.half_width == pytest.approx(1.434218, abs=1e-5)
    assert test.significant


def test_paired_t_test_is_not_significant_when_the_interval_covers_zero():
    """a − b = (1, −1, 0.5): mean 1/6, s = 1.040833 → t = 0.277350, p = 1 − t/√(t² + 2) = 0.807."""
    test = paired_t_test([2.0, 0.0, 1.5], [1.0, 1.0, 1.0])
    t = (1 / 6) / (math.sqrt(((5 / 6) ** 2 + (7 / 6) ** 2 + (1 / 3) ** 2) / 2) / math.sqrt(3))
    assert test.p_value == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-9)
    assert not test.significant
    assert test.difference.low < 0 < test.difference.high


def test_paired_t_test_of_identical_samples_and_of_one_pair():
    same = paired_t_test([1.0, 2.0], [1.0, 2.0])
    assert same.p_value == 1.0 and not same.significant and same.difference.mean == 0
    shifted = paired_t_test([2.0, 3.0], [1.0, 2.0])
    assert shifted.p_value == 0.0 and shifted.significant
    single = paired_t_test([2.0], [1.0])
    assert math.isnan(single.p_value) and not single.significant
    with pytest.raises(ValueError):
        paired_t_test([1.0], [1.0, 2.0])


def test_win_rate_counts_ties_as_half():
    assert win_rate([1.0, 2.0, 3.0], [1.0, 1.0, 4.0]) == pytest.approx((0.5 + 1 + 0) / 3)
    assert win_rate([0.0, 0.0], [0.0, 0.0]) == 0.5
    with pytest.raises(ValueError):
        win_rate([], [])


def test_per_prompt_means_groups_consecutive_samples():
    assert per_prompt_means([1.0, 3.0, 2.0, 2.0, -1.0, 0.0], 2) == [2.0, 2.0, -0.5]
