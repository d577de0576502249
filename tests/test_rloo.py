"""RLOO: the leave-one-out baseline and the KL-penalised reward on hand-worked numbers, the
REINFORCE and clipped losses, an experience step checked against independent forward passes."""
from __future__ import annotations

import math

import pytest
import torch

from zoo import ExperienceContext, SequenceLogProbs
from zoo.batch import Batch
from zoo.forward.logprobs import sequence_logprobs
from zoo.losses import leave_one_out_advantages
from zoo.rewards.sources import FunctionReward, RewardFunction
from zoo.rollout.batches import encode_prompts
from zoo.testing import assert_algorithm_conforms
from zoo.tiny import tiny_model
from zoo_plugins.algorithms.rloo import RLOO, RLOOArgs, rloo_loss
from tiny_policy import one_torch_thread  # noqa: F401  (autouse)


def test_leave_one_out_baseline_by_hand():
    """Scores (1, 2, 3, 6) and sequence KLs (0.5, 0, 1, 2) at β = 0.1: R = (0.95, 2, 2.9, 5.8), sum
    11.65. b_1 = (2 + 2.9 + 5.8)/3 = 3.5666667, so A_1 = −2.6166667; likewise A = (−2.6166667,
    −1.2166667, −0.0166667, 3.85) = 4/3 · (R − mean R)."""
    rewards = torch.tensor([[1.0, 2.0, 3.0, 6.0]]) - 0.1 * torch.tensor([[0.5, 0.0, 1.0, 2.0]])
    advantages = leave_one_out_advantages(rewards)
    torch.testing.assert_close(advantages, torch.tensor([[-2.6166667, -1.2166667, -0.0166667, 3.85]]))
    # two prompts are independent groups; k = 2 compares each sample with the other
    torch.testing.assert_close(leave_one_out_advantages(torch.tensor([[1.0, 4.0], [2.0, 2.0]])),
                               torch.tensor([[-3.0, 3.0], [0.0, 0.0]]))


def test_reinforce_and_clipped_losses_by_hand():
    """Row 0: tokens −1, −2 (log π(y) = −3), A = 1 → L = 3; row 1: token −0.5, A = −1 → L = −0.5."""
    logps = torch.tensor([[0.0, -1.0, -2.0], [0.0, -0.5, 0.0]], requires_grad=True)
    mask = torch.tensor([[False, True, True], [False, True, False]])
    advantages = torch.tensor([1.0, -1.0])
    out = rloo_loss(logps, logps.detach(), advantages, mask)
    torch.testing.assert_close(out.losses, torch.tensor([3.0, -0.5]))
    (grad,) = torch.autograd.grad(out.losses.mean(), logps)
    torch.testing.assert_close(grad, torch.tensor([[0.0, -0.5, -0.5], [0.0, 0.5, 0.0]]))
    # clipped, at ρ = 1 the same gradient; at ρ = 1.5 with A = 2 the token's term stops at 1.2 · 2
    clipped = rloo_loss(logps, logps.detach(), advantages, mask, clip_range=0.2)
    (clipped_grad,) = torch.autograd.grad(clipped.losses.mean(), logps)
    torch.testing.assert_close(clipped_grad, grad)
    one = torch.tensor([[0.0, math.log(1.5)]])
    out = rloo_loss(one, torch.zeros(1, 2), torch.tensor([2.0]), torch.tensor([[False, True]]), clip_range=0.2)
    assert out.losses.item() == pytest.approx(-2.4)
    assert out.metrics["clip_frac"].item() == 1.0


def test_experience_against_independent_forward_passes(tokenizer):
    """R_i = score − β (log π_old − log π_ref) per sequence, then the leave-one-out baseline; the
    reference's sums travel with the batch so the loop does not run the reference again."""
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    reference = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                           num_key_value_heads=1, seed=1)
    score = lambda prompts, responses: [float(len(r)) for r in responses]  # noqa: E731
    reward = FunctionReward(RewardFunction("chars", score))
    texts = ["Review the soup:", "Hi"]
    ids, mask = encode_prompts(tokenizer, texts)
    batch = Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool),
                  group_size=1, valid=torch.ones(2, 1, dtype=torch.bool), prompt_ids=ids,
                  prompt_attention_mask=mask, prompts=texts)
    algorithm = RLOO(RLOOArgs(samples_per_prompt=3, kl_coef=0.3, max_new_tokens=6))
    ctx = ExperienceContext.for_run(policy, tokenizer, reference=reference, reward=reward)
    with torch.no_grad():
        e = algorithm.make_experience(ctx, batch)
        old = sequence_logprobs(policy, e.input_ids, e.attention_mask, e.loss_mask, 1)
        ref = sequence_logprobs(reference, e.input_ids, e.attention_mask, e.loss_mask, 1)
    texts = [tokenizer.decode(row[m], skip_special_tokens=True) for row, m in zip(e.input_ids, e.loss_mask)]
    rewards = torch.tensor(score(e.prompts, texts)) - 0.3 * (old.sum - ref.sum)[:, 0]
    r = rewards.view(2, 3)
    baseline = (r.sum(1, keepdim=True) - r) / 2
    torch.testing.assert_close(e.extras["advantages"], (r - baseline).flatten(), atol=1e-4, rtol=0)
    torch.testing.assert_close(e.extras["old_logps"], old.token_logps, atol=1e-5, rtol=0)
    torch.testing.assert_close(e.reference_logps, ref.sum)
    assert ctx.metrics["kl_ref"].item() == pytest.approx(float((old.sum - ref.sum).mean()), abs=1e-4)


