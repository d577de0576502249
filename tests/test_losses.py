"""Every built-in offline loss against numbers worked out by hand (shown in each docstring)."""
from __future__ import annotations

import math

import pytest
import torch

from zoo import ConfigError, SequenceLogProbs
from zoo.registry import get_registry
from zoo.losses import dpo_loss
from zoo_plugins.algorithms.rrhf import rrhf_loss
from zoo_plugins.algorithms.sft import sft_loss
from zoo_plugins.algorithms.slic_hf import slic_hf_loss

T = torch.tensor


def logprobs(sums, means=None, lengths=None) -> SequenceLogProbs:
    """``SequenceLogProbs`` with the given ``[B, k]`` sums (and means/lengths); token tensors unused.

    Sequences are 4 tokens long unless ``lengths`` says otherwise, and ``mean = sum / length``: a
    loss that read the mean where it should read the sum (or the other way round) gives other
    numbers than the hand-worked ones.
    """
    sums = T(sums, dtype=torch.float32)
    lengths = torch.full_like(sums, 4.0) if lengths is None else T(lengths, dtype=torch.float32)
    means = sums / lengths if means is None else T(means, dtype=torch.float32)
    rows = sums.numel()
    return SequenceLogProbs(token_logps=torch.zeros(rows, 1), mask=torch.zeros(rows, 1, dtype=torch.bool),
                            sum=sums, mean=means, lengths=lengths)


def batch_with(scores, valid=None):
    """A stand-in carrying only what the ranked losses read: ``scores`` and ``valid``."""
    from types import SimpleNamespace

    scores = T(scores, dtype=torch.float32)
    valid = torch.ones_like(scores, dtype=torch.bool) if valid is None else T(valid)
    return SimpleNamespace(scores=scores, valid=valid)


def algorithm(name: str, **args):
    cls = get_registry().algorithm(name)
    return cls(cls.parse_args(args))


# ----- SFT ------------------------------------------------------------------------------------


def test_sft_loss_is_token_mean_nll():
    """Sums (−6, −2) over (3, 1) tokens: mean tokens 2 → losses (3, 1); their mean 2 = 8 nats / 4 tokens."""
    out = sft_loss(T([-6.0, -2.0]), T([3, 1]))
    torch.testing.assert_close(out.losses, T([3.0, 1.0]))
    assert out.losses.mean().item() == pytest.approx(8 / 4)
    torch.testing.assert_close(out.metrics["nll_per_token"], T([2.0, 2.0]))


def test_sft_algorithm_reads_the_first_slot():
    """The algorithm passes ``policy.sum[:, 0]`` and ``lengths[:, 0]``: (−4)/2 = 2 nats per token."""
    out = algorithm("sft").loss(logprobs([[-4.0]], lengths=[[2]]), None, batch_with([[0.0]]))
    torch.testing.assert_close(out.losses, T([2.0]))


# ----- DPO, cDPO, IPO -------------------------------------------------------------------------


def test_dpo_sigmoid_hand_worked():
    """π: chosen −1, rejected −3; ref both −2; β = 0.5.

    h = (−1 + 2) − (−3 + 2) = 2, βh = 1, L = −log σ(1) = log(1 + e⁻¹) = 0.3132617.
    Implicit rewards 0.5 and −0.5, margin 1, accuracy 1.
    """
    out = dpo_loss(T([-1.0]), T([-3.0]), T([-2.0]), T([-2.0]), beta=0.5)
    assert out.losses.item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-6)
    assert out.losses.item() == pytest.approx(0.3132617, abs=1e-6)
    assert out.metrics["reward_chosen"].item() == pytest.approx(0.5)
    assert out.metrics["reward_rejected"].item() == pytest.approx(-0.5)
    assert out.metrics["reward_margin"].item() == pytest.approx(1.0)
    assert out.metrics["reward_accuracy"].item() == 1.0


def test_dpo_equal_logprobs_give_log_two():
    """Policy equal to reference: h = 0 and −log σ(0) = log 2 for any β; every pair is a tie (1/2)."""
    for beta in (0.1, 1.0, 7.0):
        out = dpo_loss(T([-5.0, -1.0]), T([-3.0, -2.0]), T([-5.0, -1.0]), T([-3.0, -2.0]), beta=beta)
        torch.testing.assert_close(out.losses, torch.full((2,), math.log(2)))
        assert out.metrics["reward_accuracy"].tolist() == [0.5, 0.5]


