"""Every registered algorithm trains end to end on the tiny model.

The list comes from the registry, so an algorithm added by any plugin is covered without
touching this file. Each one runs ``zoo.train.train`` for 2 optimiser steps; offline log-prob
algorithms are also taken through collate → loss → backward → optimiser step by hand, on a batch
of the built-in data set that matches their data shape.
"""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from zoo.algorithm import DATA_SHAPES
from zoo.config import DataConfig, TrainConfig, load_config
from zoo.data.dataset import load_examples
from zoo.datamodule import AlignmentDataModule
from zoo.models import frozen
from zoo.module import AlignmentModule
from zoo.registry import get_registry
from zoo.tiny import tiny_model
from zoo.train import train

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
def test_collate_loss_backward_step(name, tokenizer, tiny_data_for_shape):
    cls = get_registry().algorithm(name)
    algorithm = cls(cls.parse_args({}))
    data = DataConfig(train=tiny_data_for_shape[cls.data_shape], builtin_size=4, max_length=48, max_prompt_length=24)
    examples, _ = load_examples(data.train, "train", cls.data_shape, data, tokenizer)
    batch = AlignmentDataModule(data, tokenizer, cls.data_shape, batch_size=4).collator(examples)
    assert batch.num_examples == 4

    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                        num_key_value_heads=1)
    reference = frozen(copy.deepcopy(policy)) if cls.needs_reference else None
    reward = None
    if cls.needs_reward:
        from zoo.config import RewardConfig
        from zoo.rewards import load_reward_source

        reward = load_reward_source(RewardConfig(function="tiny_sentiment"), tokenizer=tokenizer)
    module = AlignmentModule(policy, algorithm, TrainConfig(), reference=reference, reward=reward,
                             tokenizer=tokenizer)
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
