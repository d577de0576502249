"""GRPO: group advantages, the three aggregations, the clip and the k3 KL on hand-worked numbers;
DAPO's dropped groups; conformance."""
from __future__ import annotations

import math

import pytest
import torch

from zoo import ExperienceContext
from zoo.batch import Batch
from zoo.losses import group_advantages, kl_k3 as k3
from zoo.rewards.sources import FunctionReward, RewardFunction
from zoo.rollout.batches import encode_prompts
from zoo.testing import assert_algorithm_conforms
from zoo.tiny import tiny_model
from zoo_plugins.algorithms.grpo import GRPO, GRPOArgs, grpo_loss
from tiny_policy import one_torch_thread  # noqa: F401  (autouse)

# A group of 4 with rewards 1, 2, 3, 6: mean 3, deviations (−2, −1, 0, 3), Bessel variance
# (4 + 1 + 0 + 9)/3 = 14/3, std √(14/3) = 2.1602469.
REWARDS = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
STD = math.sqrt(14 / 3)
SCALED = [-2 / STD, -1 / STD, 0.0, 3 / STD]  # (−0.9258201, −0.4629100, 0, 1.3887301)
LENGTHS = [1, 2, 3, 4]  # response tokens of the four responses


def _rows(lengths, width=5):
    """A mask with ``lengths[i]`` response tokens per row (after one prompt token) and zero log-probs."""
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, 1:1 + n] = True
    return torch.zeros(len(lengths), width), mask


def test_group_advantages_by_hand():
    torch.testing.assert_close(group_advantages(REWARDS, scale=True, eps=0.0), torch.tensor([SCALED]))
    torch.testing.assert_close(group_advantages(REWARDS, scale=False), torch.tensor([[-2.0, -1.0, 0.0, 3.0]]))
    # equal rewards: zero advantage (the ε keeps the division finite)
    assert group_advantages(torch.ones(1, 4), scale=True).abs().max() == 0


@pytest.mark.parametrize("aggregation, advantages, expected", [
    # per-response mean of −Â_i (ρ = 1), then mean: the responses' lengths do not matter
    ("grpo", SCALED, [2 / STD, 1 / STD, 0.0, -3 / STD]),
    # −Â_i · |y_i| / L_max with unscaled advantages and L_max = 4: (2·1, 1·2, 0, −3·4)/4
    ("dr_grpo", [-2.0, -1.0, 0.0, 3.0], [0.5, 0.5, 0.0, -3.0]),
    # −Â_i · |y_i| / mean |y| (= 2.5): the batch mean is Σ −Â_i |y_i| / Σ |y_i|
    ("dapo", SCALED, [2 / STD / 2.5, 2 / STD / 2.5, 0.0, -12 / STD / 2.5]),
])
def test_each_aggregation_by_hand(aggregation, advantages, expected):
    logps, mask = _rows(LENGTHS)
    logps.requires_grad_(True)
    out = grpo_loss(logps, logps.detach(), torch.tensor(advantages), mask, aggregation=aggregation, clip_low=0.2,
                    clip_high=0.2, max_tokens=4)
    torch.testing.assert_close(out.losses, torch.tensor(expected))
    # the gradient raises the log-probs of the better-than-average response and lowers the worst one's
    (grad,) = torch.autograd.grad(out.losses.mean(), logps)
    assert grad[3, 1] < 0 < grad[0, 1]
    normaliser = {"grpo": 4 * torch.tensor(LENGTHS, dtype=torch.float32), "dr_grpo": torch.full((4,), 16.0),
                  "dapo": torch.full((4,), 10.0)}[aggregation]
    torch.testing.assert_close(grad[:, 1], -torch.tensor(advantages) / normaliser)


def test_dapo_mean_is_the_token_mean():
    logps, mask = _rows(LENGTHS)
    out = grpo_loss(logps, logps, torch.tensor(SCALED), mask, aggregation="dapo", clip_low=0.2, clip_high=0.2)
    total = -sum(a * n for a, n in zip(SCALED, LENGTHS)) / sum(LENGTHS)  # −3.7032804 / 10
    assert out.losses.mean().item() == pytest.approx(total, abs=1e-6)


def test_decoupled_clip_and_k3_by_hand():
    """One token each. A = +1 at ρ = 1.5 is clipped at 1 + ε_high; A = −1 at ρ = 0.5 at 1 − ε_low."""
    logps, mask = _rows([1, 1])
    old = logps.clone()
    old[0, 1], old[1, 1] = -math.log(1.5), -math.log(0.5)
    advantages = torch.tensor([1.0, -1.0])
    out = grpo_loss(logps, old, advantages, mask, aggregation="grpo", clip_low=0.2, clip_high=0.28)
    torch.testing.assert_close(out.losses, torch.tensor([-1.28, 0.8]))
    assert out.metrics["clip_frac"].item() == 1.0
    symmetric = grpo_loss(logps, old, advantages, mask, aggregation="grpo", clip_low=0.2, clip_high=0.2)
    torch.testing.assert_close(symmetric.losses, torch.tensor([-1.2, 0.8]))
    # k3 at log π = −1, log π_ref = −1.5: e^−0.5 + 0.5 − 1 = 0.1065307; with Â = 0 the loss is β·k3
    policy = torch.tensor([[0.0, -1.0]])
    reference = torch.tensor([[0.0, -1.5]])
    assert k3(policy, reference)[0, 1].item() == pytest.approx(math.exp(-0.5) - 0.5, abs=1e-6)
    kl_out = grpo_loss(policy, policy, torch.zeros(1), torch.tensor([[False, True]]), aggregation="grpo",
                       clip_low=0.2, clip_high=0.2, ref_logps=reference, kl_coef=0.04)
    assert kl_out.losses.item() == pytest.approx(0.04 * (math.exp(-0.5) - 0.5), abs=1e-7)


