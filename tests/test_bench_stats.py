"""Statistics helpers of the benchmark, checked against values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from zoo.bench.stats import (equivalence_p, holm, is_failure, kl_matched, kl_matched_difference, mcnemar_exact, mean_ci, paired_t_test,
                             pairwise_tests, per_prompt_means, proportion_interval, t_interval, value_at, versus_best,
                             win_rate)


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


# ----- many comparisons, two-level intervals, failures, KL-matched values ------------------------------


def test_holm_matches_the_hand_worked_adjustment():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4. Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06,
    0.04·1 = 0.04 → running maximum 0.02, 0.03, 0.06, 0.06; back in input order (0.03, 0.06, 0.06, 0.02).
    A NaN is neither adjusted nor counted in m."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.2, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1


def test_pairwise_tests_pair_on_shared_seeds_and_agree_with_scipy():
    samples = {"A": {0: 1.0, 1: 2.0, 2: 3.0, 3: 2.5}, "B": {0: 0.0, 1: 0.5, 2: 1.5, 3: 1.0},
               "C": {0: 1.1, 1: 1.9, 3: 2.6}}  # C collapsed on seed 2
    tests = pairwise_tests(samples)
    assert [(t.a, t.b) for t in tests] == [("A", "B"), ("A", "C"), ("B", "C")]
    raw = [stats.ttest_rel([1.0, 2.0, 3.0, 2.5], [0.0, 0.5, 1.5, 1.0]).pvalue,
           stats.ttest_rel([1.0, 2.0, 2.5], [1.1, 1.9, 2.6]).pvalue,
           stats.ttest_rel([0.0, 0.5, 1.0], [1.1, 1.9, 2.6]).pvalue]
    assert [t.test.p_value for t in tests] == pytest.approx(raw)
    assert [t.adjusted_p for t in tests] == pytest.approx(holm(raw))
    assert tests[1].test.difference.n == 3 and tests[0].test.difference.mean == pytest.approx(1.375)
    assert tests[0].significant and not tests[1].significant  # A−B = 1, 1.5, 1.5, 1.5: clear; A−C: noise


def test_versus_best_gives_each_rows_difference_interval_and_calls_a_noisy_row_cannot_tell():
    """Best A; B − A = (−1, −1.5, −1.5, −1.5): mean −1.375, s = 0.25, s/√4 = 0.125, t = −11 (3 df).
    C − A on the seeds both have (0, 1, 3) = (0.1, −0.1, 0.1): mean 1/30, s = √3/15, s/√3 = 1/15,
    t = 0.5 (2 df), p = 1 − 0.5/√2.25 = 2/3: C is not shown below A, and not tied either.
    With margin 0.5 the two one-sided t statistics are (1/30 ∓ 1/2)·15 = −7 and 8; with 2 df the
    one-sided p of t is (1 − t/√(t² + 2))/2: (1 − 7/√51)/2 = 0.009902 and (1 − 8/√66)/2 = 0.007634;
    the larger, 0.009902 < 0.05: C is equivalent to A within ±0.5."""
    samples = {"A": {0: 1.0, 1: 2.0, 2: 3.0, 3: 2.5}, "B": {0: 0.0, 1: 0.5, 2: 1.5, 3: 1.0},
               "C": {0: 1.1, 1: 1.9, 3: 2.6}}
    rows = versus_best(samples, "A")
    p_b = stats.ttest_rel([0.0, 0.5, 1.5, 1.0], [1.0, 2.0, 3.0, 2.5]).pvalue
    assert rows["B"]["difference_mean"] == pytest.approx(-1.375)
    half = stats.t.ppf(0.975, 3) * 0.125
    assert (rows["B"]["low"], rows["B"]["high"]) == pytest.approx((-1.375 - half, -1.375 + half))
    assert rows["B"]["adjusted_p"] == pytest.approx(holm([p_b, 2 / 3])[0]) and rows["B"]["verdict"] == "below best"
    assert rows["C"]["p_value"] == pytest.approx(2 / 3) and rows["C"]["n"] == 3
    assert rows["C"]["verdict"] == "cannot tell" and math.isnan(rows["C"]["equivalence_p"])
    within = versus_best(samples, "A", margin=0.5)
    assert within["C"]["equivalence_p"] == pytest.approx((1 - 7 / math.sqrt(51)) / 2)
    assert within["C"]["verdict"] == "equivalent" and within["B"]["verdict"] == "below best"
    assert versus_best(samples, "A", margin=0.05)["C"]["verdict"] == "cannot tell"
    assert equivalence_p([0.1, -0.1, 0.1], 0.5) == pytest.approx(max((1 - 7 / math.sqrt(51)) / 2,
                                                                    (1 - 8 / math.sqrt(66)) / 2))


def test_a_row_above_the_named_best_is_never_called_below_it():
    """The best row is the one with the highest mean over its own kept seeds; on the seeds it shares
    with another row that row can be significantly higher (B − A = 1, 1.1, 0.9, 1 here): that is
    not "below best", and not "equivalent" either, so it is "cannot tell"."""
    samples = {"A": {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}, "B": {0: 2.0, 1: 2.1, 2: 1.9, 3: 2.0}}
    row = versus_best(samples, "A")["B"]
    assert row["difference_mean"] == pytest.approx(1.0) and row["adjusted_p"] < 0.001
    assert row["verdict"] == "cannot tell"


def test_collapse_rate_interval_is_clopper_pearson_and_mcnemar_is_the_exact_binomial():
    """0 of 5: [0, 1 − 0.025^(1/5)] = [0, 0.521823]; 5 of 5: [0.025^(1/5), 1] = [0.478176, 1].
    McNemar with 3 discordant seeds all one way: p = 2 · (1/2)³ = 0.25; 5 of 5 one way: 0.0625, so
    five seeds can never show a collapse difference at α = 0.05; no discordant seed: p = 1."""
    assert proportion_interval(0, 5) == pytest.approx((0.0, 1 - 0.025 ** 0.2))
    assert proportion_interval(5, 5) == pytest.approx((0.025 ** 0.2, 1.0))
    exact = stats.binomtest(2, 7).proportion_ci(method="exact")
    assert proportion_interval(2, 7) == pytest.approx((exact.low, exact.high))
    assert mcnemar_exact(3, 0) == pytest.approx(0.25) and mcnemar_exact(0, 3) == pytest.approx(0.25)
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625) and mcnemar_exact(0, 0) == 1.0


def _percentile_bootstrap_covers(seed_means, truth, replicates, rng):
    """The seed-cluster percentile bootstrap the harness used before: resample seeds, 2.5/97.5 percentiles."""
    sims, n = seed_means.shape
    drawn = seed_means[np.arange(sims)[:, None, None], rng.integers(0, n, size=(sims, replicates, n))].mean(axis=2)
    low, high = np.percentile(drawn, [2.5, 97.5], axis=1)
    return ((low <= truth) & (truth <= high)).mean()


@pytest.mark.parametrize("seeds, bootstrap_at_most", [(3, 0.82), (5, 0.89)])
def test_the_seed_level_t_interval_covers_where_the_seed_bootstrap_does_not(seeds, bootstrap_at_most):
    """Coverage of the headline interval, simulated: per-seed mean gold = μ + seed effect (SD 1) +
    the mean of 40 prompts' noise (SD 1 each). The Student-t interval over per-seed means covers μ
    about 95% of the time (exact for normal seed means); the percentile bootstrap over seed
    clusters covers about 75% at 3 seeds and 84% at 5 (its spread is the plug-in variance, too
    small by (n − 1)/n, and its quantiles are normal ones). 4000 simulated runs: Monte Carlo
    SE of a 95% coverage is 0.0034."""
    rng = np.random.default_rng(0)
    sims, prompts, truth = 4000, 40, 1.5
    seed_means = truth + rng.normal(size=(sims, seeds)) + rng.normal(size=(sims, seeds, prompts)).mean(axis=2)
    intervals = [t_interval(row, "sim") for row in seed_means]
    t_coverage = np.mean([iv.low <= truth <= iv.high for iv in intervals])
    assert 0.94 <= t_coverage <= 0.96
    assert _percentile_bootstrap_covers(seed_means, truth, 1000, rng) <= bootstrap_at_most


def test_a_collapse_is_kl_beyond_the_bound_or_gold_far_below_the_baseline():
    rule = dict(max_kl=20.0, max_gold_drop_sd=1.0)
    assert not is_failure(0.5, 3.0, 0.0, 1.2, **rule)
    assert is_failure(0.5, 20.5, 0.0, 1.2, **rule)  # KL beyond the bound
    assert is_failure(-1.3, 1.0, 0.0, 1.2, **rule)  # 1.3 below SFT, more than 1.2 (one SD)
    assert not is_failure(-1.1, 1.0, 0.0, 1.2, **rule)
    assert is_failure(math.nan, 1.0, 0.0, 1.2, **rule)


def test_values_are_interpolated_on_the_frontier_and_never_extrapolated():
    assert value_at([2.0, 0.0, 4.0], [3.0, 1.0, 2.0], 1.0) == pytest.approx(2.0)  # between (0, 1) and (2, 3)
    assert value_at([2.0, 0.0, 4.0], [3.0, 1.0, 2.0], 3.0) == pytest.approx(2.5)
    assert math.isnan(value_at([0.0, 2.0], [1.0, 3.0], 2.5))


def test_kl_matched_gold_reads_the_sweep_at_the_budget_with_an_interval():
    """Two settings at KL 1 and 3 with gold 1 and 2 on every prompt and seed: gold at KL 2 is 1.5
    with no spread. With noise, the interval must cover the point estimate."""
    kl = np.stack([np.full((2, 5), 1.0), np.full((2, 5), 3.0)])
    gold = np.stack([np.full((2, 5), 1.0), np.full((2, 5), 2.0)])
    exact = kl_matched(kl, gold, 2.0, replicates=200)
    assert (exact.mean, exact.low, exact.high) == pytest.approx((1.5, 1.5, 1.5))
    assert math.isnan(kl_matched(kl, gold, 5.0, replicates=50).mean)
    rng = np.random.default_rng(0)
    noisy = kl_matched(kl + rng.normal(0, 0.1, kl.shape), gold + rng.normal(0, 0.5, gold.shape), 2.0, replicates=500)
    assert noisy.low < noisy.mean < noisy.high and noisy.high - noisy.low < 2


def test_two_sweeps_are_compared_at_equal_kl_seed_by_seed():
    """Sweep A on seed s: settings at KL 1 and 3 with gold 1 and 2 + 0.1·s, so gold at KL 2 is
    1.5 + 0.05·s; sweep B: KL 0 and 4, gold 0 and 2, so 1.0 at KL 2. Differences 0.50, 0.55, 0.60:
    mean 0.55, s = 0.05, t = 0.55 / (0.05/√3) = 19.05 with 2 df. When B's seed 2 stops at KL 1.5 it
    does not reach the budget and only seeds 0 and 1 are paired (mean 0.525)."""
    prompts = 4
    a_kl = np.stack([np.full((3, prompts), 1.0), np.full((3, prompts), 3.0)])
    a_gold = np.stack([np.full((3, prompts), 1.0), np.stack([np.full(prompts, 2 + 0.1 * s) for s in range(3)])])
    b_kl = np.stack([np.full((3, prompts), 0.0), np.full((3, prompts), 4.0)])
    b_gold = np.stack([np.full((3, prompts), 0.0), np.full((3, prompts), 2.0)])
    test = kl_matched_difference((a_kl, a_gold), (b_kl, b_gold), 2.0)
    assert test.difference.n == 3 and test.difference.mean == pytest.approx(0.55)
    assert test.p_value == pytest.approx(stats.ttest_rel([1.5, 1.55, 1.6], [1.0, 1.0, 1.0]).pvalue)
    assert test.p_value == pytest.approx(2 * stats.t.sf(0.55 / (0.05 / math.sqrt(3)), 2))
    reversed_ = kl_matched_difference((b_kl, b_gold), (a_kl, a_gold), 2.0)
    assert reversed_.difference.mean == pytest.approx(-0.55) and reversed_.p_value == pytest.approx(test.p_value)
    b_kl[1, 2] = 1.5  # seed 2 of sweep B never reaches KL 2
    short = kl_matched_difference((a_kl, a_gold), (b_kl, b_gold), 2.0)
    assert short.difference.n == 2 and short.difference.mean == pytest.approx(0.525)
    # a seed's own curve, not the pooled one: prompts differ within a seed and are averaged first
    a_gold[0, 0, :2], a_gold[0, 0, 2:] = 0.5, 1.5  # seed 0's mean at setting 0 stays 1
    assert kl_matched_difference((a_kl, a_gold), (b_kl, b_gold), 2.0).difference.mean == pytest.approx(0.525)
