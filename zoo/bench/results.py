"""From evaluation records to the numbers the report shows.

Per seed, each contender gets the means of its test samples' gold reward, proxy score, KL and
length, its win rate against the SFT model's samples of the same seed, its model-level
accuracies and training costs, and a verdict: collapsed or not (:func:`zoo.bench.stats.is_failure`).
Collapsed seeds are counted (the failure rate) and left out of everything else.

Across seeds: the gold reward gets a two-level (hierarchical) bootstrap interval over seeds and
test prompts; the other metrics a 95% Student-t interval across seeds. Every pair of contenders
is compared by a paired t-test on per-seed mean gold reward (per-prompt means with one seed),
Holm-corrected over all pairs; the best contender and those not significantly worse than it are
marked. Sweeps that are not selected get their gold reward read off the (KL, gold) frontier at
the config's KL budgets.
"""
from __future__ import annotations

import importlib.metadata as metadata
import math
import platform
from statistics import fmean as mean
from statistics import pstdev
from typing import Any

import numpy as np
import torch

from zoo.bench.judges import judge_fields, task_judges
from zoo.bench.runner import BenchRun
from zoo.bench.stats import (hierarchical_interval, is_failure, kl_matched, mean_ci, paired_t_test, pairwise_tests,
                             per_prompt_means, tied_with_best, win_rate)

#: Per-seed metrics summarised across seeds, in table order.
METRICS = ("gold", "gold_vs_sft", "win_rate", "kl", "proxy", "preference_accuracy", "probe_accuracy",
           "heldout_probe_accuracy", "length", "train_seconds", "tokens_per_second", "peak_memory_mib", "steps",
           "tokens", "samples_generated", "tokens_generated", "parameters", "eval_seconds")
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
        "tokens": training.get("tokens"), "samples_generated": training.get("samples_generated"),
        "tokens_generated": training.get("tokens_generated"), "parameters": training.get("parameters"),
        "heldout_probe_accuracy": (mean(record["heldout_probe_correct"]) if record.get("heldout_probe_correct")
                                   else None),
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


def _test_name(seeds: list[int]) -> str:
    if len(seeds) > 1:
        return (f"paired t-test across seeds (per-seed mean gold reward on the test prompts; seeds where either "
                f"run collapsed left out), two-sided, α = 0.05")
    return "paired t-test across test prompts (per-prompt mean gold reward, one seed), two-sided, α = 0.05"


def summarise(run: BenchRun) -> dict[str, Any]:
    """Everything results.json holds: config, versions, provenance, stages, per-seed, summary and comparisons."""
    base = baseline_label(run)
    seeds = list(run.config.seeds)
    k = run.config.evaluation.samples_per_prompt
    failure = run.config.failure
    test_name = _test_name(seeds)
    contenders = []
    per_prompt: dict[str, dict[int, list[float]]] = {}
    for contender in run.contenders:
        records = run.records[contender.label]
        per_seed = {seed: seed_metrics(records[seed], run.records[base][seed], k) for seed in seeds}
        for seed in seeds:
            sft_gold = run.records[base][seed]["gold"]
            per_seed[seed]["failed"] = (contender.label != base and is_failure(
                per_seed[seed]["gold"], per_seed[seed]["kl"], mean(sft_gold), pstdev(sft_gold),
                max_kl=failure.max_kl, max_gold_drop_sd=failure.max_gold_drop_sd))
        kept = [s for s in seeds if not per_seed[s]["failed"]]
        per_prompt[contender.label] = {s: per_prompt_means(records[s]["gold"], k) for s in kept}
        summary = {metric: mean_ci([per_seed[s][metric] for s in kept]).as_dict() for metric in METRICS}
        gold_interval = (hierarchical_interval([per_prompt[contender.label][s] for s in kept]).as_dict() if kept
                         else {"mean": math.nan, "low": math.nan, "high": math.nan, "covers": "every seed collapsed"})
        probe = heldout_probe_intervals(records, run.records[base], kept)
        probe.update(judge_fields(records, run.records[base], kept, k))
        spec = contender.spec
        contenders.append({
            "label": contender.label, "group": contender.group, "algorithm": spec.algorithm,
            "algorithm_args": spec.algorithm_args, "train": spec.train, "reward": spec.reward,
            "best_of_n": spec.best_of_n, "sweep_key": contender.sweep_key, "sweep_value": contender.sweep_value,
            "setting": contender.setting, "selected": contender.label in run.selections,
            "baseline": contender.label == base, "seeds": {str(s): per_seed[s] for s in seeds},
            "summary": summary, "gold_interval": gold_interval, **probe,
            "failures": len(seeds) - len(kept), "failure_rate": (len(seeds) - len(kept)) / len(seeds),
            "examples": records[seeds[0]].get("examples", []),
        })
    comparisons = compare(contenders, per_prompt, seeds, test_name)
    judges = task_judges({"name": run.config.task.name, "args": run.config.task.args})
    for c in contenders:
        c["vs_sft"] = comparisons["vs_sft"].get(c["label"], {"significant": False, "p_value": math.nan})
        c["tied_with_best"] = c["label"] in comparisons["tied_with_best"]
        c["best"] = c["label"] == comparisons["best"]
    return {
        "config": run.config.to_dict(), "versions": versions(), **run.provenance,
        "baseline": base, "seeds": seeds, "seed_scope": run.config.seed_scope,
        "significance_test": test_name, "shared_stages": run.shared,
        "pipelines": {str(seed): stages for seed, stages in run.pipelines.items()},
        "contenders": contenders, "comparisons": comparisons, "selections": run.selections,
        **({"judges": judges} if judges else {}),
        "kl_matched": kl_matched_summary(run, contenders),
        "stages": [{"kind": kind, "fingerprint": key, "status": status} for kind, key, status in run.events],
        "wall_seconds": run.seconds, "cpu_seconds": run.cpu_seconds, "compute_seconds": compute_seconds(run),
        "compute_cpu_seconds": compute_seconds(run, "stage_cpu_seconds"),
        "stage_seconds": stage_seconds_by_kind(run),
    }


