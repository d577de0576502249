"""The verdict sections of results.md, from hand-made results."""
from __future__ import annotations

import pytest

from zoo.bench.claims import claim_verdicts
from zoo.bench.report.comparisons import pairwise_matrix, verdict


def results_with(pairs, failures=None, claims=()):
    labels = ["SFT", "A", "B"]
    failures = failures or {}
    return {"seeds": [0, 1, 2], "config": {"claims": [{"better": b, "worse": w} for b, w in claims]},
            "contenders": [{"label": label, "failures": failures.get(label, 0)} for label in labels],
            "comparisons": {"pairs": pairs}}


def pair(a, b, difference, adjusted_p, p_value=None):
    return {"a": a, "b": b, "difference_mean": difference, "adjusted_p": adjusted_p,
            "significant": adjusted_p < 0.05, "p_value": adjusted_p if p_value is None else p_value}


def test_claims_are_reproduced_contradicted_or_not_significant_in_the_right_direction():
    pairs = [pair("SFT", "A", -0.8, 1.0, p_value=0.01), pair("SFT", "B", 0.3, 1.0, p_value=0.02),
             pair("A", "B", 0.1, 1.0, p_value=0.4)]
    # Holm over the four claims' p-values (.01, .01, .02, .4): 4 × .01, 4 × .01, 2 × .02, 1 × .4.
    verdicts = claim_verdicts(results_with(pairs, claims=[("A", "SFT"), ("SFT", "A"), ("B", "SFT"), ("A", "B")]))
    assert verdicts[0] == "reproduced (+0.80, Holm-adjusted p = 0.040)"  # the pair is stored as SFT − A
    assert verdicts[1] == "contradicted (-0.80, Holm-adjusted p = 0.040)"
    assert verdicts[2] == "contradicted (-0.30, Holm-adjusted p = 0.040)"
    assert verdicts[3] == "not significant (+0.10, Holm-adjusted p = 0.40)"
    # The matrix's own correction (adjusted_p 1.0 over all pairs) does not decide a declared claim.
    alone = claim_verdicts(results_with(pairs, claims=[("A", "SFT")]))
    assert alone == ["reproduced (+0.80, Holm-adjusted p = 0.010)"]
    tiny_p = [pair("SFT", "A", -0.8, 1.0, p_value=2e-5)]
    assert claim_verdicts(results_with(tiny_p, claims=[("A", "SFT")])) == ["reproduced (+0.80, Holm-adjusted p < 0.001)"]
    collapsed = claim_verdicts(results_with(pairs, failures={"B": 3}, claims=[("A", "B"), ("A", "SFT")]))
    assert collapsed == ["cannot tell: every seed of 'B' collapsed", "reproduced (+0.80, Holm-adjusted p = 0.010)"]


def test_the_pairwise_matrix_is_antisymmetric_and_says_not_significant():
    header, body = pairwise_matrix(results_with([pair("SFT", "A", -0.8, 0.01), pair("SFT", "B", 0.3, 0.2),
                                                 pair("A", "B", 1.1, 0.03)]))
    assert header == ["row − column", "1", "2", "3"]
    assert body[0] == ["1. SFT", "·", "-0.80 (p=0.010)", "+0.30 n.s."]
    assert body[1] == ["2. A", "+0.80 (p=0.010)", "·", "+1.10 (p=0.030)"]
    assert body[2] == ["3. B", "-0.30 n.s.", "-1.10 (p=0.030)", "·"]


def test_the_vs_best_cell_gives_the_difference_its_interval_and_the_verdict():
    assert verdict({"best": True}) == "best"
    row = {"difference_mean": -0.4, "low": -0.9, "high": 0.1, "verdict": "cannot tell"}
    assert verdict({"best": False, "vs_best": row}) == "-0.40 [-0.90, +0.10]: cannot tell"
    one = {**row, "low": float("nan"), "high": float("nan"), "verdict": "cannot tell"}
    assert verdict({"best": False, "vs_best": one}) == "-0.40: cannot tell"


