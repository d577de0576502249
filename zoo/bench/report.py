"""The benchmark's files: ``results.json`` and ``results.md`` (the terminal's table is :mod:`zoo.bench.terminal_report`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def markdown(results: dict[str, Any]) -> str:
    """results.md: a pure function of results.json (see :mod:`zoo.bench.comparisons`)."""
    from zoo.bench.comparisons import markdown_body, pipeline_lines

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


def write_outputs(results: dict[str, Any], output_dir: Path) -> dict[str, Path]:
    """results.json and results.md, carrying over the protocol history of a result already there."""
    from zoo.bench.claims import carry_history

    output_dir.mkdir(parents=True, exist_ok=True)
    results.update(carry_history(results, output_dir))
    paths = {"json": output_dir / "results.json", "markdown": output_dir / "results.md"}
    paths["json"].write_text(json.dumps(results, indent=2, default=str))
    paths["markdown"].write_text(markdown(results))
    return paths