def test_conservative_dpo_label_smoothing():
    """βh = 1, ε = 0.1: L = 0.9·log(1 + e⁻¹) + 0.1·log(1 + e) = 0.3132617 + 0.1·1 = 0.4132617.

    (log(1 + e) − log(1 + e⁻¹) = 1 exactly.)
    """
    out = dpo_loss(T([-1.0]), T([-3.0]), T([-2.0]), T([-2.0]), beta=0.5, label_smoothing=0.1)
    assert out.losses.item() == pytest.approx(0.4132617, abs=1e-6)


def test_ipo_is_squared_distance_to_target_margin():
    """τ = 0.25 → target 1/(2τ) = 2. h = 2 → 0; h = 0 → 4; h = 3 → 1. β plays no part."""
    chosen, rejected = T([-1.0, -2.0, -0.5]), T([-3.0, -2.0, -3.5])
    ref = T([-2.0, -2.0, -2.0])
    for beta in (0.1, 3.0):
        out = dpo_loss(chosen, rejected, ref, ref, beta=beta, loss="ipo", tau=0.25)
        torch.testing.assert_close(out.losses, T([0.0, 4.0, 1.0]))


def test_dpo_algorithm_reads_sequence_sums_not_means():
    """β = 0.5, policy sums (−1, −3) over 4 tokens each, reference (−2, −2): h = 0.5·((1) − (−1)) = 1,
    L = −log σ(1) = 0.3132617. The per-token means (−0.25, −0.75) would give h = 0.25, L = 0.5759394."""
    out = algorithm("dpo", beta=0.5).loss(logprobs([[-1.0, -3.0]]), logprobs([[-2.0, -2.0]]),
                                          batch_with([[1.0, 0.0]]))
    assert out.losses.item() == pytest.approx(0.3132617, abs=1e-6)


def test_dpo_algorithm_accepts_cached_reference_values():
    """A ``[B, k]`` cached reference (wrapped as the loop wraps it) gives the same loss as the reference's
    SequenceLogProbs."""
    from zoo.forward import cached_logprobs

    dpo = algorithm("dpo", beta=0.5)
    policy = logprobs([[-1.0, -3.0]])
    batch = batch_with([[1.0, 0.0]])
    batch.loss_mask, batch.group_size = torch.ones(2, 5, dtype=torch.bool), 2  # 4 scored tokens per response
    from_model = dpo.loss(policy, logprobs([[-2.0, -2.0]]), batch)
    from_cache = dpo.loss(policy, cached_logprobs(T([[-2.0, -2.0]]), batch), batch)
    torch.testing.assert_close(from_model.losses, from_cache.losses)
    assert from_cache.losses.item() == pytest.approx(0.3132617, abs=1e-6)


def test_dpo_rejects_label_smoothing_with_ipo():
    with pytest.raises(ConfigError, match="algorithm_args.label_smoothing"):
        algorithm("dpo", loss="ipo", label_smoothing=0.1)


# ----- RRHF -----------------------------------------------------------------------------------


def test_rrhf_three_responses():
    """p = (−1, −2, −0.5), r = (2, 1, 0).

    Pairs r_i < r_j: (1, 0): max(0, −2 + 1) = 0; (2, 0): max(0, −0.5 + 1) = 0.5;
    (2, 1): max(0, −0.5 + 2) = 1.5 → L_rank = 2. Best is response 0: L_ft = 1.
    L = 1·2 + 1 = 3; with rank_weight 0.5: 0.5·2 + 1 = 2. Pairs ordered right: only (1, 0) → 1/3.
    """
    p, r, valid = T([[-1.0, -2.0, -0.5]]), T([[2.0, 1.0, 0.0]]), T([[True, True, True]])
    out = rrhf_loss(p, r, valid)
    torch.testing.assert_close(out.losses, T([3.0]))
    torch.testing.assert_close(out.metrics["rank_loss"], T([2.0]))
    torch.testing.assert_close(out.metrics["ft_loss"], T([1.0]))
    assert out.metrics["ranking_accuracy"].item() == pytest.approx(1 / 3)
    torch.testing.assert_close(rrhf_loss(p, r, valid, rank_weight=0.5).losses, T([2.0]))


