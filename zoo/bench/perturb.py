"""The perturbation run: the same protocol on shifted seeds, and which headline verdicts survive it.

``zoo bench CONFIG --perturb`` runs the config again with every reported and tuning seed shifted
by ``perturbation.seed_offset`` (a fresh draw of every pipeline, selection included), into
OUTPUT/perturbed, then records that run's verdicts in the main result (``perturbation`` in
results.json). results.md then marks, for every significant verdict of the headline (a row
significantly above or below the SFT model, a row below the best, a claim reproduced or
contradicted), whether the shifted seeds give the same verdict; only the verdicts that survive
are called findings (results.md's section: :mod:`zoo.bench.report.findings`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from zoo.bench.claims import claim_verdicts
from zoo.bench.config import BenchConfig, tuning_seeds


def shifted(config: BenchConfig) -> BenchConfig:
    """``config`` with every reported and tuning seed moved by ``perturbation.seed_offset``."""
    offset = config.perturbation.seed_offset
    return dataclasses.replace(config, seeds=[s + offset for s in config.seeds],
                               tuning_seeds=[s + offset for s in tuning_seeds(config)])


def verdicts(results: dict[str, Any]) -> dict[str, str]:
    """Every headline verdict of a result, by what it is about (a word each, sign included)."""
    out = {}
    for c in results["contenders"]:
        if c["baseline"]:
            continue
        vs = c["vs_sft"]
        d = vs.get("difference_mean")
        out[f"{c['label']} vs SFT"] = (("above" if d > 0 else "below") if vs.get("significant") and d is not None
                                       else "n.s.")
        if c.get("vs_best"):
            out[f"{c['label']} vs best"] = c["vs_best"]["verdict"]
    for claim, verdict in zip(results["config"].get("claims") or [], claim_verdicts(results)):
        out[f"claim: {claim['text']}"] = verdict.split(" (")[0]
    return out


def perturbation_record(perturbed: dict[str, Any]) -> dict[str, Any]:
    """What the main result keeps of the perturbation run."""
    return {"seeds": perturbed["seeds"], "protocol_hash": perturbed.get("protocol_hash"),
            "verdicts": verdicts(perturbed)}


SIGNIFICANT = ("above", "below", "below best", "equivalent", "reproduced", "contradicted")


def survival(results: dict[str, Any]) -> dict[str, bool]:
    """For each significant headline verdict: does the perturbation run give the same one?"""
    record = results.get("perturbation")
    if not record:
        return {}
    mine = verdicts(results)
    return {key: record["verdicts"].get(key) == word for key, word in mine.items() if word in SIGNIFICANT}
