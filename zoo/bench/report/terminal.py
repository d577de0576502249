"""The benchmark's report on the terminal: one compact table, one line per run, and short notes.

The table fits the console (80 columns included) without wrapping a cell: every cell is one
line, and columns are shown in order of importance (gold reward, its difference from the SFT
model, KL, win rate, the alignment tax, proxy score, training time, ...) for as long as they
fit; the notes name the ones left out. Every interval, test and table is in ``results.md``;
the terminal gives the reading at a glance.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

NOT_SIGNIFICANT = "†"
#: Pads a significant difference so its digits line up with a marked one's.
_NO_MARK = "\u2007"
#: The verdict names the rows tied with the best up to this many; beyond, it counts them.
MAX_NAMED_TIES = 6


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def _number(value: Any, digits: int = 2, signed: bool = False) -> str:
    if not _finite(value):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _mean(contender: dict[str, Any], metric: str) -> Any:
    return contender["summary"].get(metric, {}).get("mean")


def _gold_half_width(contender: dict[str, Any], seeds: list[int]) -> Any:
    """Across seeds; with one seed, across the test prompts of that seed."""
    if len(seeds) > 1:
        return contender["summary"]["gold"].get("ci95")
    return (contender.get("seeds", {}).get(str(seeds[0])) or {}).get("gold_ci95_over_prompts")


def _gold(contender: dict[str, Any], results: dict[str, Any]) -> str:
    mean = _mean(contender, "gold")
    half = _gold_half_width(contender, results["seeds"])
    if not _finite(mean):
        return "–"
    return f"{mean:.2f} ±{half:.2f}" if _finite(half) else f"{mean:.2f}"


def _delta(contender: dict[str, Any], results: dict[str, Any]) -> str:
    if contender["baseline"]:
        return "–" + _NO_MARK
    text = _number(_mean(contender, "gold_vs_sft"), signed=True)
    return text + (_NO_MARK if contender["vs_sft"]["significant"] else NOT_SIGNIFICANT)


def _change(contender: dict[str, Any], results: dict[str, Any], metric: str) -> str:
    """The change of ``metric`` from the SFT model's value (``–`` for the SFT model itself)."""
    if contender["baseline"]:
        return "–"
    before = _mean(_baseline(results), metric)
    after = _mean(contender, metric)
    return _number(after - before, signed=True) if _finite(before) and _finite(after) else "–"


def _heldout_change(contender: dict[str, Any], results: dict[str, Any]) -> str:
    change = contender.get("heldout_probe_change")
    if contender["baseline"] or not change:
        return "–"
    return _number(change.get("mean"), signed=True)


def _baseline(results: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in results["contenders"] if c["baseline"])


@dataclass(frozen=True)
class Column:
    """One column: its two-line header, its cell, and its place in the order columns are dropped."""

    header: str
    cell: Callable[[dict[str, Any], dict[str, Any]], str]
    #: 0 is always shown; higher numbers are left out first when the console is too narrow.
    priority: int
    name: str


def _metric(metric: str, digits: int = 2) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    return lambda contender, results: _number(_mean(contender, metric), digits)


#: In display order. The headers are short on purpose: the notes under the table say what each means.
COLUMNS = (
    Column("\nrun", lambda c, r: c["label"], 0, "run"),
    Column("gold\nreward", _gold, 0, "gold reward"),
    Column("Δ gold\nvs SFT", _delta, 0, "Δ gold vs SFT"),
    Column("win\nrate", _metric("win_rate"), 2, "win rate"),
    Column("\nKL", _metric("kl"), 1, "KL"),
    Column("proxy\nRM", _metric("proxy"), 4, "proxy RM"),
    Column("pref.\nacc.", _metric("preference_accuracy"), 6, "pref. acc."),
    Column("Δ\nprobe", _heldout_change, 3, "Δ probe"),
    Column("Δ rote\nprobe", lambda c, r: _change(c, r, "probe_accuracy"), 7, "Δ rote probe"),
    Column("train\ns", _metric("train_seconds", 1), 5, "train s"),
    Column("tokens\n/s", _metric("tokens_per_second", 0), 8, "tokens/s"),
    Column("peak\nMiB", _metric("peak_memory_mib", 0), 9, "peak MiB"),
)


def _available(column: Column, results: dict[str, Any]) -> bool:
    """A column with nothing but dashes (no probes in this task, no run that trains) is not shown."""
    cells = [column.cell(c, results) for c in results["contenders"] if not c["baseline"]]
    return any(cell.strip(NOT_SIGNIFICANT + _NO_MARK) not in ("–", "") for cell in cells) or column.priority == 0