def test_derived_rows_of_a_hand_made_result():
    """Hand-made per-seed gold (tests/bench_results.py), per-seed means: SFT 0.5, 0.5, 0.5; DPO 1.5,
    1.75, 1.75; PPO 2.5, 0, −9. PPO's seed 2 collapses (−9 < 0.5 − 1 · 0.5). DPO is best (mean 5/3);
    SFT − DPO = (−1, −1.25, −1.25): mean −7/6, s = √(1/48), t = −14 with 2 df, two-sided p =
    1 − 14/√198 = 0.005063 (one comparison of the 2 with a smaller p; Holm doubles it at most).
    PPO − DPO on seeds 0, 1 = (1, −1.75): mean −0.375, one-df t interval ±12.706 · 1.375 = ±17.47:
    "cannot tell". Collapse: 0/3 → [0, 1 − 0.025^(1/3)] = [0, 0.7076]; 1/3 → Clopper–Pearson
    [0.0084, 0.9057]; McNemar against SFT with one discordant seed: p = 1."""
    from bench_results import derived_results

    results = derived_results()
    rows = {c["label"]: c for c in results["contenders"]}
    assert results["comparisons"]["best"] == "DPO"
    sft = rows["SFT"]["vs_best"]
    assert sft["difference_mean"] == pytest.approx(-7 / 6) and sft["p_value"] == pytest.approx(1 - 14 / 198 ** 0.5)
    assert sft["verdict"] == "below best"
    ppo = rows["PPO (proxy RM)"]["vs_best"]
    assert ppo["n"] == 2 and ppo["difference_mean"] == pytest.approx(-0.375) and ppo["verdict"] == "cannot tell"
    assert ppo["high"] - ppo["difference_mean"] == pytest.approx(12.7062047 * 1.375)
    assert rows["PPO (proxy RM)"]["seeds"]["2"]["failed"] and rows["PPO (proxy RM)"]["failures"] == 1
    collapse = rows["PPO (proxy RM)"]["collapse"]
    assert (collapse["collapsed"], collapse["seeds"], collapse["vs_sft_p"]) == (1, 3, 1.0)
    assert (collapse["low"], collapse["high"]) == pytest.approx((0.0084038, 0.9057007), abs=1e-6)
    assert rows["DPO"]["collapse"]["high"] == pytest.approx(1 - 0.025 ** (1 / 3))
    assert rows["PPO (proxy RM)"]["gold_interval"]["mean"] == pytest.approx(1.25)  # kept seeds 0 and 1
    assert [rows["DPO"]["seeds"][s]["gold_vs_sft"] for s in "012"] == pytest.approx([1.0, 1.25, 1.25])
    assert rows["DPO"]["summary"]["gold_vs_sft"]["mean"] == pytest.approx(7 / 6)
    # Δ vs SFT is a family of the 2 rows against the baseline (PPO − SFT on seeds 0, 1 = (2, −0.5): p
    # far larger), so Holm doubles DPO's p; over all 3 pairs it would have tripled it.
    assert rows["DPO"]["vs_sft"]["adjusted_p"] == pytest.approx(2 * (1 - 14 / 198 ** 0.5))
    assert rows["DPO"]["vs_sft"]["significant"]
    assert results["comparisons"]["vs_sft_correction"] == "Holm over the 2 rows against the baseline"


def test_a_collapse_claim_is_tested_by_mcnemar_on_the_seeds():
    """Claim "SFT collapses less than PPO": PPO collapsed on seed 2 only, SFT never: one discordant
    seed in the claimed direction, rate difference +1/3, McNemar p = 1: not significant."""
    from bench_results import derived_results

    claims = [{"text": "t", "better": "SFT", "worse": "PPO (proxy RM)", "outcome": "collapse"}]
    results = derived_results(claims=claims)
    assert claim_verdicts(results) == ["not significant (+0.33, Holm-adjusted p = 1.00)"]
    for seed in ("0", "1"):  # two more collapses of PPO: 3 of 3 discordant, p = 2 · (1/2)³ = 0.25
        results["contenders"][2]["seeds"][seed]["failed"] = True
    assert claim_verdicts(results) == ["not significant (+1.00, Holm-adjusted p = 0.25)"]


