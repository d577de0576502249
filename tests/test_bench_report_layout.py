"""The bench table fits an 80-column console (stacked in two), and the † footnote only appears with a †."""
from __future__ import annotations

import io

from rich.console import Console

from zoo.bench.report import print_report


def _summary(value: float, half: float | None = 0.031) -> dict:
    return {"mean": value, "ci95": half}


def _contender(label: str, baseline: bool, significant: bool) -> dict:
    s = {name: _summary(v) for name, v in (("gold", 0.4), ("gold_vs_sft", 0.12), ("win_rate", 0.61), ("kl", 3.2),
                                           ("proxy", 0.55), ("preference_accuracy", 0.5))}
    s.update(probe_accuracy=_summary(0.31, None), train_seconds=_summary(12.3, None),
             tokens_per_second=_summary(5321.0, None), peak_memory_mib=_summary(812.0, None))
    return {"label": label, "baseline": baseline, "summary": s, "vs_sft": {"significant": significant}}


def _results(significant: bool) -> dict:
    return {"config": {"task": {"name": "fables"}}, "seeds": [0, 1, 2], "significance_test": "paired t-test",
            "shared_stages": {}, "comparisons": {"best": "sft", "tied_with_best": [], "correction": "Holm"},
            "contenders": [_contender("sft", True, True),
                                                _contender("dpo (beta=0.1)", False, significant),
                                                _contender("rejection_sampling", False, True)]}


def _printed(results: dict, width: int) -> str:
    buffer = io.StringIO()
    print_report(results, Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue()


def test_narrow_console_gets_the_table_in_two_parts_within_80_columns():
    text = _printed(_results(significant=False), 80)
    assert max(len(line) for line in text.splitlines() if not line.startswith("  ")) <= 80
    assert "reward and KL" in text and "other metrics and cost" in text
    assert text.count("rejection_sampling") == 2  # each part names every run in full
    assert "…" not in text  # nothing cut off: labels and numbers whole
    for cell in ("dpo (beta=0.1)", "rejection_sampling", "+0.12", "± 0.03", "5321", "812"):
        assert cell in text
    wide = _printed(_results(significant=False), 220)
    assert "reward and KL" not in wide and max(len(line) for line in wide.splitlines()) > 80


def test_the_not_significant_footnote_only_with_a_marked_row():
    assert "† the gold-reward difference" in _printed(_results(significant=False), 220)
    assert "†" not in _printed(_results(significant=True), 220)
