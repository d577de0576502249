"""ORPO: hand-worked losses, TRL's formulas re-derived on a real batch, log-space stability, the
gradient of the odds-ratio term, the contract."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo import ConfigError, SequenceLogProbs, batch_logprobs
from zoo.losses import log_odds, orpo_loss
from zoo.testing import assert_algorithm_conforms, fake_batch, tiny_model_and_tokenizer
from zoo_plugins.algorithms.orpo import ORPO, ORPOArgs

T = torch.tensor


def logprobs(sums, lengths) -> SequenceLogProbs:
    sums, lengths = T(sums), T(lengths, dtype=torch.float32)
    rows = sums.numel()
    return SequenceLogProbs(token_logps=torch.zeros(rows, 1), mask=torch.zeros(rows, 1, dtype=torch.bool),
                            sum=sums, mean=sums / lengths, lengths=lengths)


def test_loss_matches_hand_worked_values():
    """λ = 0.1. Pairs (sum / tokens): chosen −2/4 and −3/2, rejected −3/3 and −2/4, so
    m_w = (−0.5, −1.5), m_l = (−1, −0.5).

    log odds(m) = m − log(1 − e^m):
        m = −0.5: e^m = 0.6065307, log(1 − e^m) = −0.9327521, log odds = 0.4327521
        m = −1.0: e^m = 0.3678794, log(1 − e^m) = −0.4586751, log odds = −0.5413249
        m = −1.5: e^m = 0.2231302, log(1 − e^m) = −0.2524825, log odds = −1.2475175
    differences d = (0.9740770, −1.6802697); log σ(d) = (−0.3202998, −1.8511289).
    NLL: 5 nats over the batch's 6 chosen tokens, per example −sum · B / 6 = (2/3, 1).
    L = NLL − λ log σ(d) = (0.6986966, 1.1851129); batch mean 0.9419048.
    """
    out = ORPO(ORPOArgs(odds_ratio_weight=0.1)).loss(logprobs([[-2.0, -3.0], [-3.0, -2.0]], [[4, 3], [2, 4]]),
                                                      None, batch=None)
    assert out.losses.tolist() == pytest.approx([0.6986966, 1.1851129], abs=1e-6)
    assert out.losses.mean().item() == pytest.approx(5 / 6 + 0.1 * (0.3202998 + 1.8511289) / 2, abs=1e-6)
    assert out.metrics["log_odds_chosen"].tolist() == pytest.approx([0.9740770, -1.6802697], abs=1e-6)
    assert out.metrics["log_odds_ratio"].tolist() == pytest.approx([-0.3202998, -1.8511289], abs=1e-6)
    assert out.metrics["nll"].tolist() == pytest.approx([2 / 3, 1.0], abs=1e-6)
    assert out.metrics["reward_margin"].tolist() == pytest.approx([0.05, -0.1], abs=1e-6)  # λ (m_w − m_l)
    assert out.metrics["reward_accuracy"].tolist() == [1.0, 0.0]


def test_the_batch_mean_is_trls_loss_on_a_real_batch():
    """TRL's ORPO, re-derived here from the logits: ``policy_nll_loss`` is the cross-entropy of the chosen
    rows over all their response tokens, ``log_odds = (m_w − m_l) − (log1p(−exp(m_w)) − log1p(−exp(m_l)))``
    with ``m`` the per-sequence mean log-prob, and ``loss = nll − λ mean(logsigmoid(log_odds))``.

    The chosen completions of this batch differ in length, so a per-sequence NLL average would differ.
    """
    model, tokenizer = tiny_model_and_tokenizer()
    batch = fake_batch("pairwise", tokenizer, batch_size=3)
    lam = 0.25
    with torch.no_grad():
        ours = ORPO(ORPOArgs(odds_ratio_weight=lam)).loss(batch_logprobs(model, batch), None, batch).losses.mean()
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
    labels = batch.input_ids[:, 1:].masked_fill(~batch.loss_mask[:, 1:], -100)
    token_logps = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    mask = labels != -100
    means = (token_logps * mask).sum(-1) / mask.sum(-1)
    chosen, rejected = means[0::2], means[1::2]
    assert len(set(mask[0::2].sum(-1).tolist())) > 1
    nll = F.cross_entropy(logits[0::2, :-1].reshape(-1, logits.shape[-1]), labels[0::2].reshape(-1), ignore_index=-100)
    trl_log_odds = (chosen - rejected) - (torch.log1p(-torch.exp(chosen)) - torch.log1p(-torch.exp(rejected)))
    trl = nll - lam * F.logsigmoid(trl_log_odds).mean()
    assert ours.item() == pytest.approx(trl.item(), rel=1e-5)


@pytest.mark.parametrize("m", [-1e-5, -0.01, -0.69, -0.7, -3.0, -40.0, -200.0])
def test_log_odds_are_accurate_in_float32_over_the_whole_range(m):
    """log odds(m) = m − log(1 − e^m) against float64; near 0 (P → 1) float32's ``log1p(−exp(m))`` alone loses
    most digits (at m = −1e-5, exp(m) rounds to within 6e-8 of 1), and below it exp(m) underflows."""
    expected = m - math.log(-math.expm1(m))
    got = log_odds(T([m])).item()
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_a_certain_completion_keeps_finite_odds_and_gradients():
    """m = 0 (P = 1) would make the odds infinite; m is held at −1e-6, log odds = −1e-6 − log(1e-6) ≈ 13.8155."""
    m = T([0.0, -2.0], requires_grad=True)
    out = orpo_loss(T([0.0]) + m[0] * 3, T([3]), m[:1], m[1:], odds_ratio_weight=0.1)
    out.losses.sum().backward()
    assert torch.isfinite(out.losses).all() and torch.isfinite(m.grad).all()
    assert log_odds(T([0.0])).item() == pytest.approx(13.8155, abs=1e-3)


def test_gradient_of_the_odds_ratio_term_matches_the_closed_form():
    """d log odds / dm = 1 + e^m / (1 − e^m) = 1 / (1 − e^m), so for the odds-ratio term alone
    dL/dm_w = −λ (1 − σ(d)) / (1 − e^{m_w}). With m_w = −0.5, m_l = −1, λ = 0.1: d = 0.9740770,
    σ(d) = 0.7259, giving −0.1 · 0.2741 / 0.3934693 = −0.0696544. The NLL term is held out (its
    ``chosen_sum`` carries no gradient here)."""
    chosen_mean = T([-0.5], requires_grad=True)
    out = orpo_loss(T([-2.0]), T([4]), chosen_mean, T([-1.0]), odds_ratio_weight=0.1)
    out.losses.sum().backward()
    assert chosen_mean.grad.item() == pytest.approx(-0.0696544, abs=1e-6)


def test_conforms_to_the_algorithm_contract():
    report = assert_algorithm_conforms(ORPO, bad_args=[{"odds_ratio_weight": 0.0}, {"odds_ratio_weight": -0.1},
                                                       {"odds_ratio_weight": float("nan")}])
    assert "responsiveness: raising the rejected response's log-prob" in report.checks
    assert "cached reference" not in report.checks  # no reference model


def test_a_bad_weight_names_the_key():
    with pytest.raises(ConfigError, match="algorithm_args.odds_ratio_weight"):
        ORPO.parse_args({"odds_ratio_weight": 0})