def _build(results: dict[str, Any], columns: list[Column]) -> Table:
    task = results["config"]["task"]["name"]
    seeds = len(results["seeds"])
    table = Table(title=f"zoo bench: task {task!r}, {seeds} seed{'s' if seeds > 1 else ''}", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for index, column in enumerate(columns):
        # Numbers never wrap; a label too long for even the first columns folds rather than being cut.
        table.add_column(column.header, justify="left" if index == 0 else "right", no_wrap=index > 0,
                         overflow="fold")
    for contender in results["contenders"]:
        table.add_row(*(column.cell(contender, results) for column in columns))
    return table


def _width(console: Console, table: Table) -> int:
    return console.measure(table, options=console.options.update_width(10_000)).maximum


def layout(results: dict[str, Any], width: int) -> tuple[Table, list[Column], list[Column]]:
    """The table for a console ``width`` columns wide, the columns shown and those left out for lack of room."""
    console = Console(width=width)
    available = [c for c in COLUMNS if _available(c, results)]
    shown = list(available)
    for priority in sorted({c.priority for c in available if c.priority > 0}, reverse=True):
        if _width(console, _build(results, shown)) <= width:
            break
        shown = [c for c in shown if c.priority != priority]
    return _build(results, shown), shown, [c for c in available if c not in shown]


def _explanations(results: dict[str, Any], shown: list[Column]) -> list[str]:
    baseline = _baseline(results)
    memory = ("GPU memory allocated" if memory_kind(results) == "cuda"
              else "peak resident memory of the process while training")
    heldout = baseline.get("heldout_probe_interval") or {}
    text = {
        "win rate": "win rate: share of samples whose gold reward beats the SFT sample for the same prompt "
                    "(ties count one half)",
        "KL": "KL: KL(π‖π_SFT), mean log π(y|x) − log π_SFT(y|x) over π's samples, nats per response "
              "(best-of-n: log n − (n−1)/n)",
        "proxy RM": "proxy RM: score of the learnt reward model the online runs optimise",
        "pref. acc.": "pref. acc.: held-out gold-labelled pairs ranked by the implicit reward log π − log π_SFT "
                      "(SFT scores 0.50)",
        "Δ probe": f"Δ probe: the alignment tax, change in accuracy on held-out knowledge probes (4 choices) from "
                   f"the SFT model's {_number(heldout.get('mean'))}",
        "Δ rote probe": "Δ rote probe: the same for probes quizzed word for word in pretraining "
                        f"(SFT {_number(_mean(baseline, 'probe_accuracy'))})",
        "train s": "train s: wall time of the training run",
        "tokens/s": "tokens/s: real tokens through the loss per second",
        "peak MiB": f"peak MiB: {memory}",
    }
    return [text[c.name] for c in shown if c.name in text]


def memory_kind(results: dict[str, Any]) -> str:
    for stage in results["shared_stages"].values():
        if stage.get("memory_kind"):
            return stage["memory_kind"]
    return "rss"


def notes(results: dict[str, Any], shown: list[Column], left_out: list[Column]) -> list[str]:
    """The lines under the table: how to read it, the shared stages' numbers, the verdict."""
    seeds = results["seeds"]
    baseline = _baseline(results)
    comparisons = results["comparisons"]
    over = (f"the {len(seeds)} seeds {seeds}" if len(seeds) > 1 else
            f"the test prompts of the one seed ({seeds[0]})")
    lines = [f"Gold reward: mean, ± its 95% Student-t interval across {over}. results.md has every interval, test "
             f"and pair."]
    if any(not c["baseline"] and not c["vs_sft"]["significant"] for c in results["contenders"]):
        lines.append(f"{NOT_SIGNIFICANT} not significantly different from {baseline['label']!r}: "
                     f"{results['significance_test']}, p-values Holm-corrected over the rows against it "
                     f"({comparisons.get('vs_sft_correction', comparisons['correction'])}), so a difference whose "
                     f"unadjusted 95% interval excludes 0 can still carry {NOT_SIGNIFICANT}.")
    explained = _explanations(results, shown)
    if explained:
        lines.append("; ".join(explained) + ".")
    if left_out:
        lines.append("Left out for width (in results.md, or widen the terminal): "
                     + ", ".join(c.name for c in left_out) + ".")
    collapsed = [f"{c['label']!r} {c['failures']}/{len(seeds)}" for c in results["contenders"] if c.get("failures")]
    if collapsed:
        lines.append("Collapsed seeds, left out of every number: " + ", ".join(collapsed) + ".")
    lines += shared_stage_lines(results)
    tied = [label for label in comparisons["tied_with_best"] if label != comparisons["best"]]
    # A long list of names says less than its length; results.md has it.
    named = (", ".join(repr(t) for t in tied) or "none") if len(tied) <= MAX_NAMED_TIES else \
        f"{len(tied)} of the other {len(results['contenders']) - 1} rows"
    lines.append(f"Best gold reward: {comparisons['best']!r}; not significantly below it "
                 f"(Holm over the {len(comparisons.get('vs_best', results['contenders'][1:]))} rows against it): {named}.")
    return lines


def shared_stage_lines(results: dict[str, Any]) -> list[str]:
    shared = results["shared_stages"]
    prefs = shared.get("preferences", {})
    rm = shared.get("reward_model", {})
    human = prefs.get("labels") == "human"
    lines = []
    if human:
        lines.append(f"Preference data: the task's {prefs.get('pairs')} human-labelled pairs. No gold reward: "
                     f"'gold reward' and the win rate are the scores of the proxy reward model trained on them, "
                     f"the one the online runs optimise.")
    elif prefs:
        lines.append(f"Preference data: {prefs.get('pairs')} pairs and {prefs.get('ranked_sets')} ranked sets from SFT "
                     f"samples; labels agree with the gold reward on "
                     f"{prefs.get('label_agreement_with_gold', float('nan')):.0%} of untied pairs.")
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


def print_report(results: dict[str, Any], console: Console) -> None:
    """The table at the console's width, then the notes wrapped to it with a hanging indent."""
    width = min(console.width, 160)
    table, shown, left_out = layout(results, width)
    console.print(table)
    for line in notes(results, shown, left_out):
        wrapped = textwrap.fill(line, width=width, initial_indent="  ", subsequent_indent="    ",
                                break_on_hyphens=False, break_long_words=False)
        console.print(wrapped, highlight=False, markup=False, soft_wrap=True)
