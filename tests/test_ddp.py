"""Multi-process training: two CPU processes (DDP, gloo) match one process at the same global batch.

Each optimiser step sees the whole training set (16 pairs: one process × 16, or two × 8), so the
gradient is the same full-batch mean whatever order the samplers deal the examples in, and the
two runs must end with the same weights and held-out loss up to float32 reduction order.

With ``data.group_by_length`` each process takes its share of the batch one process makes at the
global batch size, so the runs agree at every step (four steps of 8 pairs here, not one full batch).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file


def _run(tmp_path, name: str, devices: int, batch_size: int, cache_dir, launcher: list[str] | None = None,
         strategy: str = "ddp", **data) -> dict:
    config = {
        "algorithm": "dpo",
        "model": {"name": "tiny", "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                                           "num_key_value_heads": 1}},
        "data": {"train": "builtin:tiny_prefs", "builtin_size": 20, "eval_fraction": 0.2, "max_length": 48,
                 "max_prompt_length": 24, **data},
        "train": {"batch_size": batch_size, "eval_batch_size": 2, "max_epochs": 2, "learning_rate": 5e-3,
                  "accelerator": "cpu", "devices": devices, "strategy": strategy if devices > 1 else "auto",
                  "progress_bar": False, "log_every_n_steps": 1},
        "output_dir": str(tmp_path / name),
    }
    if devices == 1:
        from zoo.config import load_config
        from zoo.training_guard import train

        train(load_config(raw=config))
        output = ""
    else:  # Lightning's launcher re-runs the command line in each further process, so it must be one
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "ZOO_CACHE_DIR": str(cache_dir), "OMP_NUM_THREADS": "1"}
        command = [*(launcher or [sys.executable]), "-m", "zoo.cli", "train", str(path)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        output = done.stdout
    metrics = json.loads((tmp_path / name / "metrics.json").read_text())
    weights = load_file(str(tmp_path / name / "model" / "model.safetensors"))
    return {"metrics": metrics, "weights": weights, "output": output}


def _assert_same_run(single: dict, double: dict, steps: int) -> None:
    assert single["metrics"]["steps"] == double["metrics"]["steps"] == steps
    before, after = single["metrics"]["before"]["val/loss"], single["metrics"]["after"]["val/loss"]
    assert after < before - 1e-3  # the runs learned something, so agreeing is not trivial
    assert double["metrics"]["before"]["val/loss"] == pytest.approx(before, abs=1e-6)
    assert double["metrics"]["after"]["val/loss"] == pytest.approx(after, abs=1e-5)
    for name, weight in single["weights"].items():
        torch.testing.assert_close(double["weights"][name], weight, atol=1e-5, rtol=1e-4)
    # Each process runs the command; only the first reports.
    assert double["output"].count("model, config and metrics written to") == 1
    assert double["output"].count("data: ") == 1


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_match_one_at_the_same_global_batch(tmp_path):
    cache = tmp_path / "cache"
    single = _run(tmp_path, "single", devices=1, batch_size=16, cache_dir=cache)
    double = _run(tmp_path, "ddp", devices=2, batch_size=8, cache_dir=cache)
    _assert_same_run(single, double, steps=2)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_length_grouped_batches_shard_by_process(tmp_path):
    cache = tmp_path / "cache"
    single = _run(tmp_path, "single", devices=1, batch_size=8, cache_dir=cache, group_by_length=True)
    double = _run(tmp_path, "ddp", devices=2, batch_size=4, cache_dir=cache, group_by_length=True)
    _assert_same_run(single, double, steps=4)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_torchrun_launch_matches_one_process(tmp_path):
    """docs/scale.md's cluster recipe: torchrun starts the processes and Lightning joins them
    (its TorchElastic environment) instead of launching its own; the result is the same run."""
    cache = tmp_path / "cache"
    single = _run(tmp_path, "single", devices=1, batch_size=16, cache_dir=cache)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    double = _run(tmp_path, "torchrun", devices=2, batch_size=8, cache_dir=cache, launcher=torchrun)
    _assert_same_run(single, double, steps=2)


@pytest.mark.parametrize("strategy, why", [("ddp_spawn", "cannot be pickled"), ("ddp_fork", "step count"),
                                           ("ddp_notebook_find_unused_parameters_true", "step count")])
def test_strategies_that_start_processes_inside_fit_are_refused_with_the_reason(tmp_path, strategy, why):
    """Lightning's spawn and fork launchers run fit in new processes and hand little back; tried,
    spawn failed to pickle the model's hooks and fork's run wrote 0 steps. The run refuses them
    before training, naming the key, the reason and the strategy to use instead."""
    from zoo.config import load_config
    from zoo.errors import ConfigError
    from zoo.training_guard import train

    config = {"algorithm": "dpo", "model": {"name": "tiny"}, "data": {"train": "builtin:tiny_prefs"},
              "train": {"accelerator": "cpu", "devices": 2, "strategy": strategy, "progress_bar": False},
              "output_dir": str(tmp_path / "run")}
    usable = strategy.replace("ddp_notebook", "ddp").replace("ddp_spawn", "ddp").replace("ddp_fork", "ddp")
    with pytest.raises(ConfigError, match=rf"train.strategy = '{strategy}' starts.*{why}.*Use '{usable}'"):
        train(load_config(raw=config))
