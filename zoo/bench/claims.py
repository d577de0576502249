"""The config's declared claims, tested as one family (:func:`claim_verdicts`), and the protocol
history (earlier declarations of the same config and what they gave, never overwritten).

results.md's findings and history sections are :mod:`zoo.bench.report.findings`."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _claim_pair(results: dict[str, Any], better: str, worse: str) -> tuple[float, float] | str:
    """``better − worse`` in gold reward and its unadjusted p-value, or why the claim cannot be tested."""
    rows = {c["label"]: c for c in results["contenders"]}
    for label in (better, worse):
        if rows[label]["failures"] == len(results["seeds"]):
            return f"cannot tell: every seed of {label!r} collapsed"
    for pair in results["comparisons"]["pairs"]:
        if {pair["a"], pair["b"]} == {better, worse}:
            return pair["difference_mean"] * (1 if pair["a"] == better else -1), pair["p_value"]
    return "cannot tell: no test"


def _collapse_pair(results: dict[str, Any], better: str, worse: str) -> tuple[float, float]:
    """``better`` collapses less than ``worse``: the difference of their collapse rates (worse − better,
    positive in the claimed direction) and McNemar's exact p on the seeds where exactly one collapsed."""
    from zoo.bench.stats import mcnemar_exact

    rows = {c["label"]: c for c in results["contenders"]}
    seeds = [str(s) for s in results["seeds"]]
    a = {s for s in seeds if rows[better]["seeds"][s]["failed"]}
    b = {s for s in seeds if rows[worse]["seeds"][s]["failed"]}
    return (len(b) - len(a)) / len(seeds), mcnemar_exact(len(a - b), len(b - a))


def claim_verdicts(results: dict[str, Any]) -> list[str]:
    """"reproduced", "contradicted" or "not significant" for each configured claim ``better`` > ``worse``.

    The claims are hypotheses declared in the config before the run, so they form their own family:
    the p-values of the m testable claims (the pairwise gold test, or McNemar's test for a collapse
    claim) are Holm-corrected over those m (not over every pair of the exploratory matrix), at
    α = 0.05, two-sided.
    """
    from zoo.bench.stats import holm

    tested = [_collapse_pair(results, c["better"], c["worse"]) if c.get("outcome") == "collapse"
              else _claim_pair(results, c["better"], c["worse"]) for c in results["config"].get("claims") or []]
    raw = [t[1] if isinstance(t, tuple) else math.nan for t in tested]
    adjusted = holm(raw)
    out = []
    for test, p in zip(tested, adjusted):
        if isinstance(test, str):
            out.append(test)
        elif math.isnan(test[0]) or math.isnan(p):
            out.append("cannot tell: too few seeds for a test")
        elif p >= 0.05 or test[0] == 0:
            out.append(f"not significant ({test[0]:+.2f}, Holm-adjusted p = {p:.2f})")
        else:
            shown = "< 0.001" if p < 0.001 else f"= {p:.3f}"
            out.append(f"{'reproduced' if test[0] > 0 else 'contradicted'} ({test[0]:+.2f}, Holm-adjusted p {shown})")
    return out


def claim_rows(claim: dict[str, Any]) -> str:
    if claim.get("outcome") == "collapse":
        return f"{claim['better']} collapses less than {claim['worse']}"
    return f"{claim['better']} > {claim['worse']}"


# ----- the protocol history -----------------------------------------------------------------------


def declaration(results: dict[str, Any]) -> dict[str, Any]:
    """This result's declared protocol and its verdicts, as a history entry."""
    claims = results["config"].get("claims") or []
    return {"when": f"results at commit {str(results.get('commit'))[:12]}", "seeds": results["seeds"],
            "protocol_hash": results.get("protocol_hash"),
            "claims": [{"text": c["text"], "rows": claim_rows(c), "verdict": v}
                       for c, v in zip(claims, claim_verdicts(results))],
            "change": "the protocol was changed after this run (a later declaration replaced it)"}


def carry_history(results: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """``results`` with the protocol history of the result already in ``output_dir``: kept as it was,
    plus that result's own declaration and verdicts when its protocol differs from this one's.

    A result the report code cannot read (an older format) adds nothing; record its declaration in
    the config's ``history`` instead.
    """
    previous_file = Path(output_dir) / "results.json"
    history: list[dict[str, Any]] = []
    try:
        previous = json.loads(previous_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if previous and previous.get("format") == results.get("format"):
        history = list(previous.get("protocol_history") or [])
        if previous.get("protocol_hash") != results.get("protocol_hash"):
            history.append(declaration(previous))
    return {**results, "protocol_history": history}
