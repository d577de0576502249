"""The benchmark's files: ``results.json`` and ``results.md``, its sections in order (the terminal's
table is :mod:`zoo.bench.report.terminal`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.bench.claims import carry_history
from zoo.bench.report.cells import table as _table
from zoo.bench.report.comparisons import (HEADLINE, comparison_lines, headline_notes, headline_rows, kl_matched_lines,
                                          pipeline_lines, selection_lines, suite_lines)
from zoo.bench.report.costs import budget_lines, time_lines
from zoo.bench.report.findings import findings_lines, history_lines, perturbation_lines
from zoo.bench.report.judges import judge_lines


def markdown(results: dict[str, Any]) -> str:
    """results.md: a pure function of results.json (see :mod:`zoo.bench.report.comparisons`)."""
    task = results["config"]["task"]["name"]
    versions = results["versions"]
    lines = [f"# zoo bench: task `{task}`", "",
             f"Seeds {results['seeds']}; {versions.get('device')}; alignment-zoo {versions.get('alignment-zoo')}, "
             f"torch {versions.get('torch')}; source hash {results.get('source_hash')}. Wall-clock figures vary from "
             f"run to run: this run's times per contender are in the last table, tokens/s and peak memory in "
             f"results.json.", ""]
    lines += markdown_body(results)
    lines += pipeline_lines(results)
    return "\n".join(lines).rstrip("\n") + "\n"


def markdown_body(results: dict[str, Any]) -> list[str]:
    """The verdict sections of results.md, in order, then its cost sections (:mod:`zoo.bench.report.costs`)."""
    lines = _table(list(HEADLINE), headline_rows(results)) + [""]
    lines += [f"- {line}" for line in headline_notes(results)] + [""]
    lines += findings_lines(results)
    lines += judge_lines(results)
    lines += perturbation_lines(results)
    lines += history_lines(results)
    lines += suite_lines(results)
    lines += comparison_lines(results)
    lines += selection_lines(results)
    lines += kl_matched_lines(results)
    lines += budget_lines(results)
    lines += time_lines(results)
    return lines


def write_outputs(results: dict[str, Any], output_dir: Path) -> dict[str, Path]:
    """results.json and results.md, carrying over the protocol history of a result already there."""
    output_dir.mkdir(parents=True, exist_ok=True)
    results.update(carry_history(results, output_dir))
    paths = {"json": output_dir / "results.json", "markdown": output_dir / "results.md"}
    paths["json"].write_text(json.dumps(results, indent=2, default=str))
    paths["markdown"].write_text(markdown(results))
    return paths
