"""A task's further judges in the results: means, paired change from the baseline, and the rows
where a same-property judge disagrees in direction with a significant gold-reward change."""
from __future__ import annotations

from typing import Any

import pytest

from zoo.bench.judges import disagreements, judge_fields, judge_values
from zoo.bench.report.judges import judge_lines


def _stored(per_sample: dict[int, list[float]], k: int) -> dict[str, Any]:
    return {"seeds": {str(seed): judge_values({"judges": {"textblob": scores}}, k)
                      for seed, scores in per_sample.items()}}


def test_judge_fields_are_means_and_paired_changes():
    """Two seeds, two prompts, one sample each. Contender textblob: seed 0 [0.5, 0.1], seed 1 [0.3, 0.3];
    baseline: [0.1, 0.1] and [0.2, 0.0]. Mean = (0.3 + 0.3)/2 = 0.3 (mean of the seed means);
    change: seed 0 [0.4, 0.0] → 0.2, seed 1 [0.1, 0.3] → 0.2; mean 0.2, and with two equal per-seed
    changes the Student-t interval has zero width."""
    mine = _stored({0: [0.5, 0.1], 1: [0.3, 0.3]}, 1)
    base = _stored({0: [0.1, 0.1], 1: [0.2, 0.0]}, 1)
    fields = judge_fields(mine, base, ["0", "1"])["judges"]["textblob"]
    assert fields["interval"]["mean"] == pytest.approx(0.3)
    assert fields["change"]["mean"] == pytest.approx(0.2)
    assert fields["change"]["low"] == pytest.approx(0.2) and fields["change"]["high"] == pytest.approx(0.2)
    # a collapsed seed is left out, as it is of the gold reward; one seed: Student-t over prompts
    # (changes 0.4 and 0.0: mean 0.2, s = 0.2828, half-width t(0.975, 1) · s / √2 = 12.706 · 0.2 = 2.541)
    only_first = judge_fields(mine, base, ["0"])["judges"]["textblob"]
    assert only_first["interval"]["mean"] == pytest.approx(0.3) and only_first["change"]["mean"] == pytest.approx(0.2)
    assert only_first["change"]["high"] == pytest.approx(0.2 + 2.5412, abs=1e-3)
    # two samples a prompt: prompt means first (seed 0: prompts [0.3], change [0.2])
    two = judge_fields(_stored({0: [0.5, 0.1]}, 2), _stored({0: [0.1, 0.1]}, 2), ["0"])["judges"]["textblob"]
    assert two["interval"]["mean"] == pytest.approx(0.3) and two["change"]["mean"] == pytest.approx(0.2)
    assert judge_values({"gold": [1.0]}, 1) == {}
    assert judge_fields({"seeds": {"0": {}}}, {"seeds": {"0": {}}}, ["0"]) == {}


def _contender(label, gold_diff, significant, textblob, distinct, baseline=False):
    interval = {"mean": 0.0, "low": 0.0, "high": 0.0, "covers": "x"}
    return {"label": label, "baseline": baseline,
            "vs_sft": {"significant": significant, "difference_mean": gold_diff},
            "judges": {"textblob": {"interval": {**interval, "mean": 0.2},
                                    "change": {**interval, "mean": textblob, "low": textblob - 0.1,
                                               "high": textblob + 0.1}},
                       "distinct_2": {"interval": {**interval, "mean": 0.9},
                                      "change": {**interval, "mean": distinct, "low": distinct, "high": distinct}}}}


RESULTS = {
    "judges": {"textblob": {"same_property": True, "description": "second lexicon"},
               "distinct_2": {"same_property": False, "description": "repetition"}},
    "contenders": [
        _contender("unaligned", 0.0, False, 0.0, 0.0, baseline=True),
        _contender("hacker", 0.3, True, -0.05, -0.4),    # VADER up, TextBlob down: flagged
        _contender("honest", 0.3, True, 0.1, -0.4),      # both up; distinct-2 is context only
        _contender("noise", -0.1, False, 0.2, 0.0),      # not significant: no verdict
        _contender("flat", -0.2, True, 0.0, 0.0),        # significant, judge unmoved: flagged
    ],
}


def test_disagreements_name_significant_rows_a_same_property_judge_contradicts():
    assert disagreements(RESULTS) == [("hacker", "textblob"), ("flat", "textblob")]


def test_the_judges_section_of_results_md():
    lines = judge_lines(RESULTS)
    assert lines[0] == "## Other judges"
    assert "| run | textblob | Δ textblob | distinct_2 | Δ distinct_2 |" in lines
    assert "| hacker | 0.200 | -0.050 [-0.150, +0.050] | 0.900 | -0.400 [-0.400, -0.400] |" in lines
    assert "| unaligned | 0.200 | – | 0.900 | – |" in lines
    assert any(line.startswith("Rows whose significant gold-reward change") and "hacker (textblob)" in line
               and "flat (textblob)" in line for line in lines)
    assert any("distinct_2`: repetition (context, not a judge of the gold property)" in line for line in lines)
    agreeing = {**RESULTS, "contenders": RESULTS["contenders"][:1] + [RESULTS["contenders"][2]]}
    assert any(line.startswith("Every row significantly different") for line in judge_lines(agreeing))
    assert judge_lines({"contenders": RESULTS["contenders"]}) == []  # a task without judges: no section
