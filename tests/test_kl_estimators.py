"""Which divergence each KL estimator's gradient follows, in the loss or in the reward.

Exact expectations on a categorical π_θ over 5 tokens (one-token responses): the expectation over
y ~ π_θ of a per-sample quantity is Σ_y sg[π_θ(y)] · quantity(y), sampling not differentiated, as
in training. The loss placement differentiates β k(y) itself; the reward placement puts −β sg[k(y)]
into the reward of a REINFORCE term −R log π_θ(y) (:func:`zoo.losses.sequence_reinforce`). The
targets are ∇KL(π_θ ‖ π_ref) and ∇KL(π_ref ‖ π_θ) by autograd of their closed forms. Results
(documented in :mod:`zoo.losses.kl`):

    loss:   k1 → 0,  k2 → ∇KL(π‖π_ref),  k3 → ∇KL(π_ref‖π)
    reward: k1 → ∇KL(π‖π_ref),  k3 → ∇KL(π‖π_ref) − ∇KL(π_ref‖π),  k2 → neither
"""
from __future__ import annotations

import pytest
import torch

from zoo.losses import sequence_kl, sequence_reinforce, token_kl

V = 5


@pytest.fixture
def setting():
    torch.manual_seed(3)
    logits = torch.randn(V, dtype=torch.float64, requires_grad=True)
    ref_logps = torch.randn(V, dtype=torch.float64).log_softmax(-1)
    return logits, ref_logps


def _kl_gradients(logits, ref_logps):
    logps = logits.log_softmax(-1)
    forward = (logps.exp() * (logps - ref_logps)).sum()       # KL(π ‖ π_ref)
    reverse = (ref_logps.exp() * (ref_logps - logps)).sum()   # KL(π_ref ‖ π)
    return torch.autograd.grad(forward, logits, retain_graph=True)[0], torch.autograd.grad(reverse, logits)[0]


def _expected_gradient(logits, ref_logps, estimator, placement):
    """∇ of E_{y~π}[per-sample loss], each vocabulary token a one-token response (mask all True)."""
    logps = logits.log_softmax(-1)[:, None]  # [V, 1]: V responses of one token
    weights = logps.detach().exp()[:, 0]     # sg[π(y)]
    mask = torch.ones(V, 1, dtype=torch.bool)
    ref = ref_logps[:, None]
    if placement == "loss":
        per_sample = token_kl(logps, ref, mask, estimator).sum(-1)
    else:
        reward = -sequence_kl(logps.detach(), ref, mask, estimator)
        per_sample = sequence_reinforce(logps, reward, mask)
    return torch.autograd.grad((weights * per_sample).sum(), logits)[0]


@pytest.mark.parametrize("estimator, placement, follows", [
    ("k1", "loss", "zero"),
    ("k2", "loss", "forward"),
    ("k3", "loss", "reverse"),
    ("k1", "reward", "forward"),
    ("k3", "reward", "forward-reverse"),
])
def test_each_placement_follows_its_divergence(setting, estimator, placement, follows):
    logits, ref_logps = setting
    forward, reverse = _kl_gradients(logits, ref_logps)
    target = {"zero": torch.zeros_like(forward), "forward": forward, "reverse": reverse,
              "forward-reverse": forward - reverse}[follows]
    torch.testing.assert_close(_expected_gradient(logits, ref_logps, estimator, placement), target)


def test_k2_in_the_reward_follows_neither_divergence(setting):
    logits, ref_logps = setting
    forward, reverse = _kl_gradients(logits, ref_logps)
    gradient = _expected_gradient(logits, ref_logps, "k2", "reward")
    assert not torch.allclose(gradient, forward, atol=1e-3) and not torch.allclose(gradient, reverse, atol=1e-3)


def test_the_forward_and_reverse_gradients_differ_here(setting):
    """Otherwise the parametrised cases could not tell the two directions apart."""
    forward, reverse = _kl_gradients(*setting)
    assert (forward - reverse).abs().max() > 1e-2
