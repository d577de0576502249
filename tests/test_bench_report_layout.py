"""The bench table on the terminal: one line per run within 80 columns, the † note names the Holm
correction, the alignment tax is shown, and columns give way by importance on a narrow console."""
from __future__ import annotations

import io
import json
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console

from zoo.bench.report.terminal import print_report

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _summary(value: float, half: float | None = 0.031) -> dict:
    return {"mean": value, "ci95": half}


def _contender(label: str, baseline: bool, significant: bool, gold: float = 0.4) -> dict:
    s = {name: _summary(v) for name, v in (("gold", gold), ("gold_vs_sft", 0.12), ("win_rate", 0.61), ("kl", 3.2),
                                           ("proxy", 0.55), ("preference_accuracy", 0.5))}
    s.update(probe_accuracy=_summary(0.31 if baseline else 0.26, None), train_seconds=_summary(12.3, None),
             tokens_per_second=_summary(5321.0, None), peak_memory_mib=_summary(812.0, None))
    return {"label": label, "baseline": baseline, "summary": s, "vs_sft": {"significant": significant},
            "heldout_probe_interval": {"mean": 0.25}, "heldout_probe_change": None if baseline else {"mean": -0.04}}


def _results(significant: bool) -> dict:
    return {"config": {"task": {"name": "fables"}}, "seeds": [0, 1, 2], "significance_test": "paired t-test",
            "shared_stages": {}, "comparisons": {"best": "sft", "tied_with_best": [], "correction": "Holm over 3 pairs",
                                                 "pairs": [{}, {}, {}]},
            "contenders": [_contender("sft", True, True, gold=0.28),
                           _contender("dpo (beta=0.1)", False, significant),
                           _contender("rejection_sampling", False, True)]}


def _printed(results: dict, width: int) -> str:
    buffer = io.StringIO()
    print_report(results, Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue()


def _row_lines(text: str, labels: list[str]) -> dict[str, list[str]]:
    """Every table line that starts with a run's label (the longest label that matches)."""
    lines = text.splitlines()
    return {label: [line for line in lines if line.startswith(label + " ")
                    and not any(other.startswith(label) and other != label and line.startswith(other + " ")
                                for other in labels)] for label in labels}


def _note(text: str, start: str) -> str:
    """The note that begins with ``start``, its wrapped lines joined."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  " + start))
    rest = lines[first + 1:]
    end = next((i for i, line in enumerate(rest) if not line.startswith("    ")), len(rest))
    return " ".join(" ".join(lines[first:first + 1 + end]).split())


def test_the_committed_tiny_benchmark_fits_80_columns_one_line_per_run():
    results = json.loads((RESULTS / "tiny" / "results.json").read_text())
    text = _printed(results, 80)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    labels = [c["label"] for c in results["contenders"]]
    rows = _row_lines(text, labels)
    assert all(len(found) == 1 for found in rows.values()), rows  # no run's cells spill onto a second line
    body = [line for line in text.splitlines() if not line.startswith(" ")]
    assert len(body) <= len(labels) + 4  # title, two header lines, the rule: about 20 lines, not 113
    # RRHF: per-seed gold means 0.480, 0.487, 0.602, 0.536, 0.480: mean 0.517, Student-t half-width
    # t(0.975, 4) · s / √5 = 2.776 · 0.0529 / 2.236 = 0.066; SFT's mean -0.204 (-0.062, -0.260, -0.253,
    # -0.211, -0.234), so +0.721 (significant: no †); held-out probe change -0.042, -0.083, -0.042,
    # -0.021, 0.000 by seed: -0.04.
    rrhf = rows["RRHF"][0].split()
    assert rrhf[1:4] == ["0.52", "±0.07", "+0.72"] and rrhf[-1] == "-0.04"
    # best-of-4's difference (+0.62, p = 0.0079 unadjusted) is not significant after the Holm correction
    # over the 21 rows against the baseline (0.0714): marked, and the note says why.
    assert "+0.62†" in rows["best-of-4"][0]
    note = _note(text, "† not significantly")
    assert "Holm over the 21 rows against the baseline" in note and "excludes 0" in note
    assert "alignment tax" in text and "held-out knowledge probes" in text


def test_long_labels_give_way_columns_by_importance_and_say_which():
    results = json.loads((RESULTS / "frontier" / "results.json").read_text())
    text = _printed(results, 80)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    rows = _row_lines(text, [c["label"] for c in results["contenders"]])
    assert all(len(found) == 1 for found in rows.values())
    header = text.splitlines()[1] + text.splitlines()[2]
    for kept in ("gold", "KL", "win", "probe"):
        assert kept in header
    left_out = _note(text, "Left out for width")
    assert "proxy RM" in left_out and "train s" in left_out and "peak MiB" in left_out
    assert "37 of the other 40 rows" in text  # the ties are counted, not listed


def test_a_wide_console_gets_every_column_and_no_left_out_note():
    text = _printed(_results(significant=False), 160)
    for cell in ("dpo (beta=0.1)", "0.40 ±0.03", "+0.12†", "0.61", "3.20", "0.55", "0.50", "-0.04", "-0.05",
                 "12.3", "5321", "812"):
        assert cell in text
    assert "Left out" not in text
    row = _row_lines(text, ["dpo (beta=0.1)"])["dpo (beta=0.1)"][0].split()
    # held-out change -0.04 (given) and the rote probe's change 0.26 − 0.31 = -0.05.
    assert row[-5:-2] == ["-0.04", "-0.05", "12.3"]


def test_the_not_significant_footnote_only_with_a_marked_row():
    assert "† not significantly different from 'sft'" in _printed(_results(significant=False), 80)
    assert "†" not in _printed(_results(significant=True), 80)


def test_a_label_too_long_for_the_first_columns_folds_instead_of_being_cut():
    results = _results(significant=True)
    label = "dpo with a label far longer than any console could hold beside its numbers (beta=0.1)"
    results["contenders"][1]["label"] = label
    text = _printed(results, 80)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and "0.40 ±0.03" in text
    assert "dpo with a label far longer than any console could hold" in text  # folded onto a second line
    assert "beside its numbers (beta=0.1)" in text
    assert "\n  .\n" not in text  # no empty note when every explained column gave way
