"""Rejection sampling: best-of-n selection (with min_score), the SFT loss on kept samples, round
state, and a short run that raises the tiny_sentiment reward of fresh samples on held-out prompts."""
from __future__ import annotations

import pytest
import torch

from zoo import ConfigError
from zoo.algorithm import ExperienceContext
from zoo.batch import Batch
from zoo.bench.stats import mean_ci
from zoo.config import load_config
from zoo.rewards.sources import FunctionReward, RewardFunction
from zoo.rollout.batches import encode_prompts, select_best
from zoo.rollout.sampler import Sampler
from zoo.tiny import tiny_model
from zoo.training_guard import train
from zoo_plugins.algorithms.rejection_sampling import RejectionSampling, RejectionSamplingArgs, best_response_nll
from tiny_policy import heldout_prompts, one_torch_thread, sampled_rewards, tiny_sft_model  # noqa: F401


def test_select_best_with_and_without_min_score():
    scores = torch.tensor([[0.5, 2.0, 2.0, -1.0], [-3.0, -2.0, -2.5, -4.0], [1.0, 0.0, 0.9, 0.2]])
    index, keep = select_best(scores)
    assert index.tolist() == [1, 1, 0]  # the first of tied best samples
    assert keep.tolist() == [True, True, True]
    index, keep = select_best(scores, min_score=1.0)
    assert index.tolist() == [1, 1, 0]
    assert keep.tolist() == [True, False, True]  # −2.0 < 1.0 is dropped; a best equal to min_score is kept


def test_best_response_nll():
    """log-probs (−4, −6) over (2, 4) tokens: per-example −logp / mean length 3 → (4/3, 2), whose
    mean 5/3 is the token-level NLL 10/6; per-token NLL (2, 1.5)."""
    out = best_response_nll(torch.tensor([-4.0, -6.0]), torch.tensor([2, 4]))
    torch.testing.assert_close(out.losses, torch.tensor([4 / 3, 2.0]))
    assert out.losses.mean().item() == pytest.approx(10 / 6)
    torch.testing.assert_close(out.metrics["nll_per_token"], torch.tensor([2.0, 1.5]))


@pytest.fixture(scope="module")
def setting(tokenizer):
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    # reward = response length in characters, so the best sample of each prompt is easy to recompute
    reward = FunctionReward(RewardFunction("length", lambda prompts, responses: [len(r) for r in responses]))
    prompts = ["Review the soup:", "Review the film:", "Hi"]
    ids, mask = encode_prompts(tokenizer, prompts)
    batch = Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool), group_size=1,
                  valid=torch.ones(3, 1, dtype=torch.bool), prompt_ids=ids, prompt_attention_mask=mask, prompts=prompts)
    return policy, reward, batch


def _context(policy, reward, tokenizer, *, training: bool, epoch: int = 0) -> ExperienceContext:
    return ExperienceContext.for_run(policy, tokenizer, reward=reward, epoch=epoch, training=training)


def test_experience_keeps_the_best_sample_of_each_prompt(setting, tokenizer):
    policy, reward, batch = setting
    algorithm = RejectionSampling(RejectionSamplingArgs(samples_per_prompt=4, max_new_tokens=12, sft_epochs=2))
    torch.manual_seed(0)
    ids = batch.prompt_ids
    all_samples = Sampler(policy, tokenizer)(ids, batch.prompt_attention_mask, max_new_tokens=12, temperature=0.8,
                                             samples_per_prompt=4)
    torch.manual_seed(0)  # the experience step draws the same samples
    experience = algorithm.make_experience(_context(policy, reward, tokenizer, training=True), batch)
    lengths = torch.tensor([len(t) for t in all_samples.texts], dtype=torch.float32).view(3, 4)
    best = lengths.max(1).values
    assert experience.input_ids.shape[0] == 3 and experience.prompts == batch.prompts
    kept = [tokenizer.decode(row[m], skip_special_tokens=True)
            for row, m in zip(experience.input_ids, experience.loss_mask)]
    assert [float(len(t)) for t in kept] == best.tolist()
    torch.testing.assert_close(experience.extras["reward_best"], best)
    torch.testing.assert_close(experience.extras["reward_mean"], lengths.mean(1))
    assert len(list(algorithm.minibatches(experience))) == 2  # sft_epochs passes


