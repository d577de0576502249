"""The shared RL math of :mod:`zoo.losses`, on hand-worked numbers (each test's docstring works them)."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.losses import (aggregate, cispo_objective, clip_fraction, clipped_surrogate, dpo_loss, kl_estimate, kl_k1,
                        kl_k2, kl_k3, log_importance_ratio, sequence_reinforce, token_mean_nll)


def _mask(lengths, width=5):
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, 1:1 + n] = True
    return mask


def test_aggregations_by_hand():
    """Token losses 1 on each of 1 and 3 tokens (sums 1, 3):
    sequence_mean (1/1, 3/3) = (1, 1); token_mean (1, 3)/2 = (0.5, 1.5), mean 1 = 4 tokens / 4;
    constant C = 4: (0.25, 0.75). Only the token mean reports its token count, 4."""
    mask = _mask([1, 3])
    ones = torch.ones(2, 5)
    losses, tokens = aggregate(ones, mask, "sequence_mean")
    assert losses.tolist() == [1.0, 1.0] and tokens is None
    losses, tokens = aggregate(ones, mask, "token_mean")
    assert losses.tolist() == [0.5, 1.5] and tokens.item() == 4
    losses, tokens = aggregate(ones, mask, "constant", constant=4)
    assert losses.tolist() == [0.25, 0.75] and tokens is None
    with pytest.raises(ValueError, match="positive normaliser"):
        aggregate(ones, mask, "constant")
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(ones, mask, "tokens")


def test_token_mean_nll_carries_its_token_count():
    """Sums −2 (2 tokens) and −6 (4 tokens): losses (2, 6)/3, mean 8/6; per-response nll (1, 1.5)."""
    out = token_mean_nll(torch.tensor([-2.0, -6.0]), torch.tensor([2, 4]))
    torch.testing.assert_close(out.losses, torch.tensor([2 / 3, 2.0]))
    torch.testing.assert_close(out.metrics["nll_per_token"], torch.tensor([1.0, 1.5]))
    assert out.tokens.item() == 6


def test_sequence_level_ratio_is_the_geometric_mean_clipped_per_response():
    """One response, log ρ = (0.4, −0.2): the sequence ratio s = e^0.1 = 1.1051709 on both tokens.
    ε = 0.05, Â = +1: s is clipped to 1.05 (every token, so no gradient at all) → loss −1.05; at the
    token level ρ = (1.4918, 0.8187): the first is clipped to 1.05, the second is not → mean −0.9343654.
    Â = −1: −min(−s, −1.05) = s, unclipped; ∂/∂log π_t of the sequence mean (s + s)/2 is s/2 = 0.5525855."""
    mask = torch.tensor([[False, True, True]])
    old = torch.tensor([[0.0, -1.0, -2.0]])
    logps = (old + torch.tensor([[0.0, 0.4, -0.2]])).requires_grad_(True)
    s = math.exp(0.1)
    log_s = log_importance_ratio(logps, old, mask, "sequence")
    torch.testing.assert_close(log_s, torch.tensor([[0.0, 0.1, 0.1]]))
    seq = clipped_surrogate(logps, old, torch.tensor([1.0]), mask, clip_low=0.05, level="sequence")
    seq_loss, _ = aggregate(seq.token_losses, mask, "sequence_mean")
    assert seq_loss.item() == pytest.approx(-1.05)
    assert seq.clipped.tolist() == [[False, True, True]]
    (grad,) = torch.autograd.grad(seq_loss.sum(), logps)
    assert grad.abs().max() == 0
    tok = clipped_surrogate(logps, old, torch.tensor([1.0]), mask, clip_low=0.05, level="token")
    tok_loss, _ = aggregate(tok.token_losses, mask, "sequence_mean")
    assert tok_loss.item() == pytest.approx(-(1.05 + math.exp(-0.2)) / 2)
    negative = clipped_surrogate(logps, old, torch.tensor([-1.0]), mask, clip_low=0.05, level="sequence")
    loss, _ = aggregate(negative.token_losses, mask, "sequence_mean")
    assert loss.item() == pytest.approx(s)
    (grad,) = torch.autograd.grad(loss.sum(), logps)
    torch.testing.assert_close(grad, torch.tensor([[0.0, s / 2, s / 2]]))


def test_cispo_keeps_the_gradient_of_clipped_tokens():
    """Tokens at ρ = 1.5 (Â = +1), ρ = 0.5 (Â = −1), ρ = 1.1 (Â = +1), ε_low = ε_high = 0.2:
    weights sg[clip(ρ)] = 1.2, 0.8, 1.1, so ∂ℓ/∂log π = −w Â = −1.2, +0.8, −1.1, where PPO's clipped
    surrogate gives 0, 0, −1.1. The first two are clipped: clip_frac 2/3."""
    mask = torch.tensor([[True, True, True]])
    old = torch.tensor([[-1.0, -1.0, -1.0]])
    logps = (old + torch.tensor([[math.log(1.5), math.log(0.5), math.log(1.1)]])).requires_grad_(True)
    advantages = torch.tensor([[1.0, -1.0, 1.0]])
    cispo = cispo_objective(logps, old, advantages, mask, clip_low=0.2, clip_high=0.2)
    (grad,) = torch.autograd.grad(cispo.token_losses.sum(), logps)
    torch.testing.assert_close(grad, torch.tensor([[-1.2, 0.8, -1.1]]))
    assert clip_fraction(cispo.clipped, mask).item() == pytest.approx(2 / 3)
    ppo = clipped_surrogate(logps, old, advantages, mask, clip_low=0.2)
    (grad,) = torch.autograd.grad(ppo.token_losses.sum(), logps)
    torch.testing.assert_close(grad, torch.tensor([[0.0, 0.0, -1.1]]))
    assert clip_fraction(ppo.clipped, mask).item() == pytest.approx(2 / 3)


def test_clip_frac_counts_only_active_clips():
    """ρ = 1.5 with Â < 0 and ρ = 0.5 with Â > 0 are outside the range but the clip changes nothing
    (the unclipped term is the minimum): clip_frac 0, and both keep their gradient −Â ρ."""
    mask = torch.tensor([[True, True]])
    old = torch.zeros(1, 2)
    logps = torch.tensor([[math.log(1.5), math.log(0.5)]], requires_grad=True)
    out = clipped_surrogate(logps, old, torch.tensor([[-1.0, 1.0]]), mask, clip_low=0.2)
    assert clip_fraction(out.clipped, mask).item() == 0
    (grad,) = torch.autograd.grad(out.token_losses.sum(), logps)
    torch.testing.assert_close(grad, torch.tensor([[1.5, -0.5]]))


def test_sequence_reinforce_by_hand():
    """log π(y) = −1 − 2 = −3 with Â = 2: L = 6; ∂L/∂log π_t = −Â = −2 on the response tokens."""
    logps = torch.tensor([[0.0, -1.0, -2.0]], requires_grad=True)
    loss = sequence_reinforce(logps, torch.tensor([2.0]), torch.tensor([[False, True, True]]))
    assert loss.item() == 6.0
    (grad,) = torch.autograd.grad(loss.sum(), logps)
    assert grad.tolist() == [[0.0, -2.0, -2.0]]


def test_kl_estimators_by_hand():
    """log π = −1, log π_ref = −1.5: k1 = 0.5, k2 = 0.125, k3 = e^−0.5 + 0.5 − 1 = 0.1065307."""
    logps, ref = torch.tensor([-1.0]), torch.tensor([-1.5])
    assert kl_k1(logps, ref).item() == 0.5
    assert kl_k2(logps, ref).item() == 0.125
    assert kl_k3(logps, ref).item() == pytest.approx(math.exp(-0.5) - 0.5)
    assert kl_estimate(logps, ref, "k3").item() == kl_k3(logps, ref).item()
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_estimate(logps, ref, "k4")


def test_online_dpo_accuracy_counts_ties_as_half():
    """Equal implicit rewards (a policy equal to its reference) are a tie: accuracy 1/2, not 0."""
    same = torch.tensor([-3.0, -2.0])
    out = dpo_loss(same, same, same, same, beta=0.1)
    assert out.metrics["reward_accuracy"].tolist() == [0.5, 0.5]
