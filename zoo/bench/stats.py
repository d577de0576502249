"""Means, 95% confidence intervals and paired tests for benchmark results.

Intervals are Student-t intervals, mean ± t_{0.975, n−1} · s/√n, with s the sample standard
deviation (n − 1 in the denominator). A contender is compared with the SFT baseline by a paired
t-test on per-seed means (the same seed draws both evaluations), or, with a single seed, on
per-prompt mean differences (the same prompts are evaluated for both).

Why seed-level Student-t for the headline: with a handful of seeds the percentile bootstrap over
seed clusters under-covers (its spread is the plug-in variance, smaller by (n − 1)/n, and its
quantiles are normal ones): at 5 seeds a nominal 95% interval covers about 84% of the time, at
3 seeds about 75%. The t interval on per-seed means is exact for normal seed means and covers
about 95% already at 3 seeds (tests/test_bench_stats.py simulates both).

Collapse (a run that fell apart) is an outcome of its own: a count out of the seeds, with an exact
Clopper–Pearson interval, compared between two rows by McNemar's exact test on the seeds where
exactly one of them collapsed (the seeds pair them).

A little over 300 lines: every statistic of the report in one place, so the independent
recomputation (tests/bench_recompute.py) has one module to be independent of.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean with the half-width of its confidence interval (NaN when n < 2) and n."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci95": self.half_width, "n": self.n}


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of ``a − b``: the mean difference, its interval, the two-sided p-value."""

    difference: Estimate
    p_value: float
    test: str

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < 1 - CONFIDENCE

    def as_dict(self) -> dict[str, float | str | bool]:
        return {**{f"difference_{k}": v for k, v in self.difference.as_dict().items()}, "p_value": self.p_value,
                "test": self.test, "significant": self.significant}


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean and Student-t confidence half-width of ``values``."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    n = int(array.size)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = float(array.mean())
    if n < 2:
        return Estimate(mean, math.nan, n)
    sem = float(array.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem, n)


def paired_t_test(a: Sequence[float], b: Sequence[float], test: str = "paired t-test") -> PairedTest:
    """Two-sided paired t-test of the mean of ``a − b`` against 0."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    estimate = mean_ci(differences)
    if differences.size < 2:
        return PairedTest(estimate, math.nan, test)
    if np.all(differences == differences[0]):
        # No spread: the difference is exactly known (0 for the baseline against itself).
        return PairedTest(estimate, 1.0 if differences[0] == 0 else 0.0, test)
    return PairedTest(estimate, float(scipy_stats.ttest_rel(a, b).pvalue), test)


def win_rate(contender: Sequence[float], baseline: Sequence[float]) -> float:
    """Share of paired samples where ``contender`` scores higher; a tie counts one half."""
    if len(contender) != len(baseline) or not contender:
        raise ValueError("win rate needs two equally long, non-empty sequences")
    wins = sum(1.0 if c > b else 0.5 if c == b else 0.0 for c, b in zip(contender, baseline))
    return wins / len(contender)


def per_prompt_means(values: Sequence[float], samples_per_prompt: int) -> list[float]:
    """Means of consecutive groups of ``samples_per_prompt`` values (one group per prompt)."""
    array = np.asarray(values, dtype=float).reshape(-1, samples_per_prompt)
    return array.mean(axis=1).tolist()


# ----- many comparisons, the best row, collapses, KL-matched values ------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (NaN stays NaN and is not counted).

    With m valid p-values sorted ascending p_(1) ≤ … ≤ p_(m), the adjusted value of p_(i) is
    max_{j ≤ i} min(1, (m − j + 1) · p_(j)). Rejecting where the adjusted value is below α keeps
    the family-wise error rate at α.
    """
    valid = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(valid)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class PairwiseTest:
    """Contender ``a`` against ``b``: the paired test of ``a − b`` and its Holm-adjusted p-value."""

    a: str
    b: str
    test: PairedTest
    adjusted_p: float

    @property
    def significant(self) -> bool:
        return not math.isnan(self.adjusted_p) and self.adjusted_p < 1 - CONFIDENCE

    def as_dict(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, **self.test.as_dict(), "adjusted_p": self.adjusted_p,
                "significant": self.significant}