def test_a_changed_protocol_keeps_the_earlier_verdicts_in_the_history(tmp_path):
    from bench_results import derived_results

    from zoo.bench.report.files import write_outputs

    first = derived_results()
    write_outputs(first, tmp_path)
    again = derived_results()  # the same declaration: nothing enters the history
    write_outputs(again, tmp_path)
    assert again["protocol_history"] == []
    changed = derived_results(claims=[{"text": "PPO beats DPO", "better": "PPO (proxy RM)", "worse": "DPO"}])
    write_outputs(changed, tmp_path)
    (entry,) = changed["protocol_history"]
    assert entry["protocol_hash"] == first["protocol_hash"] != changed["protocol_hash"]
    assert entry["claims"] == [{"text": "DPO improves on the SFT model", "rows": "DPO > SFT",
                                "verdict": claim_verdicts(first)[0]}]
    text = (tmp_path / "results.md").read_text()
    assert "## Protocol history" in text and "| DPO improves on the SFT model | DPO > SFT | reproduced" in text
    later = derived_results()  # back to the first declaration: both earlier ones are kept, in order
    write_outputs(later, tmp_path)
    assert [e["protocol_hash"] for e in later["protocol_history"]] == [first["protocol_hash"],
                                                                        changed["protocol_hash"]]


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    from zoo.bench.report.comparisons import wilson_interval

    for correct, n in [(20, 40), (3, 40), (40, 40), (0, 12), (19, 50)]:
        expected = binomtest(correct, n).proportion_ci(method="wilson")
        low, high = wilson_interval(correct / n, n)
        assert abs(low - expected.low) < 1e-6 and abs(high - expected.high) < 1e-6


def _contender(label, suites, length, baseline=False):
    return {"label": label, "baseline": baseline, "seeds": {"0": {"suites": suites}},
            "summary": {"length": {"mean": length, "ci95": float("nan"), "n": 1}}}


def test_suite_section_shows_each_run_beside_the_baseline_with_intervals():
    from zoo.bench.report.comparisons import suite_lines, wilson_interval

    results = {"seeds": [0], "config": {"evaluation": {"suite_limit": 40}},
               "contenders": [_contender("unaligned", {"arc_easy": {"acc": 0.5}}, 30.0, baseline=True),
                              _contender("DPO", {"arc_easy": {"acc": 0.6}}, 25.5)]}
    lines = suite_lines(results)
    assert lines[0] == "## Evaluation suites: the alignment tax"
    header = next(line for line in lines if line.startswith("| run"))
    assert header == "| run | response length | arc_easy acc |"
    low, high = wilson_interval(0.6, 40)
    dpo = next(line for line in lines if line.startswith("| DPO"))
    assert dpo == f"| DPO | 25.5 | 0.60 [{low:.2f}, {high:.2f}] (+0.10) |"
    base = next(line for line in lines if line.startswith("| unaligned"))
    assert "(" not in base.split("|")[3].split("]")[1]  # no change column for the baseline itself
    assert suite_lines({**results, "contenders": [_contender("x", {}, 1.0, baseline=True)]}) == []


def test_human_labelled_tasks_say_the_judge_is_the_proxy():
    from zoo.bench.report.comparisons import human_labels

    assert human_labels({"shared_stages": {"preferences": {"labels": "human"}}})
    assert not human_labels({"shared_stages": {"preferences": {"pairs": 3}}, "pipelines": {"0": {}}})


