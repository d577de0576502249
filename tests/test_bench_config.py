"""Bench config validation: every mistake is a ConfigError naming the key, with a suggestion."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from zoo import ConfigError
from zoo.bench.cache import StageCache, fingerprint
from zoo.bench.config import expand_runs, headline_labels, tuning_seeds
from zoo.bench.loading import load_bench_config

# Other commands' configs may live beside them; bench configs open with the command that runs them.
CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs" / "bench").glob("*.yaml")
                 if p.read_text(encoding="utf-8").startswith("# zoo bench "))

BASE = {
    "task": {"name": "fables"},
    "alignment": {"train": {"max_steps": 10}},
    "runs": [{"label": "SFT"}, {"label": "DPO", "algorithm": "dpo"}],
}


def config_with(**changes):
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return raw


def test_the_shipped_bench_configs_are_found():
    assert {p.name for p in CONFIGS} >= {"tiny.yaml", "frontier.yaml", "smoke.yaml", "gpu_hub_models.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_bench_config_validates_and_says_how_to_run_it(path):
    config = load_bench_config(path)
    assert path.read_text().splitlines()[0] == f"# zoo bench configs/bench/{path.name}"
    assert any(not c.trains and c.spec.best_of_n is None for c in expand_runs(config))


def test_the_default_config_lists_every_policy_algorithm_and_five_seeds():
    from zoo.registry import get_registry

    config = load_bench_config(Path(__file__).resolve().parents[1] / "configs" / "bench" / "tiny.yaml")
    registry = get_registry()
    policy_algorithms = {name for name in registry.names("algorithms") if registry.algorithm(name).output == "logprobs"}
    used = {c.spec.algorithm for c in expand_runs(config) if c.trains} | {config.sft.algorithm}
    assert policy_algorithms <= used
    # a paired test across 3 seeds has 2 degrees of freedom: no claim survives Holm's correction
    assert len(config.seeds) == 5


@pytest.mark.parametrize("raw, message", [
    (config_with(sedes=[0]), r"unknown config key 'sedes' \(did you mean 'seeds'\?\)"),
    (config_with(runs=[{"label": "SFT"}, {"label": "DPO", "algoritm": "dpo"}]),
     r"'runs\[1\]\.algoritm' \(did you mean 'algorithm'\?\)"),
    (config_with(task={"name": "fabels"}), r"task.name: unknown task 'fabels' \(did you mean 'fables'\?\)"),
    (config_with(task={"name": "fables", "args": {"world_sed": 1}}),
     r"'task.args.world_sed' \(did you mean 'world_seed'\?\)"),
    (config_with(runs=[{"label": "SFT"}, {"label": "X", "algorithm": "ddpo"}]),
     r"runs\[1\]\.algorithm: unknown algorithm 'ddpo' \(did you mean 'dpo'\?\)"),
    (config_with(runs=[{"label": "SFT"}, {"label": "X", "algorithm": "dpo", "algorithm_args": {"betta": 1}}]),
     r"algorithm_args.betta' \(did you mean 'beta'\?\)"),
    (config_with(runs=[{"label": "SFT"}, {"label": "X", "algorithm": "dpo", "train": {"learning_rat": 1e-3}}]),
     r"train.learning_rat' \(did you mean 'learning_rate'\?\)"),
    (config_with(runs=[{"label": "SFT"}, {"label": "X", "algorithm": "dpo", "reward": "gold"}]),
     r"runs\['X'\]\.reward = 'gold': algorithm 'dpo' uses no reward source"),
    (config_with(runs=[{"label": "SFT"}, {"label": "X", "algorithm": "dpo", "best_of_n": 4}]),
     r"best_of_n decodes from the SFT model"),
    (config_with(runs=[{"label": "SFT"}, {"label": "X", "algorithm": "reward"}]),
     r"does not train a policy"),
    (config_with(runs=[{"label": "DPO", "algorithm": "dpo"}]), r"must include the SFT baseline"),
    (config_with(runs=[{"label": "SFT"}, {"label": "SFT", "best_of_n": 2}]), r"label 'SFT' is used twice"),
    (config_with(runs=[{"label": "SFT"}, {"label": "X", "algorithm": "dpo", "sweep": {"algorithm_args.beta": []}}]),
     r"sweep.algorithm_args.beta must be a non-empty list"),
    (config_with(runs=[{"label": "SFT"}, {"label": "B", "sweep": {"best_of": [2, 4]}}]),
     r"sweep key 'best_of' cannot be swept \(did you mean 'best_of_n'\?\)"),
    (config_with(runs=[{"label": "SFT"}, {"label": "X", "best_of_n": 0}]), r"best_of_n = 0: must be an integer >= 1"),
    (config_with(evaluation={"suites": ["mmlux"]}), r"unknown suite 'mmlux' \(did you mean 'mmlu'\?\)"),
    (config_with(evaluation={"temperature": 0.7}), r"evaluation.temperature = 0.7: must be 1.0"),
    (config_with(sft={"data": {"train": "x.jsonl"}}), r"sft.data.train / data.eval are chosen by the benchmark"),
    (config_with(pretrain={"train": {"max_step": 3}}), r"'pretrain.train.max_step' \(did you mean 'max_steps'\?\)"),
    (config_with(reward_model={"algorithm": "dpo"}), r"reward_model.algorithm = .dpo.: this stage needs an algorithm that trains a scalar reward model"),
    (config_with(seeds=[0, 0]), r"seeds = \[0, 0\]: a seed is listed twice"),
    (config_with(reward_model={"algorithm": "reward", "preferences": "ranking"}),
     r"reward_model.preferences.*ranking"),
    (config_with(equivalence_margin=0), r"equivalence_margin = 0(\.0)?: must be > 0"),
    (config_with(selection={"criterion": "oracle"}), r"selection.criterion"),
    (config_with(claims=[{"text": "t", "better": "SFT", "worse": "SFT", "outcome": "kl"}]), r"outcome"),
    (config_with(history=[{"when": "then", "seeds": [0], "change": "c", "claims": [{"text": "t"}]}]),
     r"history\[0\]\.claims\[0\] must have exactly the keys text, rows and verdict"),
    (config_with(preferences={"samples_per_prompt": 1}), r"preferences.samples_per_prompt = 1"),
])
def test_bad_configs_are_rejected_with_the_key_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        load_bench_config(raw=raw)


def test_sweeps_expand_into_one_contender_per_value():
    raw = config_with(runs=[{"label": "SFT"},
                            {"label": "DPO", "algorithm": "dpo", "sweep": {"algorithm_args.beta": [0.1, 0.5]}},
                            {"label": "BoN", "sweep": {"best_of_n": [2, 8]}},
                            {"label": "PPO", "algorithm": "ppo", "reward": "gold",
                             "sweep": {"train.learning_rate": [1e-4]}}])
    contenders = expand_runs(load_bench_config(raw=raw))
    assert [c.label for c in contenders] == ["SFT", "DPO (beta=0.1)", "DPO (beta=0.5)", "BoN (best_of_n=2)",
                                             "BoN (best_of_n=8)", "PPO (learning_rate=0.0001)"]
    assert contenders[2].spec.algorithm_args == {"beta": 0.5} and contenders[2].group == "DPO"
    assert contenders[4].spec.best_of_n == 8
    assert contenders[5].spec.train == {"learning_rate": 1e-4}


def test_a_sweep_of_several_keys_is_a_grid_and_select_needs_one():
    raw = config_with(runs=[{"label": "SFT"},
                            {"label": "DPO", "algorithm": "dpo", "select": True,
                             "sweep": {"algorithm_args.beta": [0.1, 0.5], "train.learning_rate": [1e-4, 3e-4]}}])
    config = load_bench_config(raw=raw)
    contenders = expand_runs(config)
    assert [c.label for c in contenders[1:]] == [
        "DPO (beta=0.1, learning_rate=0.0001)", "DPO (beta=0.1, learning_rate=0.0003)",
        "DPO (beta=0.5, learning_rate=0.0001)", "DPO (beta=0.5, learning_rate=0.0003)"]
    assert contenders[3].spec.algorithm_args == {"beta": 0.5} and contenders[3].spec.train == {"learning_rate": 1e-4}
    assert all(c.is_trial for c in contenders[1:]) and not contenders[0].is_trial
    assert headline_labels(config) == ["SFT", "DPO"]
    with pytest.raises(ConfigError, match=r"runs\[1\].select = true needs a sweep"):
        load_bench_config(raw=config_with(runs=[{"label": "SFT"}, {"label": "D", "algorithm": "dpo", "select": True}]))
    with pytest.raises(ConfigError, match=r"tuning_seeds = \[0\]: must list distinct seeds that are not among "
                                          r"the reported seeds \[0\]"):
        load_bench_config(raw=config_with(tuning_seeds=[0]))
    assert tuning_seeds(load_bench_config(raw=config_with(tuning_seeds=[5]))) == [5]
    assert tuning_seeds(load_bench_config(raw=config_with(seeds=[0, 3]))) == [1003]  # never a reported seed


def test_fingerprints_change_with_inputs_upstream_and_version(monkeypatch):
    base = fingerprint("sft", {"lr": 1e-3}, ["a"])
    assert base == fingerprint("sft", {"lr": 1e-3}, ["a"])
    assert base != fingerprint("sft", {"lr": 2e-3}, ["a"])
    assert base != fingerprint("sft", {"lr": 1e-3}, ["b"])
    assert base != fingerprint("dpo", {"lr": 1e-3}, ["a"])
    monkeypatch.setattr("zoo.bench.cache.package_version", lambda: "9.9.9")
    assert base != fingerprint("sft", {"lr": 1e-3}, ["a"])


def test_fingerprints_change_with_the_source_and_the_packages(monkeypatch, tmp_path):
    import importlib.util

    from zoo.bench import sources, versions

    plugin = tmp_path / "my_plugin.py"
    plugin.write_text("X = 1\n")
    spec = importlib.util.spec_from_file_location("my_plugin", plugin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base = fingerprint("align", {"lr": 1e-3}, ["a"], [module])
    assert base == fingerprint("align", {"lr": 1e-3}, ["a"], [module])
    assert base != fingerprint("align", {"lr": 1e-3}, ["a"])  # the plugin's source is part of it
    plugin.write_text("X = 2\n")
    sources._file_digest.cache_clear()
    assert base != fingerprint("align", {"lr": 1e-3}, ["a"], [module])
    plugin.write_text("X = 1\n")
    sources._file_digest.cache_clear()
    assert base == fingerprint("align", {"lr": 1e-3}, ["a"], [module])
    monkeypatch.setattr(sources, "core_source_hash", lambda: "0" * 16)  # an edit to the core
    assert base != fingerprint("align", {"lr": 1e-3}, ["a"], [module])
    monkeypatch.undo()
    monkeypatch.setattr(versions, "package_versions", lambda: {"torch": "0.0"})
    assert base != fingerprint("align", {"lr": 1e-3}, ["a"], [module])


def test_one_list_of_packages_feeds_the_fingerprints_and_the_results():
    """Every recorded package is listed once (zoo.bench.versions); the fingerprinted ones are the
    numerical stack every stage key has always held, so listing them anew moved no cache key."""
    from zoo.bench import versions

    names = [p.name for p in versions.PACKAGES]
    assert len(names) == len(set(names))
    assert set(versions.package_versions()) == {"python", "torch", "transformers", "tokenizers", "lightning", "numpy",
                                                "safetensors", "peft"}
    assert set(versions.recorded_versions()) == {"python", "platform", "device", "alignment-zoo", "torch",
                                                 "transformers", "lightning", "datasets", "peft", "numpy", "scipy"}


def test_stage_cache_builds_once_and_rebuilds_an_interrupted_stage(tmp_path):
    cache = StageCache(tmp_path)
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "out.txt").write_text("x")
        return {"value": len(calls)}

    first = cache.get_or_build("sft", "k1", build)
    again = cache.get_or_build("sft", "k1", build)
    assert not first.reused and again.reused and again.record["value"] == 1 and len(calls) == 1
    (first.path / "done.json").unlink()  # as if the process died before the stage finished
    (first.path / "stale.txt").write_text("left over")
    rebuilt = cache.get_or_build("sft", "k1", build)
    assert not rebuilt.reused and len(calls) == 2 and not (rebuilt.path / "stale.txt").exists()
    assert [status for _, _, status in cache.events] == ["built", "reused", "built"]


def test_two_processes_sharing_a_cache_build_a_stage_once(tmp_path):
    """The second process waits on the stage's lock and then reuses what the first built."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        records = pool.map(_build_slowly, [str(tmp_path)] * 2)
    assert sorted(r["reused"] for r in records) == [False, True]
    assert records[0]["built_by"] == records[1]["built_by"]
    assert (tmp_path / "sft-k1" / "out.txt").read_text() == "1"