def test_min_score_filters_training_but_not_validation(setting, tokenizer):
    policy, reward, batch = setting
    algorithm = RejectionSampling(RejectionSamplingArgs(samples_per_prompt=2, max_new_tokens=4, min_score=1000.0))
    ctx = _context(policy, reward, tokenizer, training=True)
    experience = algorithm.make_experience(ctx, batch)
    assert experience.input_ids.shape[0] == 0
    assert list(algorithm.minibatches(experience)) == []  # no optimiser step on an empty kept set
    assert float(ctx.metrics["kept_fraction"]) == 0.0
    validation = algorithm.make_experience(_context(policy, reward, tokenizer, training=False), batch)
    assert validation.input_ids.shape[0] == 3
    assert algorithm.stats.prompts == 3  # validation does not count towards the round


def test_rounds_follow_epochs_and_survive_a_state_round_trip(setting, tokenizer):
    policy, reward, batch = setting
    algorithm = RejectionSampling(RejectionSamplingArgs(samples_per_prompt=2, max_new_tokens=4))
    for epoch in (0, 0, 1):
        algorithm.make_experience(_context(policy, reward, tokenizer, training=True, epoch=epoch), batch)
    assert algorithm.stats.round == 1 and algorithm.stats.prompts == 3
    assert [h["round"] for h in algorithm.history] == [0] and algorithm.history[0]["prompts"] == 6
    resumed = RejectionSampling(RejectionSamplingArgs(samples_per_prompt=2, max_new_tokens=4))
    resumed.load_state_dict(algorithm.state_dict())
    assert resumed.stats == algorithm.stats and resumed.history == algorithm.history


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    return tiny_sft_model(tmp_path_factory)


def test_rejection_sampling_raises_the_reward_of_fresh_samples(sft_model, tmp_path):
    """Two rounds over 128 prompts, best of 8 at temperature 0.8, two SFT steps per batch: the mean
    tiny_sentiment of one fresh sample per held-out prompt rises beyond both 95% intervals."""
    prompts = heldout_prompts()
    before = sampled_rewards(sft_model, prompts)
    config = load_config(raw={
        "algorithm": "rejection_sampling",
        "algorithm_args": {"samples_per_prompt": 8, "max_new_tokens": 40, "sft_epochs": 2},
        "model": {"name": str(sft_model)},
        "data": {"train": "builtin:tiny_prompts", "builtin_size": 128, "eval_fraction": 0.0, "max_length": 96,
                 "max_prompt_length": 32},
        "reward": {"function": "tiny_sentiment"},
        "train": {"batch_size": 16, "learning_rate": 1.0e-3, "scheduler": "constant", "max_epochs": 2,
                  "progress_bar": False, "accelerator": "cpu", "devices": 1, "log_every_n_steps": 5},
        "output_dir": str(tmp_path / "rs"),
    })
    result = train(config)
    after = sampled_rewards(tmp_path / "rs" / "model", prompts)
    before, after = mean_ci(before.tolist()), mean_ci(after.tolist())
    assert after.low > before.high, (before, after)
    assert after.mean - before.mean > 0.5
    algorithm = result.module.algorithm
    assert algorithm.stats.round == 1 and [h["round"] for h in algorithm.history] == [0]
    assert algorithm.history[0]["prompts"] == 128


def test_the_old_spelling_of_the_sample_count_gets_an_error_with_the_new_one():
    with pytest.raises(ConfigError, match=r"algorithm_args\.n' is now spelled 'algorithm_args\.samples_per_prompt'"):
        RejectionSampling.parse_args({"n": 8})
