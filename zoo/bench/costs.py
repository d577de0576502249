"""The cost sections of results.md: each trained run's budget (steps, samples, tokens, FLOPs) and
each contender's training and evaluation time in this run."""
from __future__ import annotations

from typing import Any

from zoo.bench.cells import finite as _finite
from zoo.bench.cells import num as _num
from zoo.bench.cells import table as _table


def _trained_parameters(results: dict[str, Any]) -> int | None:
    """The policy's parameter count from the first training record that has it (a pretrained start has no
    init stage)."""
    counts = ((c["summary"].get("parameters") or {}).get("mean") for c in results["contenders"])
    return next((int(n) for n in counts if _finite(n)), None)


def budget_lines(results: dict[str, Any]) -> list[str]:
    """Steps, samples and tokens generated, tokens trained and estimated FLOPs per trained contender."""
    params = (results["shared_stages"].get("init") or {}).get("parameters") or _trained_parameters(results)
    body = []
    for c in results["contenders"]:
        s = c["summary"]
        steps, tokens = s["steps"]["mean"], s["tokens"]["mean"]
        if not _finite(steps):
            continue
        samples, generated = s["samples_generated"]["mean"], s["tokens_generated"]["mean"]
        flops = None
        if params and _finite(tokens):
            flops = 6 * params * tokens + 2 * params * (generated if _finite(generated) else 0)
        body.append([c["label"], _num(steps, 0), _num(samples, 0), _num(generated, 0), _num(tokens, 0),
                     "–" if flops is None else f"{flops:.2e}"])
    if not body:
        return []
    tuning = {g: len(sel["trials"]) for g, sel in (results.get("selections") or {}).items()}
    note = (" Tuning multiplies a selected run's cost by its number of trials on the tuning seed(s) (see the "
            "selection table)." if tuning else "")
    n = f"{params:,}" if params else "unrecorded"
    return (["## Training budget per run (mean per seed)", "",
             f"Each run's step budget is set in the config (an equal budget of prompts or pairs can mean more "
             f"optimiser steps for a method that updates several times per batch, such as PPO); what a step "
             f"costs differs. FLOPs ≈ 6·N per trained token "
             f"(forward and backward) + 2·N per generated token, N = {n} parameters; the reference and "
             f"reward-model passes are not counted.{note}", ""]
            + _table(["run", "optimiser steps", "samples generated", "tokens generated", "tokens trained",
                      "FLOPs"], body) + [""])


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