def _build_slowly(root):
    import os
    import time

    def build(folder):
        time.sleep(0.5)
        (folder / "out.txt").write_text("1")
        return {"built_by": os.getpid()}

    stage = StageCache(root).get_or_build("sft", "k1", build)
    return {"reused": stage.reused, "built_by": stage.record["built_by"]}


@pytest.mark.parametrize("name", ["smollm2.yaml", "smollm2_gpu.yaml"])
def test_real_model_contenders_get_the_same_prompts(name):
    """Equal budgets in prompts or pairs: PPO's extra minibatch steps per rollout are paid in max_steps, not prompts."""
    config = load_bench_config(Path(__file__).resolve().parents[1] / "configs" / "bench" / name)
    shared = config.alignment.train
    budgets = {}
    for contender in expand_runs(config):
        if not contender.trains:
            continue
        train = {**shared, **contender.spec.train}
        args = contender.spec.algorithm_args
        updates = int(args.get("ppo_epochs", 4 if contender.spec.algorithm == "ppo" else 1)) * \
            int(args.get("num_minibatches", 1))  # optimiser steps per batch of prompts (PPO's defaults: 4 and 1)
        budgets[contender.label] = train["max_steps"] * train["batch_size"] / updates
    assert len(set(budgets.values())) == 1, budgets


