"""Means, 95% confidence intervals and paired tests for benchmark results.

Intervals are Student-t intervals, mean ± t_{0.975, n−1} · s/√n, with s the sample standard
deviation (n − 1 in the denominator). A contender is compared with the SFT baseline by a paired
t-test on per-seed means (the same seed draws both evaluations), or, with a single seed, on
per-prompt mean differences (the same prompts are evaluated for both).
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


# ----- many comparisons, two-level intervals, failures, KL-matched values ------------------------------


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


def tied_with_best(means: dict[str, float], tests: Sequence[PairwiseTest]) -> tuple[str | None, set[str]]:
    """The contender with the highest mean, and the set of those not significantly worse than it.

    The best is in its own set; a contender with no valid test against the best (too few paired
    keys) counts as tied: nothing shows it is worse.
    """
    finite = {name: value for name, value in means.items() if value is not None and not math.isnan(value)}
    if not finite:
        return None, set()
    best = max(finite, key=lambda name: finite[name])
    tied = {best}
    for t in tests:
        if best in (t.a, t.b):
            other = t.b if t.a == best else t.a
            if other in finite and not t.significant:
                tied.add(other)
    return best, tied


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (possibly asymmetric) interval and what it covers."""

    mean: float
    low: float
    high: float
    covers: str

    def as_dict(self) -> dict[str, float | str]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "covers": self.covers}


def hierarchical_bootstrap_means(groups: Sequence[Sequence[float]], replicates: int = 2000, seed: int = 0
                                 ) -> np.ndarray:
    """Two-level bootstrap replicates of the grand mean of ``groups`` (one group per seed).

    Each replicate draws len(groups) groups with replacement, then, inside each drawn group, as
    many values as it holds with replacement, and averages the group means. So the spread covers
    both levels: which pipeline realisation (seed) was drawn, and which prompts were evaluated.
    Every group must hold the same number of values (the same prompts).
    """
    data = np.asarray(groups, dtype=float)
    if data.ndim != 2 or data.size == 0:
        raise ValueError("hierarchical bootstrap needs a non-empty [seeds, values] array")
    rng = np.random.default_rng(seed)
    seeds, values = data.shape
    chosen_groups = rng.integers(0, seeds, size=(replicates, seeds))
    chosen_values = rng.integers(0, values, size=(replicates, seeds, values))
    drawn = data[chosen_groups[:, :, None], chosen_values]
    return drawn.mean(axis=(1, 2))


def percentile_interval(point: float, replicates: np.ndarray, covers: str, confidence: float = CONFIDENCE
                        ) -> Interval:
    tail = (1 - confidence) / 2 * 100
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return Interval(point, math.nan, math.nan, covers)
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(point, float(low), float(high), covers)


def hierarchical_interval(groups: Sequence[Sequence[float]], replicates: int = 2000, seed: int = 0) -> Interval:
    """The grand mean of ``groups`` with its 95% percentile interval from :func:`hierarchical_bootstrap_means`."""
    data = np.asarray(groups, dtype=float)
    covers = (f"hierarchical bootstrap: {data.shape[0]} seed(s), then {data.shape[1]} prompts within each"
              if data.shape[0] > 1 else f"bootstrap over {data.shape[1]} prompts (one seed)")
    return percentile_interval(float(data.mean()), hierarchical_bootstrap_means(data, replicates, seed), covers)


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
