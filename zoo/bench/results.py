"""From evaluation records to the numbers the report shows, in two steps.

:func:`collect` keeps what was measured (results.json's stored values): per seed, each
contender's per-prompt means of gold reward, proxy score, KL, length and win against the SFT
model's sample, the per-sample spread of its gold reward, the per-item held-out probe outcomes,
its model-level accuracies and training costs. :func:`derive` computes every statistic from
those stored values only, so ``zoo bench --check`` can recompute a committed result and compare.

Derived: per seed, the means and the verdict collapsed or not (:func:`zoo.bench.stats.is_failure`).
Across seeds: the gold reward's 95% Student-t interval over per-seed means (over per-prompt means
with one seed), and the same for every other metric; the collapse rate with an exact interval and
McNemar's test against the SFT model. Collapsed seeds are left out of the means and the gold tests
(they are the collapse outcome's data). Every pair of contenders is compared by a paired t-test on
per-seed mean gold reward (per-prompt means with one seed), Holm-corrected over all pairs; each
row gets its difference from the best row with its interval ("below best", "equivalent" within a
declared margin, or "cannot tell"). Sweeps that are not selected get their gold reward read off
the (KL, gold) frontier at the config's KL budgets.

A little over 300 lines, kept whole on purpose: what is stored and what is derived from it are
the two halves of one contract, which ``zoo bench --check`` relies on.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from statistics import fmean as mean
from statistics import pstdev
from typing import Any

import numpy as np

from zoo.bench.budget import training_flops
from zoo.bench.judges import judge_fields, judge_values, task_judges
from zoo.bench.record import BenchRun
from zoo.bench.stats import (CONFIDENCE, holm, is_failure, kl_matched, kl_matched_difference, mcnemar_exact, mean_ci,
                             pairwise_tests, per_prompt_means, proportion_interval, t_interval, versus_best)
from zoo.bench.versions import recorded_versions

#: results.json's layout; ``zoo bench --check`` recomputes only this one.
FORMAT = 2
#: Per-seed metrics summarised across seeds, in table order.
METRICS = ("gold", "gold_vs_sft", "win_rate", "kl", "proxy", "preference_accuracy", "probe_accuracy",
           "heldout_probe_accuracy", "length", "train_seconds", "tokens_per_second", "peak_memory_mib", "steps",
           "tokens", "samples_generated", "tokens_generated", "flops", "parameters", "eval_seconds")
#: Per-sample values stored as per-prompt means (the per-seed mean is their mean).
PER_PROMPT = ("gold", "kl", "proxy", "length", "win")
#: Config keys that make up the declared protocol (what a claim's verdict rests on).
PROTOCOL_KEYS = ("claims", "seeds", "tuning_seeds", "selection", "equivalence_margin", "budget", "alignment",
                 "failure")


def baseline_label(run: BenchRun) -> str:
    """The SFT baseline: the first contender that neither trains nor decodes best-of-n."""
    return next(c.label for c in run.contenders if not c.trains and c.spec.best_of_n is None)


def protocol_hash(config: dict[str, Any]) -> str:
    """A hash of the declared protocol: claims, seeds, selection, budgets and the collapse rule."""
    declared = {key: config.get(key) for key in PROTOCOL_KEYS}
    return hashlib.sha256(json.dumps(declared, sort_keys=True, default=str).encode()).hexdigest()[:16]


def seed_values(record: dict[str, Any], baseline: dict[str, Any], samples_per_prompt: int) -> dict[str, Any]:
    """What one contender's evaluation on one seed measured, as results.json stores it."""
    k = samples_per_prompt
    training = record.get("training") or {}
    wins = [1.0 if c > b else 0.5 if c == b else 0.0 for c, b in zip(record["gold"], baseline["gold"])]
    per_sample = {"gold": record["gold"], "kl": record["kl"], "proxy": record["proxy"], "length": record["length"],
                  "win": wins}
    return {
        **{f"{name}_per_prompt": per_prompt_means(per_sample[name], k) for name in PER_PROMPT},
        #: Population SD of the per-sample gold reward (the collapse rule's yardstick for the SFT model).
        "gold_sd": pstdev(record["gold"]),
        "preference_accuracy": record.get("preference_accuracy"), "probe_accuracy": record.get("probe_accuracy"),
        "heldout_probe_correct": record.get("heldout_probe_correct") or None,
        "train_seconds": training.get("train_seconds"), "tokens_per_second": training.get("tokens_per_second"),
        "peak_memory_mib": training.get("peak_memory_mib"), "steps": training.get("steps"),
        "tokens": training.get("tokens"), "samples_generated": training.get("samples_generated"),
        "tokens_generated": training.get("tokens_generated"), "parameters": training.get("parameters"),
        "eval_seconds": record.get("eval_seconds"), "samples": len(record["gold"]),
        "suites": {suite: {name: value.get("value") for name, value in metrics.items() if isinstance(value, dict)}
                   for suite, metrics in (record.get("suites") or {}).items()},
    }