def test_the_default_benchmark_keeps_its_earlier_declarations():
    """tiny.yaml's history: the 3-seed run had all 9 claims not significant, with the three online
    claims on the proxy rows; the next declaration moved them to the gold-reward rows. Today's
    declaration keeps those 9 claims as they were and adds its own after them; its first run, on
    the earlier task version, is kept too."""
    config = load_bench_config(Path(__file__).resolve().parents[1] / "configs" / "bench" / "tiny.yaml")
    first, second, third = config.history
    assert first.seeds == [0, 1, 2] and len(first.claims) == 9
    assert all(c["verdict"].startswith("not significant") for c in first.claims)
    assert [c["rows"] for c in first.claims[6:]] == ["GRPO > SFT", "RLOO > SFT", "online DPO > SFT"]
    assert second.seeds == [0, 1, 2, 3, 4]
    assert [c["rows"] for c in second.claims[6:]] == [f"{c.better} > {c.worse}" for c in config.claims[6:9]]
    assert sum(c["verdict"].startswith("reproduced") for c in second.claims) == 7
    # the task changed (test prompts held out in content) after a run of today's declaration: its
    # verdicts stay, claim by claim, beside the unchanged claims
    assert third.seeds == config.seeds and [c["text"] for c in third.claims] == [c.text for c in config.claims]
    assert sum(c["verdict"].startswith("reproduced") for c in third.claims) == 10
    assert config.budget.matched == "flops" and config.selection.criterion == "proxy"
    assert not set(config.tuning_seeds or []) & set(config.seeds)


