"""The findings section of results.md: the config's declared claims, tested as one family."""
from __future__ import annotations

import math
from typing import Any

from zoo.bench.cells import table as _table


def _claim_pair(results: dict[str, Any], better: str, worse: str) -> tuple[float, float] | str:
    """``better − worse`` and its unadjusted p-value, or why the claim cannot be tested."""
    rows = {c["label"]: c for c in results["contenders"]}
    for label in (better, worse):
        if rows[label]["failures"] == len(results["seeds"]):
            return f"cannot tell: every seed of {label!r} collapsed"
    for pair in results["comparisons"]["pairs"]:
        if {pair["a"], pair["b"]} == {better, worse}:
            return pair["difference_mean"] * (1 if pair["a"] == better else -1), pair["p_value"]
    return "cannot tell: no test"


def claim_verdicts(results: dict[str, Any]) -> list[str]:
    """"reproduced", "contradicted" or "not significant" for each configured claim ``better`` > ``worse``.

    The claims are hypotheses declared in the config before the run, so they form their own family:
    the pairwise test's p-values of the m testable claims are Holm-corrected over those m (not over
    every pair of the exploratory matrix), at α = 0.05, two-sided.
    """
    from zoo.bench.stats import holm

    tested = [_claim_pair(results, c["better"], c["worse"]) for c in results["config"].get("claims") or []]
    raw = [t[1] if isinstance(t, tuple) else math.nan for t in tested]
    adjusted = holm(raw)
    out = []
    for test, p in zip(tested, adjusted):
        if isinstance(test, str):
            out.append(test)
        elif math.isnan(test[0]) or math.isnan(p):
            out.append("cannot tell: too few seeds for a test")
        elif p >= 0.05:
            out.append(f"not significant ({test[0]:+.2f}, Holm-adjusted p = {p:.2f})")
        else:
            shown = "< 0.001" if p < 0.001 else f"= {p:.3f}"
            out.append(f"{'reproduced' if test[0] > 0 else 'contradicted'} ({test[0]:+.2f}, Holm-adjusted p {shown})")
    return out


def findings_lines(results: dict[str, Any]) -> list[str]:
    claims = results["config"].get("claims") or []
    if not claims:
        return []
    lines = ["## Findings: published shapes, tested", "",
             f"Each claim was declared in the config before the run and is tested with the pairwise test below; "
             f"the {len(claims)} claims are one family, Holm-corrected among themselves (the matrix of every pair is "
             "exploratory and corrected over all its pairs). Reproduced: significantly in the claimed direction; "
             "contradicted: significantly the other way; not significant: this run cannot tell. No winner is "
             "presumed.", ""]
    body = [[claim["text"], f"{claim['better']} > {claim['worse']}", verdict_text]
            for claim, verdict_text in zip(claims, claim_verdicts(results))]
    return lines + _table(["claim", "rows", "verdict"], body) + [""]
