"""Every registered algorithm trains end to end on the tiny model.

The list comes from the registry, so an algorithm added by any plugin is covered without
touching this file. Each one runs ``zoo.training_guard.train`` for 2 optimiser steps; offline log-prob
algorithms are also taken through collate → loss → backward → optimiser step by hand, on a batch
of the built-in data set that matches their data shape, in the run :func:`zoo.run.build_run`
builds for them.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from zoo.algorithm import DATA_SHAPES
from zoo.config import load_config
from zoo.registry import get_registry
from zoo.run import build_run
from zoo.training_guard import train

ALGORITHMS = get_registry().names("algorithms")
OFFLINE_LOGPROB = [name for name in ALGORITHMS
                   if not get_registry().algorithm(name).generates_online
                   and get_registry().algorithm(name).output == "logprobs"]


def test_every_data_shape_has_a_matching_tiny_data_set(tiny_data_for_shape):
    registry = get_registry()
    assert set(tiny_data_for_shape) == set(DATA_SHAPES)
    for shape, spec in tiny_data_for_shape.items():
        assert registry.get("datasets", spec.removeprefix("builtin:")).shape == shape


def test_core_algorithms_are_registered():
    assert {"sft", "dpo", "rrhf", "slic_hf"} <= set(ALGORITHMS)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_trains_two_steps(name, tmp_path, tiny_run):
    config = load_config(raw=tiny_run(name, tmp_path / "run", steps=2))
    result = train(config)
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert summary["steps"] >= 2
    if not get_registry().algorithm(name).generates_online:
        assert summary["steps"] == 2  # automatic optimisation: one step per batch
    assert result.metrics_after, "the held-out split produced no metrics"
    assert all(math.isfinite(v) for v in result.metrics_after.values()), result.metrics_after
    assert "val/loss" in result.metrics_after
    assert (tmp_path / "run" / "model" / "config.json").is_file()


@pytest.mark.parametrize("name", OFFLINE_LOGPROB)
def test_collate_loss_backward_step(name, tmp_path, tiny_run):
    cls = get_registry().algorithm(name)
    # The run as `zoo train` builds it; the reference runs on every batch (no cache), four examples, no split.
    run = build_run(load_config(raw=tiny_run(name, tmp_path / "run", data={"builtin_size": 4, "eval_fraction": 0.0},
                                             train={"reference_cache": "off"})))
    batch = run.datamodule.collator(run.datamodule.train_examples)
    assert batch.num_examples == 4

    module, policy, reference = run.module, run.module.policy, run.module.reference
    assert (reference is not None) == cls.needs_reference
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.02)

    out = module.compute_loss(batch)
    assert out.losses.shape == (4,)
    assert torch.isfinite(out.losses).all()
    for metric, value in out.metrics.items():
        assert value.ndim == 0 or value.shape == (4,), metric
        assert torch.isfinite(value).all(), metric
    out.losses.mean().backward()
    embedding_grad = policy.get_input_embeddings().weight.grad
    assert embedding_grad is not None and embedding_grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters() if p.grad is not None)
    if reference is not None:
        assert all(p.grad is None for p in reference.parameters())

    before = out.losses.mean().item()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)  # as the training loop does
    optimizer.step()
    with torch.no_grad():
        after = module.compute_loss(batch).losses.mean().item()
    # one small clipped gradient step lowers the loss on the same batch
    assert after < before, (before, after)
