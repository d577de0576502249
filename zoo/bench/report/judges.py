"""The judges section of results.md: each further judge of the task (:meth:`zoo.bench.Task.judges`),
its mean and change from the baseline (:func:`zoo.bench.judges.judge_fields`), and the rows where a
same-property judge disagrees in direction with a significant gold-reward change."""
from __future__ import annotations

import math
from typing import Any

from zoo.bench.judges import disagreements


def judge_lines(results: dict[str, Any]) -> list[str]:
    """The judges section of results.md (empty for a task without judges)."""
    meta = results.get("judges") or {}
    if not meta:
        return []
    names = list(meta)
    lines = ["## Other judges", "",
             "Scored on the same test samples as the gold reward, never optimised nor used for selection. "
             "Mean, and change from the baseline with its 95% Student-t interval (over per-seed means; over prompts with one seed).", ""]
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
