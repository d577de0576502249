"""The sections of results.md about what the run found: the declared claims' verdicts
(:mod:`zoo.bench.claims`), the perturbation run's (:mod:`zoo.bench.perturb`) and the protocol history."""
from __future__ import annotations

from typing import Any

from zoo.bench.claims import claim_rows, claim_verdicts
from zoo.bench.perturb import survival, verdicts
from zoo.bench.report.cells import table as _table


def findings_lines(results: dict[str, Any]) -> list[str]:
    claims = results["config"].get("claims") or []
    if not claims:
        return []
    lines = ["## Findings: published shapes, tested", "",
             f"Each claim was declared in the config before the run (protocol hash {results.get('protocol_hash')}: "
             f"claims, seeds, selection and budgets) and is tested with the pairwise gold test below, or, for a "
             f"collapse claim, McNemar's exact test on the seeds where exactly one of the two rows collapsed (the "
             f"difference shown is then the difference of collapse rates); the {len(claims)} claims are one family, "
             "Holm-corrected among themselves (the matrix of every pair is exploratory and corrected over all its "
             "pairs). Reproduced: significantly in the claimed direction; contradicted: significantly the other way; "
             "not significant: this run cannot tell. No winner is presumed.", ""]
    survives = survival(results)
    body = []
    for claim, verdict_text in zip(claims, claim_verdicts(results)):
        row = [claim["text"], claim_rows(claim), verdict_text]
        if survives:
            ok = survives.get(f"claim: {claim['text']}")
            row.append("–" if ok is None else "yes" if ok else "NO")
        body.append(row)
    header = ["claim", "rows", "verdict"] + (["survives shifted seeds"] if survives else [])
    return lines + _table(header, body) + [""]


def perturbation_lines(results: dict[str, Any]) -> list[str]:
    record = results.get("perturbation")
    if not record:
        return []
    survives = survival(results)
    mine = verdicts(results)
    body = [[key, mine[key], record["verdicts"].get(key, "–"), "yes" if ok else "NO"] for key, ok in survives.items()]
    kept = sum(survives.values())
    lines = ["## Perturbation: the verdicts on shifted seeds", "",
             f"The same protocol run again on seeds {record['seeds']} (every seed shifted, tuning seeds too). Of the "
             f"{len(survives)} significant verdicts above, {kept} are the same on the shifted seeds; only those are "
             f"findings. A verdict marked NO is not one.", ""]
    return lines + (_table(["verdict on", "this run", "shifted seeds", "survives"], body) if body
                    else ["No verdict above is significant."]) + [""]


def history_lines(results: dict[str, Any]) -> list[str]:
    """Earlier declarations of this config (its ``history`` key, then those carried from earlier results)."""
    entries = [*(results["config"].get("history") or []), *(results.get("protocol_history") or [])]
    if not entries:
        return []
    lines = ["## Protocol history: earlier declarations and what they gave", "",
             "The claims above are the current declaration. Earlier ones, with the verdicts their own run gave, are "
             "kept here and never overwritten, so a claim re-targeted after a run can be read as such.", ""]
    for entry in entries:
        lines += [f"**{entry['when']}**, seeds {entry['seeds']}. {entry['change']}", ""]
        lines += _table(["claim", "rows", "verdict then"],
                        [[c["text"], c["rows"], c["verdict"]] for c in entry["claims"]]) + [""]
    return lines
