"""The task's further judges in the results: their means, their change from the baseline, and
where a judge of the same property disagrees in direction with a significant gold-reward change.

Each judge's per-sample scores (:meth:`zoo.bench.Task.judges`, recorded by the evaluation) are
stored in results.json as per-prompt means (:func:`judge_values`), and get what the gold reward
gets (:func:`judge_fields`): a 95% Student-t interval over per-seed means (over prompts with one
seed) of the mean, and of the paired change from the baseline (same prompts, same seed).
results.md's judges section is :mod:`zoo.bench.report.judges`.
"""
from __future__ import annotations

from typing import Any

from statistics import mean

from zoo.bench.stats import per_prompt_means, t_interval


def task_judges(task: dict[str, Any]) -> dict[str, Any]:
    """``{name: {"same_property", "description"}}`` of the judges of the config's ``task`` section."""
    from zoo.registry import get_registry

    task_cls = get_registry().get("tasks", task["name"])
    judges = task_cls(task_cls.parse_args(task.get("args"))).judges()
    return {name: {"same_property": j.same_property, "description": j.description} for name, j in judges.items()}


def judge_values(record: dict[str, Any], samples_per_prompt: int) -> dict[str, Any]:
    """``{"judges_per_prompt": {name: per-prompt means}}`` of one seed's evaluation (``{}`` without judges)."""
    judges = record.get("judges")
    if not judges:
        return {}
    return {"judges_per_prompt": {name: per_prompt_means(scores, samples_per_prompt)
                                  for name, scores in judges.items()}}


def judge_fields(contender: dict[str, Any], base: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """``{"judges": {name: {"interval", "change"}}}`` of one contender from its stored per-prompt
    values (``kept``: the seeds not collapsed), or ``{}`` when no judge scored it."""
    seeds = [s for s in kept if contender["seeds"][s].get("judges_per_prompt")]
    if not seeds:
        return {}
    out = {}
    for name in contender["seeds"][seeds[0]]["judges_per_prompt"]:
        scores = [contender["seeds"][s]["judges_per_prompt"][name] for s in seeds]
        change = [[a - b for a, b in zip(mine, base["seeds"][s]["judges_per_prompt"][name])]
                  for mine, s in zip(scores, seeds)]
        if len(seeds) == 1:
            covers = f"Student-t over {len(scores[0])} test prompts (one seed)"
            out[name] = {"interval": t_interval(scores[0], covers).as_dict(),
                         "change": t_interval(change[0], covers).as_dict()}
        else:
            covers = f"Student-t over {len(seeds)} per-seed means"
            out[name] = {"interval": t_interval([mean(v) for v in scores], covers).as_dict(),
                         "change": t_interval([mean(v) for v in change], covers).as_dict()}
    return {"judges": out}


def disagreements(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(contender, judge) for every contender significantly different from the baseline on the gold
    reward whose same-property judge moved the other way (or not at all)."""
    meta = results.get("judges") or {}
    out = []
    for contender in results["contenders"]:
        if contender["baseline"] or not contender.get("vs_sft", {}).get("significant"):
            continue
        gold = contender["vs_sft"]["difference_mean"]
        for name, values in (contender.get("judges") or {}).items():
            change = values["change"]["mean"]
            if meta.get(name, {}).get("same_property") and not (change * gold > 0):
                out.append((contender["label"], name))
    return out
