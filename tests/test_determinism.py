"""The same config and seed give the same metrics and weights on CPU."""
from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from zoo.config import load_config
from zoo.training_guard import train


def _run(tiny_run, output_dir):
    raw = tiny_run("dpo", output_dir, steps=3)
    train(load_config(raw=raw))
    summary = json.loads((output_dir / "metrics.json").read_text())
    timings = [key for key in summary if "second" in key]  # wall-clock measurements differ by nature
    return {k: v for k, v in summary.items() if k not in timings}, load_file(str(output_dir / "model" / "model.safetensors"))


def test_same_config_and_seed_give_identical_metrics_and_weights(tmp_path, tiny_run):
    first_metrics, first_weights = _run(tiny_run, tmp_path / "first")
    second_metrics, second_weights = _run(tiny_run, tmp_path / "second")
    assert first_metrics == second_metrics
    assert first_metrics["after"]["val/loss"] != first_metrics["before"]["val/loss"]  # it did train
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    first_log = (tmp_path / "first" / "logs" / "metrics.csv").read_text()
    assert first_log == (tmp_path / "second" / "logs" / "metrics.csv").read_text()