def test_rrhf_ties_add_no_ranking_term():
    """p = (−1, −3, −2), r = (1, 1, 0): the tie (0, 1) forms no pair even though p_1 < p_0.

    (2, 0): max(0, −2 + 1) = 0; (2, 1): max(0, −2 + 3) = 1 → L_rank = 1. Of the tied best, the
    first is the target: L_ft = 1. L = 2. Ranking the tie as "0 below 1" would add
    max(0, −1 + 3) = 2. Ordered pairs: (2, 0) right, (2, 1) wrong → accuracy 1/2.
    """
    out = rrhf_loss(T([[-1.0, -3.0, -2.0]]), T([[1.0, 1.0, 0.0]]), T([[True, True, True]]))
    torch.testing.assert_close(out.losses, T([2.0]))
    assert out.metrics["ranking_accuracy"].item() == pytest.approx(1 / 2)


def test_rrhf_ignores_padding_slots():
    """Row 0 has 2 real responses and a padding slot with a garbage score 9 and p = −4.

    Real pair (0, 1) [r = 0 < 3]: max(0, −1 + 2) = 1 → L_rank = 1; best is slot 1: L_ft = 2; L = 3.
    Counting the padding slot would add pairs (0, 2): 3, (1, 2): 2 and make it the target (L_ft 4).
    Row 1, a full k = 3 example p = (−1, −2, −0.5), r = (2, 1, 0), keeps its L = 3.
    """
    p = T([[-1.0, -2.0, -4.0], [-1.0, -2.0, -0.5]])
    r = T([[0.0, 3.0, 9.0], [2.0, 1.0, 0.0]])
    valid = T([[True, True, False], [True, True, True]])
    out = rrhf_loss(p, r, valid)
    torch.testing.assert_close(out.losses, T([3.0, 3.0]))
    torch.testing.assert_close(out.metrics["ft_loss"], T([2.0, 1.0]))


def test_rrhf_pairwise_data_and_gradient():
    """k = 2, r = (1, 0), p = (−1, −0.5): L_rank = 0.5, L_ft = 1, L = 1.5.

    ∂L/∂p_0 = −1 (rank) − 1 (ft) = −2, ∂L/∂p_1 = +1.
    """
    p = T([[-1.0, -0.5]], requires_grad=True)
    out = rrhf_loss(p, T([[1.0, 0.0]]), T([[True, True]]))
    torch.testing.assert_close(out.losses, T([1.5]))
    out.losses.sum().backward()
    torch.testing.assert_close(p.grad, T([[-2.0, 1.0]]))


def test_rrhf_algorithm_uses_length_normalised_logprobs():
    """``policy.mean`` (−1, −0.5) is used, not ``policy.sum`` (−10, −1): L = 1.5 as above."""
    out = algorithm("rrhf").loss(logprobs([[-10.0, -1.0]], means=[[-1.0, -0.5]]), None,
                                 batch_with([[1.0, 0.0]]))
    torch.testing.assert_close(out.losses, T([1.5]))


def test_rrhf_args_are_validated():
    with pytest.raises(ConfigError, match="algorithm_args.rank_weight"):
        algorithm("rrhf", rank_weight=-1.0)
    with pytest.raises(ConfigError, match="did you mean 'rank_weight'"):
        algorithm("rrhf", rank_weigth=2.0)


# ----- SLiC-HF --------------------------------------------------------------------------------


