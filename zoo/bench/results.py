"""From evaluation records to the numbers the report shows: per-seed metrics, then across seeds.

Per seed, each contender gets the means of its samples' gold reward, proxy score, KL and length,
its win rate against the SFT model's samples of the same seed, and its model-level accuracies
and training costs. Across seeds every metric becomes a mean with a 95% Student-t interval, and
the gold reward is compared with the SFT baseline's by a paired t-test (on per-seed means, or on
per-prompt means when there is a single seed).
"""
from __future__ import annotations

import importlib.metadata as metadata
import platform
from statistics import fmean as mean
from typing import Any

import torch

from zoo.bench.runner import BenchRun
from zoo.bench.stats import mean_ci, paired_t_test, per_prompt_means, win_rate

#: Per-seed metrics summarised across seeds, in table order.
METRICS = ("gold", "gold_vs_sft", "win_rate", "kl", "proxy", "preference_accuracy", "probe_accuracy",
           "length", "train_seconds", "tokens_per_second", "peak_memory_mib")
PACKAGES = ("alignment-zoo", "torch", "transformers", "lightning", "datasets", "peft", "numpy", "scipy")


def baseline_label(run: BenchRun) -> str:
    """The SFT baseline: the first contender that neither trains nor decodes best-of-n."""
    return next(c.label for c in run.contenders if not c.trains and c.spec.best_of_n is None)


def seed_metrics(record: dict[str, Any], baseline: dict[str, Any], samples_per_prompt: int) -> dict[str, Any]:
    n = len(record["gold"])
    training = record.get("training") or {}
    return {
        "gold": mean(record["gold"]),
        #: 95% interval of the mean gold reward across prompts (samples of one prompt are not independent).
        "gold_ci95_over_prompts": mean_ci(per_prompt_means(record["gold"], samples_per_prompt)).half_width,
        "gold_vs_sft": mean(record["gold"]) - mean(baseline["gold"]),
        "win_rate": win_rate(record["gold"], baseline["gold"]),
        "kl": mean(record["kl"]), "proxy": mean(record["proxy"]), "length": mean(record["length"]),
        "preference_accuracy": record.get("preference_accuracy"), "probe_accuracy": record.get("probe_accuracy"),
        "train_seconds": training.get("train_seconds"), "tokens_per_second": training.get("tokens_per_second"),
        "peak_memory_mib": training.get("peak_memory_mib"), "steps": training.get("steps"),
        "eval_seconds": record.get("eval_seconds"), "samples": n,
        "suites": {suite: {name: value.get("value") for name, value in metrics.items() if isinstance(value, dict)}
                   for suite, metrics in (record.get("suites") or {}).items()},
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def summarise(run: BenchRun) -> dict[str, Any]:
    """Everything results.json holds: config, versions, shared stages, per-seed and summary metrics."""
    base = baseline_label(run)
    seeds = list(run.config.seeds)
    samples_per_prompt = run.config.evaluation.samples_per_prompt
    if len(seeds) > 1:
        test_name = f"paired t-test across {len(seeds)} seeds (per-seed mean gold reward), two-sided, α = 0.05"
    else:
        test_name = "paired t-test across prompts (per-prompt mean gold reward, one seed), two-sided, α = 0.05"
    contenders = []
    for contender in run.contenders:
        records = run.records[contender.label]
        per_seed = {seed: seed_metrics(records[seed], run.records[base][seed], samples_per_prompt) for seed in seeds}
        summary = {metric: mean_ci([per_seed[s][metric] for s in seeds]).as_dict() for metric in METRICS}
        if len(seeds) > 1:
            test = paired_t_test([per_seed[s]["gold"] for s in seeds],
                                 [per_seed[s]["gold"] - per_seed[s]["gold_vs_sft"] for s in seeds], test_name)
        else:
            # One seed has no spread across seeds: the intervals come from the prompts instead.
            seed = seeds[0]
            gold = per_prompt_means(records[seed]["gold"], samples_per_prompt)
            test = paired_t_test(gold, per_prompt_means(run.records[base][seed]["gold"], samples_per_prompt),
                                 test_name)
            summary["gold"] = mean_ci(gold).as_dict()
            summary["gold_vs_sft"] = test.difference.as_dict()
        spec = contender.spec
        contenders.append({
            "label": contender.label, "group": contender.group, "algorithm": spec.algorithm,
            "algorithm_args": spec.algorithm_args, "train": spec.train, "reward": spec.reward,
            "best_of_n": spec.best_of_n, "sweep_key": contender.sweep_key, "sweep_value": contender.sweep_value,
            "baseline": contender.label == base, "seeds": {str(s): per_seed[s] for s in seeds},
            "summary": summary, "vs_sft": test.as_dict(),
            "examples": records[seeds[0]].get("examples", []),
        })
    return {
        "config": run.config.to_dict(), "versions": versions(), "baseline": base, "seeds": seeds,
        "significance_test": test_name, "shared_stages": run.shared, "contenders": contenders,
        "stages": [{"kind": kind, "fingerprint": key, "status": status} for kind, key, status in run.events],
        "wall_seconds": run.seconds, "cpu_seconds": run.cpu_seconds, "compute_seconds": compute_seconds(run),
    }


def compute_seconds(run: BenchRun) -> float:
    """Wall time every stage the results rest on took when it was built, cached or not."""
    total = sum(float(record.get("stage_seconds", 0.0)) for record in run.shared.values())
    for seeds in run.records.values():
        for record in seeds.values():
            total += float(record.get("stage_seconds", 0.0))
            total += float((record.get("training") or {}).get("stage_seconds", 0.0))
    return total
