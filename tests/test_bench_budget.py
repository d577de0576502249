"""Matched budgets: each contender's steps fitted to the matched quantity from a calibration run."""
from __future__ import annotations

import pytest

from zoo import ConfigError
from zoo.bench.budget import fit_steps, training_flops
from zoo.bench.loading import load_bench_config

BASE = {"task": {"name": "fables"}, "alignment": {"train": {"max_steps": 10}},
        "runs": [{"label": "SFT"}, {"label": "DPO", "algorithm": "dpo"}]}


def smoke_with(changes):
    return {**BASE, **changes}


def record(steps, tokens, generated=0, samples=0, parameters=1000):
    return {"steps": steps, "tokens": tokens, "tokens_generated": generated, "samples_generated": samples,
            "parameters": parameters}


def test_training_flops_count_trained_and_generated_tokens():
    """N = 1000: 6 · 1000 · 50 + 2 · 1000 · 20 = 340,000."""
    assert training_flops(record(2, 50, generated=20)) == 340_000
    assert training_flops({"steps": 2}) is None


def test_steps_are_fitted_to_the_median_cost_of_the_default_steps():
    """Costs per step (2-step calibrations): A 6000·10/2 = 30,000; B 6000·40/2 + 2000·40/2 = 160,000;
    C 6000·100/2 = 300,000. At 100 default steps the median cost is B's, 1.6e7, so A gets
    1.6e7/3e4 = 533.3 → 533 steps, B 100, C 1.6e7/3e5 = 53.3 → 53; A's FLOPs 533 · 3e4 = 1.599e7 and
    C's 53 · 3e5 = 1.59e7: within 1% of the target."""
    calibrations = {"A": record(2, 10), "B": record(2, 40, generated=40, samples=8), "C": record(2, 100)}
    fitted = fit_steps(calibrations, "flops", default_steps=100, max_steps=2000)
    assert fitted["target"] == pytest.approx(1.6e7)
    assert {k: v["steps"] for k, v in fitted["contenders"].items()} == {"A": 533, "B": 100, "C": 53}
    assert fitted["contenders"]["A"]["per_step"] == pytest.approx(30_000)
    capped = fit_steps(calibrations, "flops", default_steps=100, max_steps=200)
    assert capped["contenders"]["A"] == {"per_step": pytest.approx(30_000), "steps": 200, "capped": True}
    declared = fit_steps(calibrations, "flops", default_steps=100, max_steps=2000, target=3e5)
    assert {k: v["steps"] for k, v in declared["contenders"].items()} == {"A": 10, "B": 2, "C": 1}

    assert fit_steps({}, "flops", default_steps=100, max_steps=2000) == {
        "matched": "flops", "target": None, "contenders": {}}  # nothing trains: nothing to fit, no error


def test_samples_are_matched_only_where_samples_are_generated():
    """B samples 8 per 2 steps (4 a step); D 2 a step; target 4 · 100 = 400 (median of 400 and 200 is 300)."""
    fitted = fit_steps({"B": record(2, 40, samples=8), "D": record(2, 40, samples=4)}, "samples", 100, 2000)
    assert fitted["target"] == 300 and {k: v["steps"] for k, v in fitted["contenders"].items()} == {"B": 75, "D": 150}
    with pytest.raises(ValueError, match="recorded no samples"):
        fit_steps({"A": record(2, 10)}, "samples", 100, 2000)


@pytest.mark.parametrize("overrides, message", [
    ({"budget": {"matched": "samples"}}, r"runs\['DPO'\]: budget.matched = 'samples' matches samples generated"),
    ({"budget": {"matched": "steps", "target": 5.0}}, r"budget.target is only read with budget.matched: flops"),
    ({"budget": {"calibration_steps": 0}}, r"budget.calibration_steps and budget.max_steps must be >= 1"),
    ({"alignment": {"train": {}}}, r"with no budget.target: the target is the median run's cost"),
    ({"runs": [{"label": "SFT"}, {"label": "P", "algorithm": "ppo", "train": {"max_steps": 5}}]},
     r"runs\['P'\].train.max_steps: with budget.matched = 'flops' the harness fits"),
])
def test_budget_settings_that_cannot_work_are_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_bench_config(raw=smoke_with(overrides))
