"""``zoo bench configs/bench/smoke.yaml`` end to end: every algorithm, outputs, and stage reuse."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_recompute import assert_recomputes

from zoo.bench.loading import load_bench_config
from zoo.bench.runner import run_bench
from zoo.cli import main
from zoo.registry import get_registry

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "bench" / "smoke.yaml"
SHARED_STAGES = {"task", "init", "pretrain", "sft", "preferences", "reward_model"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench-smoke")
    cache = output / "cache"
    status = main(["bench", str(SMOKE), f"cache_dir={cache}", "--output", str(output)])
    assert status == 0
    return output, cache


def test_results_hold_every_algorithm_and_every_output(smoke_run):
    output, _ = smoke_run
    results = json.loads((output / "results.json").read_text())
    config = results["config"]
    trained = {c["algorithm"] for c in results["contenders"] if c["algorithm"]}
    used = trained | {config["pretrain"]["algorithm"], config["sft"]["algorithm"], config["reward_model"]["algorithm"]}
    assert used == set(get_registry().names("algorithms"))
    labels = [c["label"] for c in results["contenders"]]
    assert labels == [spec["label"] for spec in config["runs"]]
    for contender in results["contenders"]:
        per_seed = contender["seeds"]["0"]
        assert per_seed["samples"] == 16  # 16 prompts, one sample each
        for metric in ("gold", "kl", "proxy", "win_rate", "preference_accuracy", "probe_accuracy"):
            assert per_seed[metric] is not None
        if not contender["baseline"]:
            assert contender["vs_sft"]["test"].startswith("paired t-test")
        online = contender["algorithm"] and get_registry().algorithm(contender["algorithm"]).generates_online
        # a rollout of 8 prompts gives (policy updates or PPO epochs) × minibatches optimiser steps
        args = contender["algorithm_args"]
        updates = int(args.get("policy_updates", args.get("ppo_epochs", 1))) * int(args.get("num_minibatches", 1))
        if online:  # they sample while training
            assert per_seed["samples_generated"] >= per_seed["steps"] * 8 / updates and per_seed["tokens_generated"] > 0
        elif contender["algorithm"]:
            assert per_seed["samples_generated"] == 0
        if contender["algorithm"]:  # steps fitted to the matched FLOPs; a run ends with the rollout that reaches them
            fitted = results["budget"]["rows"][contender["label"]]["steps"]
            assert fitted <= per_seed["steps"] < fitted + updates
            assert per_seed["train_seconds"] > 0 and per_seed["tokens_per_second"] > 0
    baseline = next(c for c in results["contenders"] if c["baseline"])
    assert baseline["seeds"]["0"]["kl"] == 0 and baseline["seeds"]["0"]["win_rate"] == 0.5
    assert baseline["seeds"]["0"]["preference_accuracy"] == 0.5
    best_of_4 = next(c for c in results["contenders"] if c["best_of_n"] == 4)
    assert best_of_4["seeds"]["0"]["kl"] == pytest.approx(1.3862944 - 0.75)  # log 4 − 3/4
    assert results["versions"]["torch"] and results["shared_stages"]["reward_model"]["heldout_accuracy"] is not None
    markdown = (output / "results.md").read_text()
    assert all(f"| {label}" in markdown for label in labels)
    for image in ("frontier.png", "training_curves.png", "pairwise.png"):
        assert (output / image).read_bytes()[:4] == b"\x89PNG"


def test_results_record_the_selection_the_comparisons_and_the_provenance(smoke_run):
    output, _ = smoke_run
    results = json.loads((output / "results.json").read_text())
    selection = results["selections"]["DPO (selected on validation)"]
    assert [t["setting"] for t in selection["trials"]] == [{"algorithm_args.beta": 0.1},
                                                           {"algorithm_args.beta": 1.0}]
    eligible = [t for t in selection["trials"] if not t["failed"]] or selection["trials"]
    assert selection["criterion"] == "proxy"  # what a user has, not the gold oracle
    assert selection["selected"] == max(eligible, key=lambda t: t["proxy"])["setting"]
    # scored on the tuning seed only, which is not a reported seed
    assert all(set(t["validation"]) == {"1000"} for t in selection["trials"])
    assert all(t["failed"] == any(v["kl"] > 20.0 for v in t["validation"].values()) for t in selection["trials"])
    row = next(c for c in results["contenders"] if c["label"] == "DPO (selected on validation)")
    assert row["selected"] and row["setting"] == selection["selected"]
    assert row["algorithm_args"]["beta"] == selection["selected"]["algorithm_args.beta"]
    n = len(results["contenders"])
    assert len(results["comparisons"]["pairs"]) == n * (n - 1) // 2
    assert results["comparisons"]["best"] in results["comparisons"]["tied_with_best"]
    assert {"commit", "clean", "dirty", "source_hash", "packages", "protocol_hash"} <= set(results)
    pair = next(p for p in results["comparisons"]["pairs"] if {p["a"], p["b"]} == {"SFT", "DPO"})
    expected = "reproduced" if pair["significant"] and pair["difference_mean"] * (1 if pair["a"] == "DPO" else -1) > 0 \
        else "contradicted" if pair["significant"] else "not significant"
    markdown = (output / "results.md").read_text()
    assert f"| DPO improves on the SFT model | DPO > SFT | {expected}" in markdown
    baseline = next(c for c in results["contenders"] if c["baseline"])
    correct = baseline["seeds"]["0"]["heldout_probe_accuracy"]
    assert correct == pytest.approx(sum(baseline["seeds"]["0"]["heldout_probe_correct"])
                                    / len(baseline["seeds"]["0"]["heldout_probe_correct"]))
    assert baseline["heldout_probe_interval"]["mean"] == pytest.approx(correct)
    assert baseline["heldout_probe_change"]["mean"] == 0
    assert results["shared_stages"]["task"]["validation_prompts"] == 8
    assert results["shared_stages"]["task"]["test_prompts"] == 16


def test_the_table_is_a_pure_function_of_results_json(smoke_run):
    from zoo.bench.report.files import markdown

    output, _ = smoke_run
    results = json.loads((output / "results.json").read_text())
    assert markdown(results) == (output / "results.md").read_text()
    results["wall_seconds"] = results["cpu_seconds"] = 1e9  # timings never reach the table
    assert markdown(results) == (output / "results.md").read_text()


def test_the_check_recomputes_a_fresh_result(smoke_run):
    """A fresh result recomputes and hashes to today's code; only an uncommitted tree (as in a
    working copy under test) may make it stale."""
    from zoo.bench.check import check_result_file

    output, _ = smoke_run
    verdict = check_result_file(output / "results.json")
    results = json.loads((output / "results.json").read_text())
    problems = [r for r in verdict.reasons if "uncommitted changes" not in r and "every statistic" not in r]
    assert problems == []
    assert verdict.status == (0 if results["clean"] else 1)
    assert_recomputes(results, (output / "results.md").read_text())


def test_a_rerun_trains_nothing_and_an_added_seed_builds_its_own_pipeline(smoke_run):
    output, cache = smoke_run
    config = load_bench_config(SMOKE, [f"cache_dir={cache}"])
    again = run_bench(config, output_dir=output)
    assert again.events and all(status == "reused" for _, _, status in again.events)

    fewer_runs = [{"label": "SFT"}, {"label": "DPO", "algorithm": "dpo"}]
    grown = load_bench_config(SMOKE, [f"cache_dir={cache}", "seeds=[0, 1]", f"runs={json.dumps(fewer_runs)}"])
    run = run_bench(grown, output_dir=output / "grown")
    built = sorted(kind for kind, _, state in run.events if state == "built")
    # Seed 1 redraws the whole pipeline: every shared stage but the task data, DPO and the two evaluations.
    assert built == sorted(["init", "pretrain", "sft", "preferences", "reward_model", "align", "eval", "eval"])
    assert set(run.pipelines) == {0, 1}
    assert run.pipelines[0]["sft"]["fingerprint"] != run.pipelines[1]["sft"]["fingerprint"]
    assert set(run.records["DPO"]) == {0, 1}

    shared_once = load_bench_config(SMOKE, [f"cache_dir={cache}", "seeds=[0, 1]", "seed_scope=alignment",
                                            f"runs={json.dumps(fewer_runs)}"])
    run = run_bench(shared_once, output_dir=output / "shared")
    status = {(kind, key): state for kind, key, state in run.events}
    assert all(state == "reused" for (kind, _), state in status.items() if kind in SHARED_STAGES)
    assert set(run.pipelines) == {0}