def _test_name(seeds: list[int]) -> str:
    if len(seeds) > 1:
        return (f"paired t-test across seeds (per-seed mean gold reward on the test prompts; seeds where either "
                f"run collapsed left out), two-sided, α = 0.05")
    return "paired t-test across test prompts (per-prompt mean gold reward, one seed), two-sided, α = 0.05"


def summarise(run: BenchRun) -> dict[str, Any]:
    """Everything results.json holds: the stored values (:func:`collect`) and their statistics (:func:`derive`)."""
    return derive(collect(run))


def collect(run: BenchRun) -> dict[str, Any]:
    """results.json's stored values: config, versions, provenance, stages and what each contender measured."""
    base = baseline_label(run)
    seeds = list(run.config.seeds)
    k = run.config.evaluation.samples_per_prompt
    contenders = []
    for contender in run.contenders:
        records = run.records[contender.label]
        spec = contender.spec
        contenders.append({
            "label": contender.label, "group": contender.group, "algorithm": spec.algorithm,
            "algorithm_args": spec.algorithm_args, "train": spec.train, "reward": spec.reward,
            "best_of_n": spec.best_of_n, "sweep_key": contender.sweep_key, "sweep_value": contender.sweep_value,
            "setting": contender.setting, "selected": contender.label in run.selections,
            "baseline": contender.label == base,
            "seeds": {str(s): {**seed_values(records[s], run.records[base][s], k), **judge_values(records[s], k)}
                      for s in seeds},
            "examples": records[seeds[0]].get("examples", []),
        })
    config = run.config.to_dict()
    judges = task_judges({"name": run.config.task.name, "args": run.config.task.args})
    return {
        "format": FORMAT, "config": config, "protocol_hash": protocol_hash(config), "versions": recorded_versions(),
        **run.provenance, "baseline": base, "seeds": seeds, "seed_scope": run.config.seed_scope,
        "shared_stages": run.shared, "pipelines": {str(seed): stages for seed, stages in run.pipelines.items()},
        "contenders": contenders, "selections": json.loads(json.dumps(run.selections, default=str)),
        "budget": json.loads(json.dumps(run.budget, default=str)),
        **({"judges": judges} if judges else {}),
        "stages": [{"kind": kind, "fingerprint": key, "status": status} for kind, key, status in run.events],
        "wall_seconds": run.seconds, "cpu_seconds": run.cpu_seconds, "compute_seconds": compute_seconds(run),
        "compute_cpu_seconds": compute_seconds(run, "stage_cpu_seconds"),
        "stage_seconds": stage_seconds_by_kind(run),
    }


