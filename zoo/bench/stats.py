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
