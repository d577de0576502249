"""The benchmark report: a rich table on the terminal, ``results.json`` and ``results.md``."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

NOT_SIGNIFICANT = "†"
COLUMNS = ("run", "gold reward", "Δ gold vs SFT", "win rate vs SFT", "KL(π‖π_SFT)", "proxy RM", "pref. acc.",
           "probe acc.", "train s", "tokens/s", "peak MiB")


def _number(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _estimate(summary: dict[str, Any], digits: int = 2, signed: bool = False) -> str:
    mean, half = summary["mean"], summary["ci95"]
    if mean is None or math.isnan(mean):
        return "–"
    text = _number(mean, digits, signed)
    return text if half is None or math.isnan(half) else f"{text} ± {half:.{digits}f}"


def rows(results: dict[str, Any]) -> list[list[str]]:
    """The table's cells, one row per contender, as plain strings."""
    out = []
    baseline = next(c for c in results["contenders"] if c["baseline"])
    probe_before = baseline["summary"]["probe_accuracy"]["mean"]
    for contender in results["contenders"]:
        s = contender["summary"]
        if contender["baseline"]:
            delta = "–"
        else:
            delta = _estimate(s["gold_vs_sft"], signed=True)
            if not contender["vs_sft"]["significant"]:
                delta += f" {NOT_SIGNIFICANT}"
        probe = s["probe_accuracy"]["mean"]
        probe_text = "–" if probe is None or math.isnan(probe) else f"{probe:.2f}"
        if not contender["baseline"] and probe_text != "–" and not math.isnan(probe_before):
            probe_text += f" ({probe - probe_before:+.2f})"
        out.append([
            contender["label"], _estimate(s["gold"]), delta, _estimate(s["win_rate"]), _estimate(s["kl"]),
            _estimate(s["proxy"]), _estimate(s["preference_accuracy"]), probe_text,
            _number(s["train_seconds"]["mean"], 1), _number(s["tokens_per_second"]["mean"], 0),
            _number(s["peak_memory_mib"]["mean"], 0),
        ])
    return out


def notes(results: dict[str, Any]) -> list[str]:
    """The lines under the table: how to read it, and the shared stages' numbers."""
    shared = results["shared_stages"]
    baseline = next(c for c in results["contenders"] if c["baseline"])
    seeds = results["seeds"]
    lines = [
        f"Means over {len(seeds)} seeds {seeds}; ± is the 95% Student-t interval across seeds." if len(seeds) > 1 else
        f"One seed ({seeds[0]}): ± on the gold reward and its difference is the 95% Student-t interval across "
        f"prompts; the other columns have none.",
    ]
    if any(NOT_SIGNIFICANT in row[2] for row in rows(results)):  # the footnote only when a row carries the mark
        lines.append(f"{NOT_SIGNIFICANT} the gold-reward difference from {baseline['label']!r} is not significant: "
                     f"{results['significance_test']}.")
    lines += [
        "Win rate: share of evaluation samples whose gold reward beats the SFT sample for the same prompt, "
        "sample index and seed (ties count one half).",
        "KL(π‖π_SFT): mean of log π(y|x) − log π_SFT(y|x) over samples from π, nats per response; for best-of-n "
        "the analytic log n − (n−1)/n.",
        "Pref. acc.: held-out gold-labelled pairs ranked by the implicit reward log π − log π_SFT "
        "(ties count one half, so the SFT model scores 0.50).",
    ]
    probe = baseline["summary"]["probe_accuracy"]["mean"]
    if probe is not None and not math.isnan(probe):
        lines.append(f"Probe acc.: knowledge probes scored by the MMLU code path (4 choices, chance 0.25); before "
                     f"alignment (the SFT model) {probe:.2f}, change in parentheses.")
    lines.append("Train s, tokens/s: wall time of the training run and real tokens through the loss per second; "
                 "peak MiB: " + ("GPU memory allocated." if memory_kind(results) == "cuda"
                                 else "peak resident memory of the process while training (CPU)."))
    prefs = shared.get("preferences", {})
    rm = shared.get("reward_model", {})
    human = prefs.get("labels") == "human"
    if human:
        lines.append(f"Preference data: the task's {prefs.get('pairs')} human-labelled pairs of the train prompts. "
                     f"No gold reward: 'gold reward' and the win rate are the scores of the proxy reward model "
                     f"trained on those pairs, the one the online runs optimise (the judge).")
    elif prefs:
        lines.append(f"Preference data: {prefs.get('pairs')} pairs and {prefs.get('ranked_sets')} ranked sets from SFT "
                     f"samples (mean gold {prefs.get('sft_sample_gold_mean', float('nan')):.2f}); labels agree with the "
                     f"gold reward on {prefs.get('label_agreement_with_gold', float('nan')):.0%} of untied pairs.")
    if rm.get("heldout_accuracy") is not None:
        lines.append(f"Proxy reward model: held-out pairwise accuracy {rm['heldout_accuracy']:.2f} "
                     f"on {prefs.get('heldout_pairs')} {'human' if human else 'gold'}-labelled pairs.")
    if results.get("judges"):
        from zoo.bench.judges import disagreements

        disagree = disagreements(results)
        lines.append(f"Other judges ({', '.join(results['judges'])}) are in results.md; "
                     + ("a same-property judge does not share the direction of the significant gold-reward change of "
                        + ", ".join(f"{label!r} ({name})" for label, name in disagree) if disagree else
                        "none contradicts the direction of a significant gold-reward change") + ".")
    return lines