@pytest.mark.parametrize("preferences, data_file", [("pairs", "pairs.jsonl"), ("rankings", "ranked.jsonl")])
def test_the_proxy_reward_model_learns_from_the_preferences_it_is_told(tmp_path, monkeypatch, preferences, data_file):
    """``reward_model.preferences: rankings`` trains the proxy on every prompt's whole ranking (ranked.jsonl),
    ``pairs`` on the one pair per prompt (pairs.jsonl); the two are different stages."""
    from zoo.bench import evaluate
    from zoo.bench.stages import Stages

    config = load_bench_config(raw=config_with(reward_model={"algorithm": "reward", "preferences": preferences}))
    stages = Stages(config, StageCache(tmp_path / "cache"))
    seen = {}
    monkeypatch.setattr(stages, "_train", lambda folder, where, algorithm, args, train, data, model, data_file,
                        **kw: seen.setdefault("file", data_file) and {"steps": 1})
    monkeypatch.setattr(evaluate, "reward_model_accuracy", lambda model, pairs: 0.5)

    class Upstream:
        path, key = tmp_path / "preferences", "p" * 16

    stage = stages.reward_model(Upstream, "sft-model", "s" * 16)
    assert seen["file"] == tmp_path / "preferences" / data_file
    other_value = "pairs" if preferences == "rankings" else "rankings"
    other = Stages(load_bench_config(raw=config_with(reward_model={"algorithm": "reward", "preferences": other_value})),
                   StageCache(tmp_path / "cache"))
    monkeypatch.setattr(other, "_train", lambda *a, **kw: {"steps": 1})
    assert other.reward_model(Upstream, "sft-model", "s" * 16).key != stage.key
