"""Helpers for the online-algorithm tests: a quickly fine-tuned tiny policy and a reward probe.

Random-init policies never produce a rewarded review, so PPO and rejection sampling start, as in
the tiny configs, from a short SFT on ``builtin:tiny_sft``. It is trained once per test session.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

SFT_RUN = {
    "algorithm": "sft",
    "model": {"name": "tiny"},
    "data": {"train": "builtin:tiny_sft", "builtin_size": 512, "eval_fraction": 0.0, "max_length": 64,
             "max_prompt_length": 32},
    "train": {"batch_size": 16, "learning_rate": 3.0e-3, "warmup_steps": 5, "max_epochs": 3, "progress_bar": False,
              "accelerator": "cpu", "devices": 1, "log_every_n_steps": 10},
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run a test module on one intra-op thread: the tiny model's matrices gain nothing from more,
    and on shared CI cores extra threads wait on each other (sampling slowed tens of times)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_sft_model(tmp_path_factory) -> Path:
    """The model directory of a short SFT run, trained on first use in the session."""
    from zoo.config import load_config
    from zoo.training_guard import train

    root = tmp_path_factory.getbasetemp() / "tiny-sft-policy"
    model = root / "model"
    if not (model / "config.json").is_file():
        train(load_config(raw={**SFT_RUN, "output_dir": str(root)}), overwrite=True)
    return model


def heldout_prompts(n: int = 192) -> list[str]:
    """Prompts of the tiny review task from a seed no training run uses."""
    from zoo_plugins.datasets.tiny_reviews import prompt_rows

    return [row["prompt"] for row in prompt_rows(n, 424242)]


def sampled_rewards(model_dir: Path, prompts: list[str], *, seed: int = 7, max_new_tokens: int = 48) -> torch.Tensor:
    """tiny_sentiment of one fresh sample (temperature 1) per prompt from the saved policy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.config import RewardConfig
    from zoo.rollout.batches import encode_prompts
    from zoo.rollout.sampler import Sampler
    from zoo.rewards.loading import load_reward_source

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids, mask = encode_prompts(tokenizer, prompts)
    generation = Sampler(model, tokenizer)(ids, mask, max_new_tokens=max_new_tokens, seed=seed)
    return load_reward_source(RewardConfig(function="tiny_sentiment")).score(prompts, generation.texts)