def _per_seed_statistics(values: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """A seed's means, recomputed from its per-prompt values (the stored ones win over any stored mean)."""
    out = {name: mean(values[f"{name}_per_prompt"]) for name in ("gold", "kl", "proxy", "length")}
    out["win_rate"] = mean(values["win_per_prompt"])
    out["gold_vs_sft"] = out["gold"] - mean(baseline["gold_per_prompt"])
    out["gold_ci95_over_prompts"] = mean_ci(values["gold_per_prompt"]).half_width
    correct = values.get("heldout_probe_correct")
    out["heldout_probe_accuracy"] = mean(correct) if correct else None
    out["flops"] = training_flops(values)
    return out


def derive(stored: dict[str, Any]) -> dict[str, Any]:
    """Every statistic of results.json, from its stored values only (a pure function: the check reruns it)."""
    results = copy.deepcopy(stored)
    seeds = [str(s) for s in results["seeds"]]
    config = results["config"]
    failure = config["failure"]
    base = next(c for c in results["contenders"] if c["baseline"])
    test_name = _test_name(results["seeds"])
    results["significance_test"] = test_name
    for c in results["contenders"]:
        for s in seeds:
            values = c["seeds"][s]
            values.update(_per_seed_statistics(values, base["seeds"][s]))
            sft = base["seeds"][s]
            values["failed"] = (not c["baseline"]) and is_failure(
                values["gold"], values["kl"], mean(sft["gold_per_prompt"]), sft["gold_sd"],
                max_kl=failure["max_kl"], max_gold_drop_sd=failure["max_gold_drop_sd"])
        kept = [s for s in seeds if not c["seeds"][s]["failed"]]
        c["summary"] = {metric: mean_ci([c["seeds"][s][metric] for s in kept]).as_dict() for metric in METRICS}
        c["gold_interval"] = gold_interval(c, kept)
        c.update(heldout_probe_intervals(c, base, kept))
        c.update(judge_fields(c, base, kept))
        c["failures"] = len(seeds) - len(kept)
        c["failure_rate"] = c["failures"] / len(seeds)
        c["collapse"] = collapse_outcome(c, base, seeds)
    comparisons = compare(results["contenders"], seeds, test_name, config.get("equivalence_margin"))
    for c in results["contenders"]:
        c["vs_sft"] = comparisons["vs_sft"].get(c["label"], {"significant": False, "p_value": math.nan})
        c["vs_best"] = comparisons["vs_best"].get(c["label"])
        c["best"] = c["label"] == comparisons["best"]
    results["comparisons"] = comparisons
    curves = sweep_curves(results)
    results["kl_matched"] = kl_matched_summary(results, curves)
    results["kl_matched_comparisons"] = kl_matched_comparisons(results, curves)
    return results


def gold_interval(contender: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """Mean gold reward with its 95% Student-t interval: over per-seed means (the seed is the unit that
    redraws the pipeline), or over per-prompt means with one seed."""
    if not kept:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "covers": "every seed collapsed"}
    if len(kept) == 1:
        values = contender["seeds"][kept[0]]["gold_per_prompt"]
        return t_interval(values, f"Student-t over {len(values)} test prompts (one seed)").as_dict()
    return t_interval([contender["seeds"][s]["gold"] for s in kept],
                      f"Student-t over {len(kept)} per-seed means (n − 1 = {len(kept) - 1} degrees of freedom)"
                      ).as_dict()


def heldout_probe_intervals(contender: dict[str, Any], base: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """Held-out probe accuracy and its change from the SFT model (paired: same items, same seed), each
    with a 95% Student-t interval over seeds (over items with one seed)."""
    seeds = [s for s in kept if contender["seeds"][s].get("heldout_probe_correct")]
    if not seeds:
        return {"heldout_probe_interval": None, "heldout_probe_change": None}
    correct = [contender["seeds"][s]["heldout_probe_correct"] for s in seeds]
    change = [[a - b for a, b in zip(mine, base["seeds"][s]["heldout_probe_correct"])]
              for mine, s in zip(correct, seeds)]
    if len(seeds) == 1:
        covers = f"Student-t over {len(correct[0])} items (one seed)"
        return {"heldout_probe_interval": t_interval(correct[0], covers).as_dict(),
                "heldout_probe_change": t_interval(change[0], covers).as_dict()}
    covers = f"Student-t over {len(seeds)} per-seed means"
    return {"heldout_probe_interval": t_interval([mean(v) for v in correct], covers).as_dict(),
            "heldout_probe_change": t_interval([mean(v) for v in change], covers).as_dict()}


def collapse_outcome(contender: dict[str, Any], base: dict[str, Any], seeds: list[str]) -> dict[str, Any]:
    """The collapse rate with its exact 95% interval, and McNemar's exact test against the baseline."""
    collapsed = [s for s in seeds if contender["seeds"][s]["failed"]]
    low, high = proportion_interval(len(collapsed), len(seeds))
    baseline_collapsed = {s for s in seeds if base["seeds"][s]["failed"]}
    only_mine = sum(1 for s in collapsed if s not in baseline_collapsed)
    only_base = sum(1 for s in baseline_collapsed if s not in collapsed)
    return {"collapsed": len(collapsed), "seeds": len(seeds), "rate": len(collapsed) / len(seeds), "low": low,
            "high": high, "collapsed_seeds": collapsed, "vs_sft_p": mcnemar_exact(only_mine, only_base)}


def gold_samples(contenders: list[dict[str, Any]], seeds: list[str]) -> dict[str, dict[Any, float]]:
    """What the gold tests pair: per-seed means of non-collapsed seeds, or per-prompt means with one seed."""
    if len(seeds) > 1:
        return {c["label"]: {int(s): c["seeds"][s]["gold"] for s in seeds if not c["seeds"][s]["failed"]}
                for c in contenders}
    seed = seeds[0]
    return {c["label"]: ({} if c["seeds"][seed]["failed"] else dict(enumerate(c["seeds"][seed]["gold_per_prompt"])))
            for c in contenders}


def compare(contenders: list[dict[str, Any]], seeds: list[str], test_name: str, margin: float | None = None
            ) -> dict[str, Any]:
    """Every pair of contenders (Holm-corrected), the best one and every row's difference from it."""
    samples = gold_samples(contenders, seeds)
    tests = pairwise_tests(samples, test_name)
    means = {c["label"]: c["gold_interval"]["mean"] for c in contenders if not math.isnan(c["gold_interval"]["mean"])}
    best = max(means, key=lambda label: means[label]) if means else None
    vs_best = versus_best({label: samples[label] for label in samples if label in means}, best, margin) if best else {}
    base = next(c["label"] for c in contenders if c["baseline"])
    # Each row against the baseline is a family of its own (many-to-one, Holm over the m − 1 rows),
    # as each row against the best is; the matrix of every pair is corrected over all its pairs.
    against_base = [t for t in tests if base in (t.a, t.b)]
    vs_sft = {}
    for t, adjusted in zip(against_base, holm([t.test.p_value for t in against_base])):
        other = t.b if t.a == base else t.a
        sign = 1 if t.b == base else -1  # the stored test is a − b; vs SFT is other − SFT
        d = t.test.difference
        vs_sft[other] = {"difference_mean": sign * d.mean, "difference_ci95": d.half_width, "n": d.n,
                         "p_value": t.test.p_value, "adjusted_p": adjusted,
                         "significant": not math.isnan(adjusted) and adjusted < 1 - CONFIDENCE, "test": test_name}
    # The terminal's one-line verdict names the rows not shown to be below the best.
    not_below = sorted([best] + [label for label, v in vs_best.items() if v["verdict"] != "below best"]) if best else []
    return {"test": test_name, "correction": f"Holm over {len(tests)} pairs",
            "vs_sft_correction": f"Holm over the {len(against_base)} rows against the baseline",
            "pairs": [t.as_dict() for t in tests], "best": best, "vs_best": vs_best, "equivalence_margin": margin,
            "tied_with_best": not_below, "vs_sft": vs_sft}


def sweep_curves(results: dict[str, Any]) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Every unselected sweep with two or more settings: its row labels and its ``[points, seeds,
    prompts]`` arrays of per-prompt KL and gold reward (every seed, collapsed or not)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in results["contenders"]:
        if c["sweep_key"] is not None and not c["selected"]:
            groups.setdefault(c["group"], []).append(c)
    seeds = [str(s) for s in results["seeds"]]
    return {group: ([c["label"] for c in members],
                    np.asarray([[c["seeds"][s]["kl_per_prompt"] for s in seeds] for c in members]),
                    np.asarray([[c["seeds"][s]["gold_per_prompt"] for s in seeds] for c in members]))
            for group, members in groups.items() if len(members) >= 2}


def kl_matched_summary(results: dict[str, Any], curves: dict[str, tuple[list[str], np.ndarray, np.ndarray]]
                       ) -> list[dict[str, Any]]:
    """Gold reward at each KL budget for every sweep of ``curves`` (:func:`sweep_curves`)."""
    return [{"group": group, "points": points,
             "budgets": {str(b): kl_matched(kl, gold, b).as_dict() for b in results["config"]["kl_budgets"]}}
            for group, (points, kl, gold) in curves.items()]


KL_MATCHED_TEST = ("paired t-test across seeds (each seed's gold reward interpolated at the budget on its own sweep "
                   "curve; every seed, collapsed or not), two-sided, α = 0.05")


def kl_matched_comparisons(results: dict[str, Any], curves: dict[str, tuple[list[str], np.ndarray, np.ndarray]]
                           ) -> dict[str, Any]:
    """Every two sweeps of ``curves`` compared at every KL budget both reach: the per-seed paired
    difference of their interpolated gold rewards (:func:`zoo.bench.stats.kl_matched_difference`),
    one Holm family."""
    groups = list(curves)
    raw, too_few = [], 0
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            for budget in results["config"]["kl_budgets"]:
                test = kl_matched_difference(curves[a][1:], curves[b][1:], budget, KL_MATCHED_TEST)
                if test.difference.n >= 2:
                    raw.append((a, b, budget, test))
                else:  # fewer than two seeds where both curves reach the budget: no test
                    too_few += 1
    adjusted = holm([t.p_value for *_, t in raw])
    return {"test": KL_MATCHED_TEST, "untested": too_few,
            "correction": f"Holm over {len(raw)} comparisons",
            "pairs": [{"a": a, "b": b, "budget": budget, **t.as_dict(), "low": t.difference.low,
                       "high": t.difference.high, "adjusted_p": p,
                       "significant": not math.isnan(p) and p < 1 - CONFIDENCE}
                      for (a, b, budget, t), p in zip(raw, adjusted)]}


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