def pairwise_tests(samples: dict[str, dict[object, float]], test: str = "paired t-test") -> list[PairwiseTest]:
    """Every pair of contenders, paired on the keys (seeds, or prompts) both have, Holm-corrected.

    ``samples`` maps a contender to ``{key: value}`` (e.g. seed → mean gold reward on the test
    prompts); a pair is tested on the keys present for both (a failed seed is absent). Pairs are
    ordered as the contenders are, ``a`` before ``b``.
    """
    names = list(samples)
    raw: list[tuple[str, str, PairedTest]] = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            keys = [k for k in samples[a] if k in samples[b]]
            raw.append((a, b, paired_t_test([samples[a][k] for k in keys], [samples[b][k] for k in keys], test)))
    adjusted = holm([t.p_value for _, _, t in raw])
    return [PairwiseTest(a, b, t, p) for (a, b, t), p in zip(raw, adjusted)]


def versus_best(samples: dict[str, dict[object, float]], best: str, margin: float | None = None
                ) -> dict[str, dict[str, object]]:
    """Each contender's paired difference from ``best`` (row − best), with its 95% interval and a verdict.

    ``samples`` is as for :func:`pairwise_tests`; each row is paired with the best on the keys both
    have. The m − 1 paired t-tests form one family, Holm-corrected among themselves. Verdict:
    "below best" when the adjusted p < 0.05 and the difference is negative; "equivalent" when a
    ``margin`` is declared and the two one-sided tests (:func:`equivalence_p`) show |difference| <
    margin at α = 0.05; otherwise "cannot tell": a noisy row is not called tied.
    """
    others = [name for name in samples if name != best]
    raw = {}
    for name in others:
        keys = [k for k in samples[name] if k in samples[best]]
        differences = [samples[name][k] - samples[best][k] for k in keys]
        raw[name] = (paired_t_test([samples[name][k] for k in keys], [samples[best][k] for k in keys]),
                     equivalence_p(differences, margin) if margin is not None else math.nan)
    adjusted = dict(zip(others, holm([raw[name][0].p_value for name in others])))
    out: dict[str, dict[str, object]] = {}
    for name in others:
        test, equivalence = raw[name]
        d, p = test.difference, adjusted[name]
        if not math.isnan(p) and p < 1 - CONFIDENCE and d.mean < 0:
            word = "below best"
        elif not math.isnan(equivalence) and equivalence < 1 - CONFIDENCE:
            word = "equivalent"
        else:
            word = "cannot tell"
        out[name] = {"difference_mean": d.mean, "low": d.low, "high": d.high, "n": d.n, "p_value": test.p_value,
                     "adjusted_p": p, "equivalence_p": equivalence, "margin": margin, "verdict": word}
    return out


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (possibly asymmetric) interval and what it covers."""

    mean: float
    low: float
    high: float
    covers: str

    def as_dict(self) -> dict[str, float | str]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "covers": self.covers}


def percentile_interval(point: float, replicates: np.ndarray, covers: str, confidence: float = CONFIDENCE
                        ) -> Interval:
    tail = (1 - confidence) / 2 * 100
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return Interval(point, math.nan, math.nan, covers)
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(point, float(low), float(high), covers)


def t_interval(values: Sequence[float], covers: str, confidence: float = CONFIDENCE) -> Interval:
    """:func:`mean_ci` as an :class:`Interval` (NaN bounds with fewer than two values)."""
    estimate = mean_ci(values, confidence)
    return Interval(estimate.mean, estimate.low, estimate.high, covers)


def equivalence_p(differences: Sequence[float], margin: float) -> float:
    """Two one-sided t-tests (TOST) of |mean difference| < ``margin``: the larger one-sided p-value.

    Equivalence at level α is shown when this is below α, which is the same as the (1 − 2α)
    Student-t interval of the mean difference lying inside (−margin, +margin).
    """
    array = np.asarray(differences, dtype=float)
    n = array.size
    if n < 2:
        return math.nan
    sem = float(array.std(ddof=1)) / math.sqrt(n)
    mean = float(array.mean())
    if sem == 0:
        return 0.0 if abs(mean) < margin else 1.0
    upper = float(scipy_stats.t.cdf((mean - margin) / sem, n - 1))  # H0: mean ≥ +margin
    lower = float(scipy_stats.t.sf((mean + margin) / sem, n - 1))  # H0: mean ≤ −margin
    return max(upper, lower)


def proportion_interval(count: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper–Pearson (exact) interval of a proportion ``count``/``total``, from the beta quantiles."""
    if total < 1:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = 0.0 if count == 0 else float(scipy_stats.beta.ppf(tail, count, total - count + 1))
    high = 1.0 if count == total else float(scipy_stats.beta.ppf(1 - tail, count + 1, total - count))
    return low, high


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """McNemar's exact two-sided p-value for paired yes/no outcomes: with ``only_first`` pairs where
    only the first collapsed and ``only_second`` where only the second did, the test is a binomial
    test of ``only_first`` out of the discordant pairs at 1/2 (1.0 with no discordant pair)."""
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    return float(scipy_stats.binomtest(only_first, discordant, 0.5).pvalue)