def test_budget_names_the_matched_quantity_and_shows_the_others():
    """No init stage (a pretrained model): N comes from the trained runs. PPO: 32 steps of batch 8 =
    256 prompts drawn, FLOPs 6·2000·1000 + 2·2000·500 = 1.4e7; DPO: 10 steps, 6·2000·1500 = 1.8e7,
    so the FLOPs span 1.8e7 / 1.4e7 = 1.29×."""
    from zoo.bench.report.costs import budget_lines

    def summary(**values):
        keys = ("steps", "tokens", "samples_generated", "tokens_generated", "parameters", "flops")
        return {key: {"mean": values.get(key, float("nan"))} for key in keys}

    results = {"shared_stages": {"task": {}}, "selections": {}, "config": {"alignment": {"train": {"batch_size": 8}}},
               "budget": {"matched": "flops", "target": 1.6e7, "calibration_steps": 2,
                          "rows": {"PPO": {"steps": 32, "capped": False}, "DPO": {"steps": 10, "capped": True}}},
               "contenders": [{"label": "unaligned", "summary": summary()},
                              {"label": "PPO", "summary": summary(steps=32, tokens=1000, samples_generated=64,
                                                                  tokens_generated=500, parameters=2000, flops=1.4e7)},
                              {"label": "DPO", "summary": summary(steps=10, tokens=1500, samples_generated=0,
                                                                  tokens_generated=0, parameters=2000, flops=1.8e7)}]}
    text = "\n".join(budget_lines(results))
    assert "N = 2,000 parameters" in text
    assert "Matched: training FLOPs, target 1.6e+07 per run" in text and "spans 1.29×" in text
    assert "| PPO | 32 | 256 | 64 | 500 | 1000 | 1.40e+07 |" in text
    assert "| DPO | 10 (capped) | 80 | 0 | 0 | 1500 | 1.80e+07 |" in text
    assert "unaligned" not in text  # it trains nothing
    results["budget"] = {"matched": "steps", "target": 32, "rows": {}}
    assert "Matched: optimiser steps (32 each)" in "\n".join(budget_lines(results))


def test_time_table_gives_each_contenders_training_and_evaluation_minutes():
    from zoo.bench.report.costs import time_lines

    def contender(label, train, evaluation):
        return {"label": label, "summary": {"train_seconds": {"mean": train}, "eval_seconds": {"mean": evaluation}}}

    results = {"contenders": [contender("unaligned", None, 90.0), contender("DPO", 150.0, 120.0)],
               "compute_seconds": 3600.0, "compute_cpu_seconds": 6000.0,
               "stage_seconds": {"align": {"wall": 150.0, "cpu": 290.0}}}
    text = "\n".join(time_lines(results))
    assert "| unaligned | – | 1.5 |" in text and "| DPO | 2.5 | 2.0 |" in text
    assert "60.0 min wall, 100.0 min CPU time (align 2.5 (4.8 CPU))" in text
    assert time_lines({"contenders": [contender("unaligned", None, None)]}) == []  # nothing measured, no table


def test_the_seed_note_names_only_the_stages_a_seed_redraws():
    from zoo.bench.report.comparisons import redrawn_stages

    scratch = {"seed_scope": "pipeline", "pipelines": {"0": {
        "task": {}, "init": {}, "pretrain": {}, "sft": {}, "preferences": {"labels": "gold"}, "reward_model": {}}}}
    assert redrawn_stages(scratch) == ["initial weights", "pretraining", "SFT", "preference data",
                                       "proxy reward model", "alignment run", "evaluation samples"]
    # a pretrained model on human-labelled pairs: no weights are drawn and the pairs are data
    pretrained = {"seed_scope": "pipeline", "pipelines": {"0": {
        "task": {}, "preferences": {"labels": "human"}, "reward_model": {}}}}
    assert redrawn_stages(pretrained) == ["proxy reward model", "alignment run", "evaluation samples"]
