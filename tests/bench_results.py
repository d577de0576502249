"""A results.json built by hand (no training): stored values for three rows and three seeds, as
:func:`zoo.bench.results.collect` lays them out, for tests of the statistics, the report and the check."""
from __future__ import annotations

import copy
from pathlib import Path

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "bench" / "smoke.yaml"

#: Per seed, the per-prompt mean gold reward of each row on four test prompts (one sample each).
GOLD = {
    "SFT": {"0": [0.0, 1.0, 0.0, 1.0], "1": [0.5, 0.5, 0.5, 0.5], "2": [1.0, 0.0, 1.0, 0.0]},
    "DPO": {"0": [1.0, 2.0, 1.0, 2.0], "1": [2.0, 1.0, 2.0, 2.0], "2": [1.5, 1.5, 2.5, 1.5]},
    "PPO (proxy RM)": {"0": [3.0, 3.0, 2.0, 2.0], "1": [0.0, 0.0, 0.0, 0.0], "2": [-9.0, -9.0, -9.0, -9.0]},
}
KL = {"SFT": 0.0, "DPO": 1.0, "PPO (proxy RM)": 2.0}


def seed_values(label: str, seed: str) -> dict:
    gold = GOLD[label][seed]
    base = GOLD["SFT"][seed]
    return {
        "gold_per_prompt": list(gold), "kl_per_prompt": [KL[label]] * 4, "proxy_per_prompt": [g / 2 for g in gold],
        "length_per_prompt": [10.0] * 4,
        "win_per_prompt": [1.0 if g > b else 0.5 if g == b else 0.0 for g, b in zip(gold, base)],
        "gold_sd": 0.5, "preference_accuracy": 0.5 if label == "SFT" else 0.6, "probe_accuracy": 0.4,
        "heldout_probe_correct": [1, 0, 1, 0] if label == "SFT" else [1, 1, 0, 0],
        "train_seconds": None if label == "SFT" else 2.0, "tokens_per_second": None, "peak_memory_mib": None,
        "steps": None if label == "SFT" else 100, "tokens": None if label == "SFT" else 1000,
        "samples_generated": None if label == "SFT" else 0, "tokens_generated": None if label == "SFT" else 0,
        "parameters": None if label == "SFT" else 5000, "eval_seconds": 1.0, "samples": 4,
        "suites": {},
    }


def stored_results(claims: list[dict] | None = None) -> dict:
    from zoo.bench.loading import load_bench_config
    from zoo.bench.provenance import run_source_hash
    from zoo.bench.results import FORMAT, protocol_hash
    from zoo.bench.versions import package_versions

    runs = [{"label": "SFT"}, {"label": "DPO", "algorithm": "dpo"},
            {"label": "PPO (proxy RM)", "algorithm": "ppo", "algorithm_args": {"max_new_tokens": 24}}]
    claims = claims if claims is not None else [{"text": "DPO improves on the SFT model", "better": "DPO",
                                                  "worse": "SFT"}]
    config = load_bench_config(SMOKE, ["seeds=[0, 1, 2]", f"runs={runs!r}".replace("'", '"'),
                                       f"claims={claims!r}".replace("'", '"')]).to_dict()
    contenders = []
    for run in runs:
        label = run["label"]
        contenders.append({"label": label, "group": label, "algorithm": run.get("algorithm"),
                           "algorithm_args": run.get("algorithm_args", {}), "train": {}, "reward": None,
                           "best_of_n": None, "sweep_key": None, "sweep_value": None, "setting": {},
                           "selected": False, "baseline": label == "SFT",
                           "seeds": {s: seed_values(label, s) for s in ("0", "1", "2")}, "examples": []})
    return {"format": FORMAT, "config": config, "protocol_hash": protocol_hash(config),
            "versions": {"device": "cpu", "alignment-zoo": "0", "torch": "0"}, "commit": "0" * 40, "clean": True,
            "dirty": [], "source_hash": run_source_hash(config), "canary": None, "packages": dict(package_versions()),
            "baseline": "SFT", "seeds": [0, 1, 2], "seed_scope": "pipeline", "shared_stages": {},
            "pipelines": {}, "contenders": contenders, "selections": {},
            "budget": {"matched": "flops", "target": 3e7, "calibration_steps": 2,
                       "rows": {"DPO": {"per_step": 3e5, "steps": 100, "capped": False},
                                "PPO (proxy RM)": {"per_step": 3e5, "steps": 100, "capped": False}}},
            "stages": [], "wall_seconds": 1.0,
            "cpu_seconds": 1.0, "compute_seconds": 0.0, "compute_cpu_seconds": 0.0, "stage_seconds": {}}


def derived_results(**kwargs) -> dict:
    from zoo.bench.results import derive

    return derive(copy.deepcopy(stored_results(**kwargs)))