def is_failure(gold: float, kl: float, baseline_gold: float, baseline_sd: float, *, max_kl: float,
               max_gold_drop_sd: float) -> bool:
    """A collapsed run: KL(π‖π_SFT) above ``max_kl`` nats, or mean gold reward more than
    ``max_gold_drop_sd`` standard deviations (of the baseline's per-sample gold reward) below the
    baseline's mean. A NaN KL or gold reward is a failure too."""
    if math.isnan(gold) or math.isnan(kl):
        return True
    return kl > max_kl or gold < baseline_gold - max_gold_drop_sd * baseline_sd


def value_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """``y`` at ``x`` by linear interpolation between the points of a curve sorted by ``x``;
    NaN outside the range of ``xs`` (nothing is extrapolated)."""
    order = np.argsort(np.asarray(xs, dtype=float), kind="stable")
    xs_sorted = np.asarray(xs, dtype=float)[order]
    ys_sorted = np.asarray(ys, dtype=float)[order]
    if xs_sorted.size == 0 or x < xs_sorted[0] or x > xs_sorted[-1]:
        return math.nan
    return float(np.interp(x, xs_sorted, ys_sorted))


def kl_matched(kl: np.ndarray, gold: np.ndarray, budget: float, replicates: int = 2000, seed: int = 0
               ) -> Interval:
    """Gold reward at KL = ``budget`` read off a sweep, with a two-level bootstrap interval.

    ``kl`` and ``gold`` are ``[points, seeds, prompts]`` arrays (per-prompt means of each sweep
    setting, seed and test prompt). The point estimate interpolates the sweep's mean (KL, gold)
    curve at ``budget``; each bootstrap replicate redraws seeds and prompts (the same draw for
    every point of the sweep: they share pipelines and prompts) and interpolates again.
    """
    kl, gold = np.asarray(kl, dtype=float), np.asarray(gold, dtype=float)
    points, seeds, prompts = kl.shape
    estimate = value_at(kl.mean(axis=(1, 2)), gold.mean(axis=(1, 2)), budget)
    rng = np.random.default_rng(seed)
    values = np.empty(replicates)
    for r in range(replicates):
        groups = rng.integers(0, seeds, size=seeds)
        rows = rng.integers(0, prompts, size=(seeds, prompts))
        mean_kl = kl[:, groups[:, None], rows].mean(axis=(1, 2))
        mean_gold = gold[:, groups[:, None], rows].mean(axis=(1, 2))
        values[r] = value_at(mean_kl, mean_gold, budget)
    covers = f"gold at KL = {budget:g}, interpolated; hierarchical bootstrap over {seeds} seed(s) and {prompts} prompts"
    if math.isnan(estimate):
        return Interval(math.nan, math.nan, math.nan, covers)
    return percentile_interval(estimate, values, covers)


def per_seed_value_at(kl: np.ndarray, gold: np.ndarray, budget: float) -> list[float]:
    """Each seed's gold reward at KL = ``budget``, read off that seed's own sweep curve.

    ``kl`` and ``gold`` are ``[points, seeds, prompts]`` arrays as for :func:`kl_matched`; a seed's
    curve joins its per-setting means over prompts. NaN for a seed whose curve does not reach the budget.
    """
    kl, gold = np.asarray(kl, dtype=float), np.asarray(gold, dtype=float)
    kl_means, gold_means = kl.mean(axis=2), gold.mean(axis=2)
    return [value_at(kl_means[:, s], gold_means[:, s], budget) for s in range(kl.shape[1])]


def kl_matched_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], budget: float,
                          test: str = "paired t-test") -> PairedTest:
    """Sweep ``a`` minus sweep ``b`` in gold reward at KL = ``budget``, paired across seeds.

    ``a`` and ``b`` are (kl, gold) pairs of ``[points, seeds, prompts]`` arrays on the same seeds.
    Per seed, each sweep's own curve is interpolated at the budget (:func:`per_seed_value_at`); the
    seeds where both curves reach it are paired, and the difference gets its Student-t interval and
    a two-sided paired t-test, the seed being the unit that redraws the pipeline (as for every
    other gold test). With fewer than two such seeds the p-value is NaN.
    """
    first, second = per_seed_value_at(*a, budget), per_seed_value_at(*b, budget)
    keep = [i for i, (x, y) in enumerate(zip(first, second)) if not (math.isnan(x) or math.isnan(y))]
    return paired_t_test([first[i] for i in keep], [second[i] for i in keep], test)