def test_conforms():
    torch.manual_seed(0)
    assert_algorithm_conforms("rloo", bad_args=[{"samples_per_prompt": 1}, {"kl_coef": -1.0},
                                                {"clip_range": 1.5}, {"policy_updates": 2}],
                              args={"max_new_tokens": 8})
    assert_algorithm_conforms("rloo", args={"clip_range": 0.2, "policy_updates": 2, "max_new_tokens": 8})


def test_k3_in_the_reward_against_independent_forward_passes(tokenizer):
    """kl_estimator k3: R_i = score − β Σ_t (r_t − log r_t − 1), r_t = π_ref/π_old per token."""
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    reference = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                           num_key_value_heads=1, seed=1)
    score = lambda prompts, responses: [float(len(r)) for r in responses]  # noqa: E731
    texts = ["Review the soup:", "Hi"]
    ids, mask = encode_prompts(tokenizer, texts)
    batch = Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool),
                  group_size=1, valid=torch.ones(2, 1, dtype=torch.bool), prompt_ids=ids,
                  prompt_attention_mask=mask, prompts=texts)
    algorithm = RLOO(RLOOArgs(samples_per_prompt=3, kl_coef=0.3, max_new_tokens=6, kl_estimator="k3"))
    ctx = ExperienceContext.for_run(policy, tokenizer, reference=reference,
                                    reward=FunctionReward(RewardFunction("chars", score)))
    with torch.no_grad():
        e = algorithm.make_experience(ctx, batch)
        old = sequence_logprobs(policy, e.input_ids, e.attention_mask, e.loss_mask, 1)
        ref = sequence_logprobs(reference, e.input_ids, e.attention_mask, e.loss_mask, 1)
    log_r = (ref.token_logps - old.token_logps) * old.mask
    k3 = ((log_r.exp() - log_r - 1) * old.mask).sum(-1)
    texts = [tokenizer.decode(row[m], skip_special_tokens=True) for row, m in zip(e.input_ids, e.loss_mask)]
    r = (torch.tensor(score(e.prompts, texts)) - 0.3 * k3).view(2, 3)
    torch.testing.assert_close(e.extras["advantages"], (r - (r.sum(1, keepdim=True) - r) / 2).flatten(),
                               atol=1e-4, rtol=0)


def test_k2_in_the_loss_by_hand():
    """kl_placement loss, k2, β = 0.5, A = 0: row tokens log π = (−1, −2), log π_ref = (−1.5, −1):
    L = β Σ ½(log π − log π_ref)² = 0.5 · ½ (0.25 + 1) = 0.3125; ∂L/∂log π_t = β (log π − log π_ref)
    = (0.25, −0.5)."""
    algorithm = RLOO(RLOOArgs(kl_coef=0.5, kl_estimator="k2", kl_placement="loss"))
    logps = torch.tensor([[0.0, -1.0, -2.0]], requires_grad=True)
    mask = torch.tensor([[False, True, True]])
    policy = SequenceLogProbs(logps, mask, logps.sum(-1, keepdim=True), logps.sum(-1, keepdim=True), torch.ones(1, 1))
    reference = SequenceLogProbs(torch.tensor([[0.0, -1.5, -1.0]]), mask, torch.full((1, 1), -2.5),
                                 torch.full((1, 1), -2.5), torch.ones(1, 1))
    batch = Batch(input_ids=torch.ones(1, 3, dtype=torch.long), attention_mask=torch.ones(1, 3, dtype=torch.long),
                  loss_mask=mask, group_size=1, valid=torch.ones(1, 1, dtype=torch.bool),
                  extras={"old_logps": logps.detach(), "advantages": torch.zeros(1), "scores": torch.zeros(1)})
    out = algorithm.loss(policy, reference, batch)
    assert out.losses.item() == pytest.approx(0.3125)
    (grad,) = torch.autograd.grad(out.losses.sum(), logps)
    torch.testing.assert_close(grad, torch.tensor([[0.0, 0.25, -0.5]]))