def _prompts(tokenizer, texts):
    ids, mask = encode_prompts(tokenizer, texts)
    return Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool), group_size=1,
                 valid=torch.ones(len(texts), 1, dtype=torch.bool), prompt_ids=ids, prompt_attention_mask=mask,
                 prompts=texts)


def test_dapo_drops_groups_of_equal_rewards_in_training_only(tokenizer):
    """Prompt "flat" always scores 0: its group carries no signal and is dropped from training."""
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    score = lambda prompts, responses: [0.0 if p == "flat" else float(sum(map(ord, r)) % 97)  # noqa: E731
                                        for p, r in zip(prompts, responses)]
    reward = FunctionReward(RewardFunction("chars", score))
    algorithm = GRPO(GRPOArgs(aggregation="dapo", samples_per_prompt=4, max_new_tokens=6, kl_coef=0.0))
    assert algorithm.needs_reference is False  # β = 0: the loop skips the reference pass
    batch = _prompts(tokenizer, ["flat", "Review the soup:"])
    ctx = ExperienceContext.for_run(policy, tokenizer, reward=reward)
    experience = algorithm.make_experience(ctx, batch)
    assert experience.prompts == ["Review the soup:"] * 4
    assert ctx.metrics["kept_groups"].item() == 0.5
    texts = [tokenizer.decode(row[m], skip_special_tokens=True)
             for row, m in zip(experience.input_ids, experience.loss_mask)]
    rewards = torch.tensor(score(experience.prompts, texts)).view(1, 4)
    torch.testing.assert_close(experience.extras["advantages"], group_advantages(rewards, scale=True).flatten())
    validation = algorithm.make_experience(ExperienceContext.for_run(policy, tokenizer, reward=reward,
                                                                     training=False), batch)
    assert validation.input_ids.shape[0] == 8


def _spread(prompts, responses):
    """A reward that tells random responses apart (distinct words of random text often tie), so
    that every minibatch carries a non-zero advantage."""
    return [float(sum(map(ord, r)) % 97) for r in responses]


def test_conforms():
    torch.manual_seed(0)
    assert_algorithm_conforms("grpo", bad_args=[{"samples_per_prompt": 1}, {"clip_low": 1.5}, {"kl_coef": -0.1},
                                                {"aggregation": "mean"}, {"top_p": 0.0}],
                              args={"max_new_tokens": 8}, reward=_spread)
    assert_algorithm_conforms("grpo", args={"aggregation": "dr_grpo", "kl_coef": 0.0, "policy_updates": 2,
                                            "num_minibatches": 2, "max_new_tokens": 8}, reward=_spread)


def test_dr_grpo_experience_does_not_divide_by_the_std(tokenizer):
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    score = lambda prompts, responses: [float(sum(map(ord, r)) % 97) for r in responses]  # noqa: E731
    reward = FunctionReward(RewardFunction("chars", score))
    algorithm = GRPO(GRPOArgs(aggregation="dr_grpo", samples_per_prompt=4, max_new_tokens=6, kl_coef=0.0))
    experience = algorithm.make_experience(ExperienceContext.for_run(policy, tokenizer, reward=reward),
                                           _prompts(tokenizer, ["Review the soup:"]))
    texts = [tokenizer.decode(row[m], skip_special_tokens=True)
             for row, m in zip(experience.input_ids, experience.loss_mask)]
    rewards = torch.tensor(score(experience.prompts, texts))
    assert rewards.std() > 1  # the check below would not tell a division by the std apart otherwise
    torch.testing.assert_close(experience.extras["advantages"], rewards - rewards.mean())


def test_a_full_run_without_kl_holds_no_reference_copy(tmp_path, tiny_run):
    """kl_coef = 0 turns needs_reference off on the instance; the run reads the instance's flag, so no
    frozen copy of the policy is loaded (with kl_coef > 0 one is)."""
    from zoo.config import load_config
    from zoo.run import build_run

    for kl_coef, holds_reference in ((0.0, False), (0.04, True)):
        raw = tiny_run("grpo", tmp_path / f"kl{kl_coef}", algorithm_args={"max_new_tokens": 8, "kl_coef": kl_coef})
        run = build_run(load_config(raw=raw))
        try:
            assert (run.module.reference is not None) is holds_reference
            assert run.module.algorithm.needs_reference is holds_reference
        finally:
            run.lock.release()
