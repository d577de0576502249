"""PPO-RLHF: GAE, whitening, KL-penalised rewards and the clipped losses against hand-worked
numbers; the experience step and minibatching; and a short run that raises the tiny_sentiment
reward of fresh samples on held-out prompts."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from zoo.algorithm import ExperienceContext
from zoo.batch import Batch
from zoo.bench.stats import mean_ci
from zoo.config import RewardConfig, load_config
from zoo.forward.logprobs import sequence_logprobs
from zoo.losses import clipped_surrogate, gae, kl_k3, whiten
from zoo.models import frozen
from zoo.rewards.loading import load_reward_source
from zoo.rollout.batches import encode_prompts
from zoo.tiny import tiny_model
from zoo.training_guard import train
from zoo_plugins.algorithms.ppo import (PPO, KLController, PPOArgs, explained_variance, kl_penalized_rewards, ppo_loss,
                             ppo_value_loss, value_estimates)
from tiny_policy import heldout_prompts, one_torch_thread, sampled_rewards, tiny_sft_model  # noqa: F401


def test_gae_hand_worked_with_prompt_and_padding():
    """mask (F, T, T, T, F), rewards (·, 0, 0, 1, ·), values (·, 0.5, 0.2, 0.4, ·), γ = 1, λ = 0.5:
    δ3 = 1 − 0.4 = 0.6 (terminal),   Â3 = 0.6
    δ2 = 0 + 0.4 − 0.2 = 0.2,        Â2 = 0.2 + 0.5·0.6 = 0.5
    δ1 = 0 + 0.2 − 0.5 = −0.3,       Â1 = −0.3 + 0.5·0.5 = −0.05
    returns = Â + V = (0.45, 0.7, 1.0). Values outside the mask (9, 7, 5, 3) must not leak in."""
    mask = torch.tensor([[False, True, True, True, False]])
    rewards = torch.tensor([[9.0, 0.0, 0.0, 1.0, 7.0]])
    values = torch.tensor([[5.0, 0.5, 0.2, 0.4, 3.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    torch.testing.assert_close(advantages, torch.tensor([[0.0, -0.05, 0.5, 0.6, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.0, 0.45, 0.7, 1.0, 0.0]]))


def test_gae_discounting():
    """γ = 0.9, λ = 0.8, rewards (1, 2), values (0.5, 1.0):
    δ1 = 2 − 1 = 1, Â1 = 1;  δ0 = 1 + 0.9·1 − 0.5 = 1.4, Â0 = 1.4 + 0.72·1 = 2.12.
    With λ = 1 the return is the discounted Monte Carlo return 1 + 0.9·2 = 2.8."""
    mask = torch.ones(1, 2, dtype=torch.bool)
    rewards, values = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 1.0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    torch.testing.assert_close(advantages, torch.tensor([[2.12, 1.0]]))
    _, mc_returns = gae(rewards, values, mask, gamma=0.9, lam=1.0)
    torch.testing.assert_close(mc_returns, torch.tensor([[2.8, 2.0]]))


def test_kl_penalized_rewards():
    """β = 0.1. Row 0: KL per token (0.5, −1.0, 0) → rewards (−0.05, 0.1, 0 + R = 2).
    Row 1: one response token (KL 0.2) followed by padding → its reward −0.02 − 1."""
    logps = torch.tensor([[0.0, -1.0, -2.0, -0.5], [0.0, -0.3, 0.0, 0.0]])
    ref = torch.tensor([[0.0, -1.5, -1.0, -0.5], [0.0, -0.5, -4.0, -4.0]])
    mask = torch.tensor([[False, True, True, True], [False, True, False, False]])
    rewards, kl = kl_penalized_rewards(torch.tensor([2.0, -1.0]), logps, ref, mask, kl_coef=0.1)
    torch.testing.assert_close(rewards, torch.tensor([[0.0, -0.05, 0.1, 2.0], [0.0, -1.02, 0.0, 0.0]]))
    torch.testing.assert_close(kl.sum(-1), torch.tensor([-0.5, 0.2]))


def test_policy_loss_with_clipping_active_and_inactive():
    """ε = 0.2, one token each:
    ρ = 1.1, Â = 1:   max(−1.1, −1.1) = −1.1   (inside the clip range)
    ρ = 1.5, Â = 1:   max(−1.5, −1.2) = −1.2   (clipped: no credit beyond 1 + ε)
    ρ = 0.5, Â = −2:  max(1.0, 1.6) = 1.6      (clipped: no relief below 1 − ε)
    ρ = 0.5, Â = 2:   max(−1.0, −1.6) = −1.0   (not clipped: the pessimistic bound is unclipped)
    approximate KL (ρ − 1) − log ρ: 0.0046898, 0.0945349, 0.1931472, 0.1931472."""
    ratios = torch.tensor([[1.1, 1.5, 0.5, 0.5]])
    old = torch.full_like(ratios, -2.0)
    logps = old + ratios.log()
    advantages = torch.tensor([[1.0, 1.0, -2.0, 2.0]])
    mask = torch.ones_like(ratios, dtype=torch.bool)
    losses, clipped, _ = clipped_surrogate(logps, old, advantages, mask, clip_low=0.2)
    torch.testing.assert_close(losses, torch.tensor([[-1.1, -1.2, 1.6, -1.0]]))
    assert clipped.tolist() == [[False, True, True, False]]
    torch.testing.assert_close(kl_k3(old, logps), torch.tensor([[0.0046898, 0.0945349, 0.1931472, 0.1931472]]))
    # gradients flow only through unclipped tokens
    logps.requires_grad_(True)
    clipped_surrogate(logps, old, advantages, mask, clip_low=0.2).token_losses.sum().backward()
    assert logps.grad[0, 1] == 0 and logps.grad[0, 2] == 0
    assert logps.grad[0, 0] == pytest.approx(-1.1) and logps.grad[0, 3] == pytest.approx(-1.0)


def test_value_loss_with_clipping_active_and_inactive():
    """ε_v = 0.2, ½ max((V − R̂)², (V_old + clip(V − V_old, ±0.2) − R̂)²):
    V 1.0, V_old 0.9, R̂ 1.5: clip(V) = 1.0, both 0.25          → 0.125, inactive
    V 1.5, V_old 1.0, R̂ 1.0: clip(V) = 1.2, 0.25 vs 0.04       → 0.125, inactive
    V 1.5, V_old 1.0, R̂ 2.0: clip(V) = 1.2, 0.25 vs 0.64       → 0.32,  active
    V 0.0, V_old 1.0, R̂ 1.0: clip(V) = 0.8, 1.0 vs 0.04        → 0.5,   inactive."""
    values = torch.tensor([[1.0, 1.5, 1.5, 0.0]])
    old_values = torch.tensor([[0.9, 1.0, 1.0, 1.0]])
    returns = torch.tensor([[1.5, 1.0, 2.0, 1.0]])
    losses, clipped = ppo_value_loss(values, old_values, returns, torch.ones(1, 4, dtype=torch.bool), 0.2)
    torch.testing.assert_close(losses, torch.tensor([[0.125, 0.125, 0.32, 0.5]]))
    assert clipped.tolist() == [[False, False, True, False]]


def test_ppo_loss_is_the_token_mean_split_per_sequence():
    """Row 0 has 3 response tokens, row 1 has 1: per-sequence losses are token sums over the mean
    token count (2), so their mean is the mean over all 4 tokens."""
    mask = torch.tensor([[False, True, True, True], [False, True, False, False]])
    logps = torch.tensor([[0.0, -1.0, -1.0, -1.0], [0.0, -1.0, 0.0, 0.0]])
    advantages = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, -4.0, 0.0, 0.0]])
    values = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    returns = torch.tensor([[0.0, 1.0, 2.0, 1.0], [0.0, 0.1, 0.0, 0.0]])
    out = ppo_loss(logps, values, logps, values, advantages, returns, mask, value_coef=0.5)
    # ρ = 1: policy token losses −Â → row sums −6 and 4; value token losses ½(V − R̂)² → 0.5 and 0.005
    torch.testing.assert_close(out.metrics["policy_loss"], torch.tensor([-3.0, 2.0]))
    torch.testing.assert_close(out.metrics["value_loss"], torch.tensor([0.25, 0.0025]))
    torch.testing.assert_close(out.losses, torch.tensor([-3.0 + 0.125, 2.0 + 0.00125]))
    assert out.losses.mean().item() == pytest.approx((-6 + 4 + 0.5 * 0.505) / 4)
    assert out.metrics["clip_frac"].item() == 0 and out.metrics["approx_kl"].item() == 0


def test_whiten_and_explained_variance():
    """whiten (1, 2, 3 | masked 100): mean 2, population std √(2/3) → (−1.2247, 0, 1.2247, 0).
    Explained variance of V = (1, 2, 2) for R̂ = (1, 2, 3): residual (0, 0, 1) has variance 2/9,
    R̂ has 2/3, so EV = 1 − (2/9)/(2/3) = 2/3."""
    mask = torch.tensor([[True, True, True, False]])
    torch.testing.assert_close(whiten(torch.tensor([[1.0, 2.0, 3.0, 100.0]]), mask),
                               torch.tensor([[-1.2247449, 0.0, 1.2247449, 0.0]]))
    returns = torch.tensor([[1.0, 2.0, 3.0, 0.0]])
    assert explained_variance(torch.tensor([[1.0, 2.0, 2.0, 9.0]]), returns, mask).item() == pytest.approx(2 / 3)
    assert explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    assert explained_variance(torch.full_like(returns, 5.0), returns, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_value_of_a_token_is_read_one_position_earlier():
    head = torch.nn.Linear(2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 10.0]]))
        head.bias.zero_()
    hidden = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    values = value_estimates(head, hidden, torch.tensor([[False, False, True, True]]))
    torch.testing.assert_close(values, torch.tensor([[0.0, 0.0, 2.0, 10.0]]))


def test_adaptive_kl_coefficient_and_its_state():
    """Ziegler et al.: β ← β (1 + clip(KL/target − 1, ±0.2) · n/horizon).
    β 0.1, target 6, horizon 10000: KL 9 → error 0.5 clipped to 0.2 → β·(1 + 0.2·32/10⁴) = 0.100064;
    then KL 5.4 → error −0.1 → ·(1 − 0.1·100/10⁴) = 0.100064·0.999."""
    controller = KLController(0.1, target=6.0, horizon=10000)
    controller.update(9.0, 32)
    assert controller.value == pytest.approx(0.100064)
    controller.update(5.4, 100)
    assert controller.value == pytest.approx(0.100064 * 0.999)
    fixed = KLController(0.1)
    fixed.update(100.0, 1000)
    assert fixed.value == 0.1

    algorithm = PPO(PPOArgs(kl_coef=0.1, kl_target=6.0))
    algorithm.kl.update(9.0, 32)
    resumed = PPO(PPOArgs(kl_coef=0.1, kl_target=6.0))
    resumed.load_state_dict(algorithm.state_dict())
    assert resumed.kl.value == pytest.approx(0.100064)


def test_minibatches_cover_the_rollout_once_per_epoch():
    algorithm = PPO(PPOArgs(ppo_epochs=3, num_minibatches=2))
    rows = 6
    experience = Batch(input_ids=torch.arange(rows)[:, None].repeat(1, 3), attention_mask=torch.ones(rows, 3),
                       loss_mask=torch.ones(rows, 3, dtype=torch.bool), group_size=1,
                       valid=torch.ones(rows, 1, dtype=torch.bool), extras={"row": torch.arange(rows)})
    minibatches = list(algorithm.minibatches(experience))
    assert len(minibatches) == 6
    for epoch in range(3):
        seen = torch.cat([m.extras["row"] for m in minibatches[2 * epoch: 2 * epoch + 2]])
        assert sorted(seen.tolist()) == list(range(rows))
        for m in minibatches[2 * epoch: 2 * epoch + 2]:
            assert torch.equal(m.input_ids[:, 0], m.extras["row"])


def test_make_experience(tokenizer):
    """One rollout by hand: old log-probs and values from the policy, the reference's log-probs, the
    reward, whitened advantages; the KL coefficient adapts in training and not in validation."""
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    reference = frozen(copy.deepcopy(policy))
    with torch.no_grad():  # make the reference differ so the KL is not zero
        reference.lm_head.weight.mul_(0.5)
    algorithm = PPO(PPOArgs(kl_coef=0.2, kl_target=1.0, max_new_tokens=6, samples_per_prompt=2, lam=1.0))
    modules = torch.nn.ModuleDict(algorithm.build_modules(policy))
    reward = load_reward_source(RewardConfig(function="tiny_sentiment"))
    prompts = ["Review the soup:", "Review the film:"]
    ids, mask = encode_prompts(tokenizer, prompts)
    batch = Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool), group_size=1,
                  valid=torch.ones(2, 1, dtype=torch.bool), prompt_ids=ids, prompt_attention_mask=mask, prompts=prompts)

    def context(training: bool) -> ExperienceContext:
        return ExperienceContext.for_run(policy, tokenizer, reference=reference, reward=reward, modules=modules,
                                         training=training)

    torch.manual_seed(0)
    ctx = context(training=False)
    with torch.no_grad():
        experience = algorithm.make_experience(ctx, batch)
    assert algorithm.kl.value == 0.2  # validation leaves the controller alone
    e = experience.extras
    assert experience.input_ids.shape[0] == 4 and experience.prompts == [prompts[0]] * 2 + [prompts[1]] * 2
    with torch.no_grad():
        ref = sequence_logprobs(reference, experience.input_ids, experience.attention_mask, experience.loss_mask, 1)
        old = sequence_logprobs(policy, experience.input_ids, experience.attention_mask, experience.loss_mask, 1)
    torch.testing.assert_close(experience.reference_logps, ref.sum)
    torch.testing.assert_close(e["old_logps"], old.token_logps)
    assert (e["old_values"] == 0).all()  # the critic starts at zero
    texts = [tokenizer.decode(row[m], skip_special_tokens=True)
             for row, m in zip(experience.input_ids, experience.loss_mask)]
    torch.testing.assert_close(e["scores"], reward.score(experience.prompts, texts))
    mask = old.mask
    assert (e["advantages"][~mask] == 0).all()
    assert float((e["advantages"] * mask).sum()) == pytest.approx(0.0, abs=1e-4)  # whitened: mean 0
    # with V = 0 and γ = λ = 1 the return of every token is the reward still to come: the KL
    # penalties of the tokens from here on plus the sequence reward
    kl = (old.token_logps - ref.token_logps) * mask
    to_come = (-0.2 * kl).flip(-1).cumsum(-1).flip(-1) * mask
    torch.testing.assert_close(e["returns"], to_come + e["scores"][:, None] * mask, atol=1e-5, rtol=0)
    assert float(ctx.metrics["kl_ref"]) == pytest.approx(float(kl.sum(-1).mean()), abs=1e-5)
    with torch.no_grad():
        algorithm.make_experience(context(training=True), batch)
    assert algorithm.kl.value != 0.2


# ----- a short run on the tiny review task --------------------------------------------------------


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    return tiny_sft_model(tmp_path_factory)


def test_ppo_raises_the_reward_of_fresh_samples(sft_model, tmp_path):
    """20 rollouts of 32 prompts (the shipped configs/tiny/ppo.yaml runs 42): the mean tiny_sentiment
    of one fresh sample per held-out prompt rises clearly, beyond both 95% confidence intervals."""
    prompts = heldout_prompts()
    before = sampled_rewards(sft_model, prompts)
    config = load_config(raw={
        "algorithm": "ppo",
        "algorithm_args": {"max_new_tokens": 40, "num_minibatches": 2},
        "model": {"name": str(sft_model)},
        "data": {"train": "builtin:tiny_prompts", "builtin_size": 640, "eval_fraction": 0.0, "max_length": 96,
                 "max_prompt_length": 32},
        "reward": {"function": "tiny_sentiment"},
        "train": {"batch_size": 32, "learning_rate": 1.0e-3, "scheduler": "constant", "max_epochs": 1,
                  "progress_bar": False, "accelerator": "cpu", "devices": 1, "log_every_n_steps": 5},
        "output_dir": str(tmp_path / "ppo"),
    })
    train(config)
    after = sampled_rewards(tmp_path / "ppo" / "model", prompts)
    before, after = mean_ci(before.tolist()), mean_ci(after.tolist())
    assert after.low > before.high, (before, after)
    assert after.mean - before.mean > 0.4


def test_kl_in_the_loss_adds_beta_k_to_the_policy_tokens():
    """kl_placement loss with k3, β = 0.1, ρ = 1, Â = 0, values = returns: the only term is the token
    mean of β k3; tokens log π = −1, log π_ref = −1.5 → β (e^−0.5 + 0.5 − 1) = 0.0106531 on each."""
    mask = torch.tensor([[False, True, True]])
    logps = torch.tensor([[0.0, -1.0, -1.0]])
    zeros = torch.zeros(1, 3)
    out = ppo_loss(logps, zeros, logps, zeros, zeros, zeros, mask, ref_logps=torch.tensor([[0.0, -1.5, -1.5]]),
                   kl_coef=0.1, kl_estimator="k3")
    assert out.losses.item() == pytest.approx(2 * 0.1 * (math.exp(-0.5) - 0.5) / 2, abs=1e-7)


def test_kl_estimator_in_the_rewards():
    """k2 per token: log π − log π_ref = (0.5, −1) → k2 = (0.125, 0.5), r = −β k2 + R on the last token."""
    mask = torch.tensor([[True, True]])
    rewards, kl = kl_penalized_rewards(torch.tensor([2.0]), torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -1.0]]),
                                       mask, 0.1, "k2")
    torch.testing.assert_close(kl, torch.tensor([[0.125, 0.5]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.0125, 2.0 - 0.05]]))
