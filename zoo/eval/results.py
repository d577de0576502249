"""Metric values with their uncertainty, group aggregation, and the result files.

Standard errors follow lm-evaluation-harness so numbers can be compared across tools:

* the mean of ``n`` per-item scores ``x_i`` has ``stderr = s / √n`` with the sample standard
  deviation ``s = √(Σ (x_i − x̄)² / (n − 1))`` (undefined, reported as None, for ``n < 2``);
* a *micro* average over groups (every item weighs the same) is the mean of the concatenated
  items, and its stderr is the one above computed on the concatenation;
* a *macro* average (every group weighs the same) of ``k`` group means ``m_j`` with stderrs
  ``se_j`` has ``stderr = √(Σ se_j²) / k`` (independent groups).

95% confidence intervals use the normal approximation ``mean ± 1.96 · stderr``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Z95 = 1.959963984540054


@dataclass
class Metric:
    """One reported number: ``value ± stderr`` over ``n`` items (stderr None when undefined)."""

    value: float
    stderr: float | None = None
    n: int | None = None

    @property
    def ci95(self) -> tuple[float, float] | None:
        if self.stderr is None:
            return None
        return self.value - Z95 * self.stderr, self.value + Z95 * self.stderr

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _json_float(self.value), "stderr": _json_float(self.stderr)}
        if self.n is not None:
            out["n"] = self.n
        ci = self.ci95
        if ci is not None:
            out["ci95"] = [_json_float(ci[0]), _json_float(ci[1])]
        return out


def _json_float(value: float | None) -> float | None:
    # JSON has no NaN/inf; an undefined number is written as null.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def mean_metric(values: Sequence[float]) -> Metric:
    """The mean of per-item scores and its standard error (see the module docstring)."""
    n = len(values)
    if n == 0:
        return Metric(math.nan, None, 0)
    mean = math.fsum(values) / n
    if n < 2:
        return Metric(mean, None, n)
    variance = math.fsum((x - mean) ** 2 for x in values) / (n - 1)
    return Metric(mean, math.sqrt(variance / n), n)


def ratio_metric(numerators: Sequence[float], denominators: Sequence[float]) -> Metric:
    """``Σ a_i / Σ b_i`` (e.g. a per-token mean over sequences of different lengths) and its
    standard error, ``se² = n / (n − 1) · Σ (a_i − r b_i)² / (Σ b_i)²`` (the ratio estimator's
    linearisation, treating the ``n`` sequences as the independent units)."""
    n = len(numerators)
    total = math.fsum(denominators)
    if n == 0 or total == 0:
        return Metric(math.nan, None, n)
    ratio = math.fsum(numerators) / total
    if n < 2:
        return Metric(ratio, None, n)
    residuals = math.fsum((a - ratio * b) ** 2 for a, b in zip(numerators, denominators))
    return Metric(ratio, math.sqrt(n / (n - 1) * residuals) / total, n)


def macro_metric(groups: Sequence[Metric]) -> Metric:
    """The unweighted mean of group means, ``stderr = √(Σ se_j²) / k``."""
    k = len(groups)
    if k == 0:
        return Metric(math.nan, None, 0)
    value = math.fsum(g.value for g in groups) / k
    if any(g.stderr is None for g in groups):
        stderr = None
    else:
        stderr = math.sqrt(math.fsum(g.stderr ** 2 for g in groups)) / k
    return Metric(value, stderr, sum(g.n or 0 for g in groups))


def grouped_metrics(scores: Mapping[str, Sequence[float]], groups: Mapping[str, Iterable[str]],
                    name: str = "acc") -> dict[str, Metric]:
    """Per-member, per-group and overall micro and macro averages of per-item scores.

    ``scores`` maps a member (an MMLU subject) to its items' scores; ``groups`` maps a group (a
    category) to its members. Members without items are left out of every average. Returns
    ``NAME`` and ``NAME_macro`` (overall), ``GROUP/NAME`` and ``GROUP/NAME_macro`` per group,
    and ``MEMBER/NAME`` per member.
    """
    members = {m: mean_metric(list(v)) for m, v in scores.items() if len(v)}
    out: dict[str, Metric] = {}
    everything = [x for m in members for x in scores[m]]
    out[name] = mean_metric(everything)
    out[f"{name}_macro"] = macro_metric(list(members.values()))
    for group, group_members in groups.items():
        present = [m for m in group_members if m in members]
        if not present:
            continue
        out[f"{group}/{name}"] = mean_metric([x for m in present for x in scores[m]])
        out[f"{group}/{name}_macro"] = macro_metric([members[m] for m in present])
    for member, metric in members.items():
        out[f"{member}/{name}"] = metric
    return out


@dataclass
class SuiteResult:
    """What one suite run produces.

    ``metrics``: metric name → :class:`Metric`; ``samples``: one JSON-able record per scored item
    (id, per-choice log-likelihoods, prediction, gold, ...); ``settings``: what the numbers depend
    on (data source, number of items, few-shot count, suite options).
    """

    metrics: dict[str, Metric]
    samples: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, Any]]:
        return {name: metric.to_dict() for name, metric in self.metrics.items()}


def write_results(path: str | Path, results: Mapping[str, SuiteResult], header: Mapping[str, Any]) -> Path:
    """``results.json``: the header (model, settings) and, per suite, its metrics and settings."""
    path = Path(path)
    payload = dict(header)
    payload["results"] = {name: result.summary() for name, result in results.items()}
    payload["suites"] = {name: result.settings for name, result in results.items()}
    path.write_text(json.dumps(payload, indent=2, allow_nan=False, default=str) + "\n", encoding="utf-8")
    return path


def write_samples(path: str | Path, samples: Iterable[Mapping[str, Any]]) -> Path:
    """One JSON object per line (non-finite floats written as null)."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(_finite(sample), ensure_ascii=False, allow_nan=False) + "\n")
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