def test_slic_hf_pairwise_hand_worked():
    """δ = 1, λ = 0.5, log π(y⁺) = −10.

    log π(y⁻) = −12: margin 2 > δ → hinge 0, L = 0.5·10 = 5.
    log π(y⁻) = −11: margin exactly δ → hinge max(0, 0) = 0, L = 5.
    log π(y⁻) = −10.25: margin 0.25 → hinge 0.75, L = 5.75.
    """
    sums = T([[-10.0, -12.0], [-10.0, -11.0], [-10.0, -10.25]])
    scores = T([[1.0, 0.0]] * 3)
    out = slic_hf_loss(sums, scores, torch.ones(3, 2, dtype=torch.bool), delta=1.0, reg_weight=0.5)
    torch.testing.assert_close(out.losses, T([5.0, 5.0, 5.75]))
    torch.testing.assert_close(out.metrics["hinge_loss"], T([0.0, 0.0, 0.75]))
    torch.testing.assert_close(out.metrics["reg_loss"], T([10.0, 10.0, 10.0]))
    torch.testing.assert_close(out.metrics["margin"], T([2.0, 1.0, 0.25]))


def test_slic_hf_sample_rank_with_ties_and_padding():
    """δ = 2, λ = 0.25, sums (−5, −4, −9, −6).

    r = (1, 3, 0, 2): best is slot 1 (−4); margins to the others 1, 5, 2 → hinges 1, 0, 0, mean
    1/3; reg 4 → L = 1/3 + 1. Margin mean 8/3, all pairs ordered right.
    r = (1, 3, 0, 3): slot 3 ties the best and forms no pair: hinges (1, 0) → 0.5; L = 1.5.
    r = (1, 3, 0, 5) with slot 3 padding: the garbage 5 is ignored, same pairs as the tie: L = 1.5.
    """
    sums = T([[-5.0, -4.0, -9.0, -6.0]] * 3)
    scores = T([[1.0, 3.0, 0.0, 2.0], [1.0, 3.0, 0.0, 3.0], [1.0, 3.0, 0.0, 5.0]])
    valid = T([[True] * 4, [True] * 4, [True, True, True, False]])
    out = slic_hf_loss(sums, scores, valid, delta=2.0, reg_weight=0.25)
    torch.testing.assert_close(out.losses, T([1 / 3 + 1, 1.5, 1.5]))
    assert out.metrics["margin"][0].item() == pytest.approx(8 / 3)
    torch.testing.assert_close(out.metrics["pair_accuracy"], T([1.0, 1.0, 1.0]))


def test_slic_hf_padding_slot_scored_zero_is_no_negative():
    """δ = 2, λ = 0.25, sums (−5, −4, −4.5), scores (1, 3, 0) with slot 2 padding (the collator's 0).

    Only slot 0 is a negative: margin 1 → hinge 1; reg 4 → L = 1 + 1 = 2. Counting the padding
    slot (score 0 < 3, margin 0.5 → hinge 1.5) would give (1 + 1.5)/2 + 1 = 2.25.
    """
    out = slic_hf_loss(T([[-5.0, -4.0, -4.5]]), T([[1.0, 3.0, 0.0]]), T([[True, True, False]]), delta=2.0,
                       reg_weight=0.25)
    torch.testing.assert_close(out.losses, T([2.0]))
    torch.testing.assert_close(out.metrics["margin"], T([1.0]))


def test_slic_hf_gradient_pushes_pair_apart():
    """Margin 0.25 < δ: ∂L/∂ log π(y⁺) = −1 (hinge) − λ = −1.5, ∂L/∂ log π(y⁻) = +1."""
    sums = T([[-10.0, -10.25]], requires_grad=True)
    out = slic_hf_loss(sums, T([[1.0, 0.0]]), T([[True, True]]), delta=1.0, reg_weight=0.5)
    out.losses.sum().backward()
    torch.testing.assert_close(sums.grad, T([[-1.5, 1.0]]))


def test_slic_hf_algorithm_uses_unnormalised_sums():
    """``policy.sum`` (−10, −10.25) is used, not ``policy.mean``: L = 5.75 with the defaults δ = 1, λ = 0.5."""
    out = algorithm("slic_hf").loss(logprobs([[-10.0, -10.25]], means=[[-1.0, -9.0]]), None,
                                    batch_with([[1.0, 0.0]]))
    torch.testing.assert_close(out.losses, T([5.75]))


def test_slic_hf_args_are_validated():
    with pytest.raises(ConfigError, match="algorithm_args.delta"):
        algorithm("slic_hf", delta=0.0)
    with pytest.raises(ConfigError, match="algorithm_args.reg_weight"):
        algorithm("slic_hf", reg_weight=-0.1)
