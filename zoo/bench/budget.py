"""Matched training budgets: each contender's optimiser steps fitted to one declared quantity.

Steps are a poor common currency: a PPO step samples one response per prompt, a GRPO step four,
an RRHF step trains on a whole ranked set. So the config names the quantity that is matched
(``budget.matched``): ``flops`` (the default) or ``samples`` generated while training, or
``steps`` (every contender gets ``alignment.train.max_steps``). For flops and samples each trained
contender is first *calibrated*: trained for ``budget.calibration_steps`` steps on the first
reported seed's pipeline (a cached stage like any other), which measures its cost per step; its
steps are then ``round(target / cost per step)``, clamped to [1, ``budget.max_steps``]. The target
is ``budget.target`` or, when that is None, the median over the trained contenders of the cost of
``alignment.train.max_steps`` steps, so the run costs about what equal steps would.

Training FLOPs ≈ 6·N per trained token (forward and backward) + 2·N per generated token, N the
policy's parameters (with any adapter); the reference and reward-model passes are not counted.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from statistics import median
from typing import Any

#: Quantities a budget can match, and the training-record figure each reads.
MATCHABLE = ("flops", "samples", "steps")


def training_flops(record: dict[str, Any]) -> float | None:
    """6·N·(tokens trained) + 2·N·(tokens generated) for a training record; None if unrecorded."""
    n, tokens = record.get("parameters"), record.get("tokens")
    if n is None or tokens is None:
        return None
    return 6.0 * n * tokens + 2.0 * n * (record.get("tokens_generated") or 0)


def cost(record: dict[str, Any], matched: str) -> float | None:
    """The matched quantity a training record spent."""
    if matched == "flops":
        return training_flops(record)
    if matched == "samples":
        return record.get("samples_generated")
    return record.get("steps")


def spec_key(algorithm: str, algorithm_args: dict[str, Any], train: dict[str, Any], reward: str | None) -> str:
    """What makes two contenders train alike (a selected row and the trial it selected share it)."""
    return json.dumps({"algorithm": algorithm, "algorithm_args": algorithm_args, "train": train, "reward": reward},
                      sort_keys=True, default=str)


def fit_steps(calibrations: dict[str, dict[str, Any]], matched: str, default_steps: int, max_steps: int,
              target: float | None = None) -> dict[str, Any]:
    """Each calibrated contender's steps for the matched target.

    ``calibrations`` maps :func:`spec_key` to a calibration run's training record. Returns the
    target, and per key the cost per step, the fitted steps and whether ``max_steps`` capped them.
    """
    per_step = {}
    for key, record in calibrations.items():
        spent, steps = cost(record, matched), record.get("steps")
        if spent is None or not steps or spent <= 0:
            raise ValueError(f"a calibration run recorded no {matched} (contender {key}); cannot match {matched}")
        per_step[key] = spent / steps
    if not per_step:  # nothing trains (e.g. only the baseline and best-of-n): nothing to fit
        return {"matched": matched, "target": target, "contenders": {}}
    if target is None:
        target = median(value * default_steps for value in per_step.values())
    fitted = {}
    for key, value in per_step.items():
        wanted = max(1, round(target / value))
        fitted[key] = {"per_step": value, "steps": min(wanted, max_steps), "capped": wanted > max_steps}
    return {"matched": matched, "target": target, "contenders": fitted}


def calibrate_all(specs: Iterable[tuple[str, Any]], calibrate: Callable[[Any], dict[str, Any]]
                  ) -> dict[str, dict[str, Any]]:
    """``calibrate(spec)`` once per distinct :func:`spec_key` (``specs`` pairs a key with a spec)."""
    out: dict[str, dict[str, Any]] = {}
    for key, spec in specs:
        if key not in out:
            out[key] = calibrate(spec)
    return out


def ratio(values: Iterable[float | None]) -> float:
    """Largest over smallest of the finite, positive values (NaN with fewer than one)."""
    finite = [v for v in values if v is not None and not math.isnan(v) and v > 0]
    return max(finite) / min(finite) if finite else math.nan