def memory_kind(results: dict[str, Any]) -> str:
    for stage in results["shared_stages"].values():
        if stage.get("memory_kind"):
            return stage["memory_kind"]
    return "rss"


def table(results: dict[str, Any]) -> Table:
    task = results["config"]["task"]["name"]
    rich_table = Table(title=f"zoo bench: task {task!r}, {len(results['seeds'])} seed(s)", caption_justify="left")
    for index, column in enumerate(COLUMNS):
        rich_table.add_column(column, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for row in rows(results):
        rich_table.add_row(*row)
    return rich_table


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
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / "results.json", "markdown": output_dir / "results.md"}
    paths["json"].write_text(json.dumps(results, indent=2, default=str))
    paths["markdown"].write_text(markdown(results))
    return paths


#: Column groups of the narrow layout: the gold reward and KL, then the other metrics and the cost.
NARROW_GROUPS = (("reward and KL", (0, 1, 2, 3, 4)), ("other metrics and cost", (0, 5, 6, 7, 8, 9, 10)))


def narrow_tables(results: dict[str, Any]) -> list[Table]:
    """The table for a narrow console (80 columns): two column groups, ``± h`` under its mean."""
    task = results["config"]["task"]["name"]
    cells = rows(results)
    out = []
    for name, columns in NARROW_GROUPS:
        rich_table = Table(title=f"zoo bench: task {task!r}, {len(results['seeds'])} seed(s): {name}")
        for index in columns:
            rich_table.add_column(COLUMNS[index].replace(" ", "\n", 1) if index else COLUMNS[index],
                                  justify="left" if index == 0 else "right", no_wrap=index == 0, overflow="fold")
        for row in cells:
            rich_table.add_row(*(row[i].replace(" ± ", "\n± ") for i in columns))
        out.append(rich_table)
    return out


def print_report(results: dict[str, Any], console: Console) -> None:
    """The table (stacked in two when the console is too narrow for one), then the notes."""
    wide = table(results)
    if console.measure(wide, options=console.options.update_width(10_000)).maximum <= console.width:
        console.print(wide)
    else:
        for part in narrow_tables(results):
            console.print(part)
    for line in notes(results):
        console.print(f"  {line}", highlight=False)
    console.print(f"  {verdict_line(results)}", highlight=False)


def verdict_line(results: dict[str, Any]) -> str:
    """Which row is best and which are statistically tied with it (Holm-corrected pairwise tests)."""
    comparisons = results["comparisons"]
    tied = [label for label in comparisons["tied_with_best"] if label != comparisons["best"]]
    return (f"Best gold reward: {comparisons['best']!r}; not significantly below it ({comparisons['correction']}): "
            f"{', '.join(repr(t) for t in tied) or 'none'}. results.md has every pair.")
