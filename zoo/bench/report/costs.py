"""The cost sections of results.md: each trained run's budget (steps, prompts drawn, samples, tokens,
FLOPs; which one is matched, :mod:`zoo.bench.budget`) and each contender's training and evaluation
time in this run."""
from __future__ import annotations

from typing import Any

from zoo.bench.report.cells import finite as _finite
from zoo.bench.report.cells import num as _num
from zoo.bench.report.cells import table as _table


def _trained_parameters(results: dict[str, Any]) -> int | None:
    """The policy's parameter count from the first training record that has it (a pretrained start has no
    init stage)."""
    counts = ((c["summary"].get("parameters") or {}).get("mean") for c in results["contenders"])
    return next((int(n) for n in counts if _finite(n)), None)


#: What each matched quantity is called in the tables.
MATCHED_WORDS = {"flops": "training FLOPs", "samples": "samples generated while training",
                 "steps": "optimiser steps"}


def _batch(results: dict[str, Any], contender: dict[str, Any]) -> Any:
    return {**(results["config"].get("alignment") or {}).get("train", {}), **(contender.get("train") or {})}.get(
        "batch_size")


def budget_lines(results: dict[str, Any]) -> list[str]:
    """Per trained contender: the fitted steps, steps × batch size, samples and tokens generated,
    tokens trained and FLOPs, with the matched quantity named and its spread across rows."""
    params = (results["shared_stages"].get("init") or {}).get("parameters") or _trained_parameters(results)
    budget = results.get("budget") or {"matched": "steps", "rows": {}}
    matched = budget["matched"]
    column = {"flops": "flops", "samples": "samples_generated", "steps": "steps"}[matched]
    body, spent = [], []
    for c in results["contenders"]:
        s = c["summary"]
        steps, tokens = s["steps"]["mean"], s["tokens"]["mean"]
        if not _finite(steps):
            continue
        samples, generated, flops = s["samples_generated"]["mean"], s["tokens_generated"]["mean"], s["flops"]["mean"]
        batch = _batch(results, c)
        drawn = steps * batch if isinstance(batch, int) else None
        fitted = (budget.get("rows") or {}).get(c["label"])
        steps_text = _num(steps, 0) + (" (capped)" if fitted and fitted.get("capped") else "")
        spent.append(s[column]["mean"])
        body.append([c["label"], steps_text, _num(drawn, 0), _num(samples, 0), _num(generated, 0), _num(tokens, 0),
                     "–" if not _finite(flops) else f"{flops:.2e}"])
    if not body:
        return []
    tuning = {g: len(sel["trials"]) for g, sel in (results.get("selections") or {}).items()}
    note = (" Tuning multiplies a selected run's cost by its number of trials on the tuning seed(s) (see the "
            "selection table)." if tuning else "")
    n = f"{params:,}" if params else "unrecorded"
    finite = [v for v in spent if _finite(v) and v > 0]
    spread = f" Across the rows it spans {max(finite) / min(finite):.2f}× (largest over smallest)." if finite else ""
    if matched == "steps":
        how = (f"Matched: {MATCHED_WORDS[matched]} ({budget.get('target')} each); what a step costs differs, so the "
               f"other columns are not matched.")
    else:
        target = budget.get("target")
        shown = f"{target:.3g}" if isinstance(target, (int, float)) else "–"
        how = (f"Matched: {MATCHED_WORDS[matched]}, target {shown} per run; each run's optimiser steps were fitted to "
               f"it from a {budget.get('calibration_steps')}-step calibration run on the first seed (its cost per "
               f"step), so the other columns follow from it.")
    return (["## Training budget per run (mean per seed)", "",
             f"{how}{spread} Steps × batch size counts the prompts or pairs drawn when each batch gives one "
             f"optimiser step; an online run that takes several steps per rollout (PPO's epochs × minibatches, "
             f"the GRPO family's policy updates × minibatches) draws that many times fewer prompts, which the "
             f"samples generated count exactly. FLOPs ≈ 6·N per trained token (forward "
             f"and backward) + 2·N per generated token, N = {n} parameters; the reference and reward-model passes "
             f"are not counted.{note}", ""]
            + _table(["run", "optimiser steps", "steps × batch size", "samples generated", "tokens generated",
                      "tokens trained", "FLOPs"], body) + [""])


def _minutes(seconds: Any) -> str:
    return "–" if not _finite(seconds) else f"{seconds / 60:.1f}"


def time_lines(results: dict[str, Any]) -> list[str]:
    """What this run cost: each contender's training and evaluation time, and every stage's wall and CPU time."""
    body = [[c["label"], _minutes((c["summary"].get("train_seconds") or {}).get("mean")),
             _minutes((c["summary"].get("eval_seconds") or {}).get("mean"))] for c in results["contenders"]]
    if not any(cell != "–" for row in body for cell in row[1:]):
        return []
    kinds = results.get("stage_seconds") or {}
    stages = ", ".join(f"{kind} {_minutes(k['wall'])} ({_minutes(k['cpu'])} CPU)" for kind, k in kinds.items())
    total = (f" Every stage, built in this run or read from its cache: {_minutes(results.get('compute_seconds'))} "
             f"min wall, {_minutes(results.get('compute_cpu_seconds'))} min CPU time ({stages})."
             if results.get("compute_seconds") else "")
    return (["## Time per run (this run, minutes of wall clock, mean per seed)", "",
             "Measured as the stages were built, so they vary with the machine and its load; training is the "
             f"optimiser loop (with any sampling an online method does), evaluation is every measure above.{total}",
             ""] + _table(["run", "training", "evaluation"], body) + [""])
