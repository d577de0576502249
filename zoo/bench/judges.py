"""The task's further judges in the results: their means, their change from the baseline, and
where a judge of the same property disagrees in direction with a significant gold-reward change.

Each judge's per-sample scores (:meth:`zoo.bench.Task.judges`, recorded by the evaluation)
get what the held-out probes get: a two-level bootstrap interval over seeds and test prompts
of the mean, and of the paired change from the baseline (same prompt, sample and seed).
"""
from __future__ import annotations

import math
from typing import Any

from zoo.bench.stats import hierarchical_interval, per_prompt_means


def task_judges(task: dict[str, Any]) -> dict[str, Any]:
    """``{name: {"same_property", "description"}}`` of the judges of the config's ``task`` section."""
    from zoo.registry import get_registry

    task_cls = get_registry().get("tasks", task["name"])
    judges = task_cls(task_cls.parse_args(task.get("args"))).judges()
    return {name: {"same_property": j.same_property, "description": j.description} for name, j in judges.items()}


def judge_fields(records: dict[int, dict[str, Any]], baseline: dict[int, dict[str, Any]], kept: list[int],
                 samples_per_prompt: int) -> dict[str, Any]:
    """``{"judges": {name: {"interval", "change"}}}`` of one contender, or ``{}`` when no judge scored it."""
    seeds = [s for s in kept if records[s].get("judges")]
    if not seeds:
        return {}
    out = {}
    for name in records[seeds[0]]["judges"]:
        scores = [per_prompt_means(records[s]["judges"][name], samples_per_prompt) for s in seeds]
        change = [[a - b for a, b in zip(records[s]["judges"][name], baseline[s]["judges"][name])] for s in seeds]
        out[name] = {"interval": hierarchical_interval(scores).as_dict(),
                     "change": hierarchical_interval([per_prompt_means(c, samples_per_prompt) for c in change]).as_dict()}
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


def judge_lines(results: dict[str, Any]) -> list[str]:
    """The judges section of results.md (empty for a task without judges)."""
    meta = results.get("judges") or {}
    if not meta:
        return []
    names = list(meta)
    lines = ["## Other judges", "",
             "Scored on the same test samples as the gold reward, never optimised nor used for selection. "
             "Mean, and change from the baseline with its 95% two-level bootstrap interval (seeds and prompts).", ""]
    for name in names:
        lines.append(f"- `{name}`: {meta[name]['description']}"
                     + ("" if meta[name]["same_property"] else " (context, not a judge of the gold property)"))
    lines += ["", "| run | " + " | ".join(f"{n} | Δ {n}" for n in names) + " |",
              "|---|" + "---:|---:|" * len(names)]
    for contender in results["contenders"]:
        judges = contender.get("judges") or {}
        cells = []
        for name in names:
            if name not in judges:
                cells += ["–", "–"]
                continue
            mean, change = judges[name]["interval"]["mean"], judges[name]["change"]
            cells.append(_num(mean))
            cells.append("–" if contender["baseline"] else
                         f"{_num(change['mean'], True)} [{_num(change['low'], True)}, {_num(change['high'], True)}]")
        lines.append(f"| {contender['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    disagree = disagreements(results)
    same = [n for n in names if meta[n]["same_property"]]
    if disagree:
        lines.append("Rows whose significant gold-reward change a same-property judge does not share in direction: "
                     + "; ".join(f"{label} ({name})" for label, name in disagree) + ".")
    elif same:
        lines.append(f"Every row significantly different from the baseline on the gold reward moves "
                     f"{', '.join(same)} in the same direction.")
    lines.append("")
    return lines


def _num(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