def heldout_probe_intervals(records: dict[int, dict[str, Any]], baseline: dict[int, dict[str, Any]],
                            kept: list[int]) -> dict[str, Any]:
    """Held-out probe accuracy and its change from the SFT model, each with a two-level bootstrap
    interval over seeds and items (the change is paired: same item, same seed)."""
    seeds = [s for s in kept if records[s].get("heldout_probe_correct")]
    if not seeds:
        return {"heldout_probe_interval": None, "heldout_probe_change": None}
    correct = [records[s]["heldout_probe_correct"] for s in seeds]
    change = [[a - b for a, b in zip(records[s]["heldout_probe_correct"], baseline[s]["heldout_probe_correct"])]
              for s in seeds]
    return {"heldout_probe_interval": hierarchical_interval(correct).as_dict(),
            "heldout_probe_change": hierarchical_interval(change).as_dict()}


def compare(contenders: list[dict[str, Any]], per_prompt: dict[str, dict[int, list[float]]], seeds: list[int],
            test_name: str) -> dict[str, Any]:
    """Every pair of contenders (Holm-corrected), the best one and those tied with it."""
    if len(seeds) > 1:
        samples = {c["label"]: {int(s): v["gold"] for s, v in c["seeds"].items() if not v["failed"]}
                   for c in contenders}
    else:
        seed = seeds[0]
        samples = {label: dict(enumerate(values[seed])) for label, values in per_prompt.items() if seed in values}
        samples.update({c["label"]: {} for c in contenders if c["label"] not in samples})
    tests = pairwise_tests(samples, test_name)
    means = {c["label"]: c["gold_interval"]["mean"] for c in contenders}
    best, tied = tied_with_best(means, tests)
    base = next(c["label"] for c in contenders if c["baseline"])
    vs_sft = {}
    for t in tests:
        if base in (t.a, t.b):
            other = t.b if t.a == base else t.a
            sign = 1 if t.b == base else -1  # the stored test is a − b; vs SFT is other − SFT
            d = t.test.difference
            vs_sft[other] = {"difference_mean": sign * d.mean, "difference_ci95": d.half_width, "n": d.n,
                             "p_value": t.test.p_value, "adjusted_p": t.adjusted_p, "significant": t.significant,
                             "test": test_name}
    return {"test": test_name, "correction": f"Holm over {len(tests)} pairs", "pairs": [t.as_dict() for t in tests],
            "best": best, "tied_with_best": sorted(tied), "vs_sft": vs_sft}


def kl_matched_summary(run: BenchRun, contenders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gold reward at each KL budget for every unselected sweep with two or more settings."""
    k = run.config.evaluation.samples_per_prompt
    groups: dict[str, list[str]] = {}
    for c in contenders:
        if c["sweep_key"] is not None and not c["selected"]:
            groups.setdefault(c["group"], []).append(c["label"])
    seeds = list(run.config.seeds)
    out = []
    for group, labels in groups.items():
        if len(labels) < 2:
            continue
        kl = np.asarray([[per_prompt_means(run.records[label][s]["kl"], k) for s in seeds] for label in labels])
        gold = np.asarray([[per_prompt_means(run.records[label][s]["gold"], k) for s in seeds] for label in labels])
        out.append({"group": group, "points": labels,
                    "budgets": {str(b): kl_matched(kl, gold, b).as_dict() for b in run.config.kl_budgets}})
    return out


def _stage_records(run: BenchRun) -> list[dict[str, Any]]:
    """The record of every stage this run asked for (pipelines, selection trials, headline runs), once each."""
    from pathlib import Path

    from zoo.bench.cache import DONE, read_json

    root = Path(run.config.cache_dir) if run.config.cache_dir else run.output_dir / "cache"
    records = []
    for kind, key in dict.fromkeys((kind, key) for kind, key, _ in run.events):
        try:
            records.append(read_json(root / f"{kind}-{key}" / DONE))
        except (OSError, ValueError):
            continue
    return records


def compute_seconds(run: BenchRun, key: str = "stage_seconds") -> float:
    """Time (``stage_seconds``: wall; ``stage_cpu_seconds``: CPU) every stage the results rest on
    took when it was built, cached or not. With one torch thread, the CPU time is what the stages
    take on an idle core."""
    return sum(float(record.get(key, 0.0) or 0.0) for record in _stage_records(run))


def stage_seconds_by_kind(run: BenchRun) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for record in _stage_records(run):
        kind = out.setdefault(str(record.get("kind")), {"stages": 0, "wall": 0.0, "cpu": 0.0})
        kind["stages"] += 1
        kind["wall"] += float(record.get("stage_seconds", 0.0) or 0.0)
        kind["cpu"] += float(record.get("stage_cpu_seconds", 0.0) or 0.0)
    return out
