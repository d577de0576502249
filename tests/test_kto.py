"""KTO: hand-worked losses, the mismatched-pair reference point (clamped, detached), the λ weighting,
TRL's formulas re-derived on a real batch, the weight-ratio advice, the contract."""
from __future__ import annotations

import math

import pytest
import torch

from zoo import ConfigError, DataSummary, SequenceLogProbs, batch_logprobs
from zoo.data.collate import Collator
from zoo.data.examples import normalise
from zoo.data.tokenize import ExampleTokenizer
from zoo.losses import kto_loss, weight_ratio_advice
from zoo.testing import assert_algorithm_conforms, fake_batch, fake_rows, tiny_model_and_tokenizer
from zoo.tiny import tiny_model
from zoo_plugins.algorithms.kto import KTO, KTOArgs

T = torch.tensor


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def logprobs(sums) -> SequenceLogProbs:
    """``[B, 2]`` sums (slot 0 the completion, slot 1 its mismatched pair); 4 tokens each, so a loss
    that read the mean instead of the sum would give other numbers."""
    sums = T(sums)
    lengths = torch.full_like(sums, 4.0)
    return SequenceLogProbs(token_logps=torch.zeros(sums.numel(), 1), mask=torch.zeros(sums.numel(), 1, dtype=torch.bool),
                            sum=sums, mean=sums / lengths, lengths=lengths)


class Labels:
    """What the loss reads of a batch: ``scores[:, 0]`` holds the labels."""

    def __init__(self, labels):
        self.scores = torch.stack([T(labels, dtype=torch.float32), torch.zeros(len(labels))], 1)


#: β = 0.5, λ_D = 1, λ_U = 1.5; (policy, reference) of each completion and of its mismatched pair.
POLICY = [[-3.0, -9.0], [-7.0, -6.0], [-4.0, -8.0], [-5.0, -4.0]]
REFERENCE = [[-5.0, -10.0], [-6.0, -7.5], [-4.0, -8.0], [-8.0, -4.5]]
LABELS = [1, 0, 1, 0]


def test_loss_matches_hand_worked_values():
    """β = 0.5, λ_D = 1, λ_U = 1.5.

    Completions' log-ratios r = policy − reference: (2, −1, 0, 3), labelled (D, U, D, U).
    Mismatched pairs' log-ratios: (1, 1.5, 0, 0.5), mean 0.75 = z (the matched mean, 1, is not used).
        0 (D): 1 − σ(0.5 · (2 − 0.75))        = 1 − σ(0.625)  = 0.3486451
        1 (U): 1.5 (1 − σ(0.5 · (0.75 + 1)))  = 1.5 (1 − σ(0.875)) = 0.4413225
        2 (D): 1 − σ(0.5 · (0 − 0.75))        = 1 − σ(−0.375) = 0.5926666
        3 (U): 1.5 (1 − σ(0.5 · (0.75 − 3)))  = 1.5 (1 − σ(−1.125)) = 1.1323725
    With z from the matched completions (z = 1) they would be (0.3775, 0.4034, 0.6225, 1.0966).
    """
    out = KTO(KTOArgs(beta=0.5, desirable_weight=1.0, undesirable_weight=1.5)).loss(
        logprobs(POLICY), logprobs(REFERENCE), Labels(LABELS))
    assert out.losses.tolist() == pytest.approx([0.3486451, 0.4413225, 0.5926666, 1.1323725], abs=1e-6)
    assert out.metrics["kl"].item() == pytest.approx(0.75)
    assert out.metrics["reward"].tolist() == pytest.approx([1.0, -0.5, 0.0, 1.5])  # β r
    assert out.metrics["reward_desirable"].item() == pytest.approx(0.5)
    assert out.metrics["reward_undesirable"].item() == pytest.approx(0.5)


def test_the_weights_scale_each_label_and_only_it():
    """Doubling λ_U doubles the undesirable examples' losses (1, 3) and leaves the desirable ones."""
    base = kto_loss(T([-3.0, -7.0, -4.0, -5.0]), T([-5.0, -6.0, -4.0, -8.0]), T(LABELS).bool(),
                    T([-9.0, -6.0, -8.0, -4.0]), T([-10.0, -7.5, -8.0, -4.5]), beta=0.5, undesirable_weight=1.5)
    doubled = kto_loss(T([-3.0, -7.0, -4.0, -5.0]), T([-5.0, -6.0, -4.0, -8.0]), T(LABELS).bool(),
                       T([-9.0, -6.0, -8.0, -4.0]), T([-10.0, -7.5, -8.0, -4.5]), beta=0.5, undesirable_weight=3.0)
    assert (doubled.losses / base.losses).tolist() == pytest.approx([1.0, 2.0, 1.0, 2.0])


def test_the_reference_point_is_clamped_at_zero():
    """Mismatched log-ratios (−1, −1): mean −1 < 0, so z = 0. β = 1, λ = 1:
    desirable r = 1: 1 − σ(1) = 0.2689414; undesirable r = −2: 1 − σ(0 + 2) = 0.1192029."""
    out = kto_loss(T([-1.0, -4.0]), T([-2.0, -2.0]), T([True, False]), T([-6.0, -5.0]), T([-5.0, -4.0]), beta=1.0)
    assert out.metrics["kl"].item() == 0.0
    assert out.losses.tolist() == pytest.approx([0.2689414, 0.1192029], abs=1e-6)


def test_no_gradient_flows_through_the_reference_point():
    """dL_0/dπ_0 = −λ_D β σ(β(r_0 − z)) (1 − σ(β(r_0 − z))) with z held fixed:
    −0.5 · σ(0.625)(1 − σ(0.625)) = −0.1135459. The mismatched log-probs get no gradient at all."""
    policy = T([-3.0, -7.0, -4.0, -5.0], requires_grad=True)
    mismatched = T([-9.0, -6.0, -8.0, -4.0], requires_grad=True)
    out = kto_loss(policy, T([-5.0, -6.0, -4.0, -8.0]), T(LABELS).bool(), mismatched, T([-10.0, -7.5, -8.0, -4.5]),
                   beta=0.5, undesirable_weight=1.5)
    out.losses.sum().backward()
    assert policy.grad[0].item() == pytest.approx(-0.5 * sigmoid(0.625) * (1 - sigmoid(0.625)), abs=1e-7)
    assert policy.grad[0].item() == pytest.approx(-0.1135459, abs=1e-6)
    assert mismatched.grad is None or not mismatched.grad.any()


def _trl_kto(model, reference, tokenizer, rows, beta, desirable_weight, undesirable_weight):
    """TRL's ``KTOTrainer`` loss, re-derived: the KL completions are the completions shifted by one
    (``[y_n, y_1, ..., y_{n-1}]``) after the same prompts, ``kl = mean(policy_KL − reference_KL).clamp(min=0)``
    on summed log-probs, and the loss is the mean of the concatenated weighted desirable and undesirable
    losses. Log-probs come straight from the logits of plain SFT-shaped rows."""
    encode = ExampleTokenizer(tokenizer, 64, 32)
    collate = Collator(tokenizer.pad_token_id)

    def sums(model, pairs):
        batch = collate([encode(normalise({"prompt": p, "completion": c}, i + 1, "test", "sft"))
                         for i, (p, c) in enumerate(pairs)])
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
        token_logps = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
        return (token_logps * batch.loss_mask[:, 1:]).sum(-1)

    prompts, completions = [r["prompt"] for r in rows], [r["completion"] for r in rows]
    shifted = completions[-1:] + completions[:-1]
    with torch.no_grad():
        ratio = sums(model, zip(prompts, completions)) - sums(reference, zip(prompts, completions))
        kl = (sums(model, zip(prompts, shifted)) - sums(reference, zip(prompts, shifted))).mean().clamp(min=0)
    label = torch.tensor([r["label"] for r in rows])
    chosen = 1 - torch.sigmoid(beta * (ratio[label] - kl))
    rejected = 1 - torch.sigmoid(beta * (kl - ratio[~label]))
    return torch.cat([desirable_weight * chosen, undesirable_weight * rejected]).mean(), kl


def test_the_batch_mean_is_trls_loss_on_a_real_batch():
    reference, tokenizer = tiny_model_and_tokenizer()
    model = tiny_model(tokenizer, seed=1)  # a policy whose mismatched log-ratios average above 0
    rows = fake_rows("unpaired", 5)
    batch = fake_batch("unpaired", tokenizer, batch_size=5)
    algorithm = KTO(KTOArgs(beta=2.0, desirable_weight=1.0, undesirable_weight=1.25))
    with torch.no_grad():
        out = algorithm.loss(batch_logprobs(model, batch), batch_logprobs(reference, batch), batch)
    expected, kl = _trl_kto(model, reference, tokenizer, rows, 2.0, 1.0, 1.25)
    assert kl.item() > 0  # the reference point is in play
    assert out.metrics["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert out.losses.mean().item() == pytest.approx(expected.item(), rel=1e-5)


def test_weight_ratio_advice_follows_the_papers_range():
    """n_D = 30, n_U = 10, λ = 1: λ_D n_D / (λ_U n_U) = 3 > 4/3. λ_D in [10/30, (4/3)·10/30] = [0.333, 0.444],
    or λ_U in [30/((4/3)·10), 30/10] = [2.25, 3]. Inside the range (λ_U = 2.5: ratio 1.2) there is no advice."""
    advice = weight_ratio_advice(30, 10, 1.0, 1.0)
    assert "= 3," in advice and "desirable_weight in [0.333, 0.444]" in advice
    assert "undesirable_weight in [2.25, 3]" in advice
    assert weight_ratio_advice(30, 10, 1.0, 2.5) is None
    assert weight_ratio_advice(10, 10, 1.0, 1.0) is None
    assert weight_ratio_advice(10, 10, 1.0, 1.5) is not None  # ratio 2/3 < 1
    assert "no undesirable examples" in weight_ratio_advice(10, 0, 1.0, 1.0)
    assert KTO().check_data(DataSummary("unpaired", 40, 30, 10)) == [advice]
    assert KTO().check_data(DataSummary("unpaired", 20, 10, 10)) == []


def test_conforms_to_the_algorithm_contract():
    report = assert_algorithm_conforms(KTO, batch_size=3, bad_args=[
        {"beta": 0.0}, {"desirable_weight": -1.0}, {"undesirable_weight": 0.0}, {"beta": float("inf")}])
    assert "cached reference" in report.checks
    assert "responsiveness: raising an undesirable completion's log-prob" in report.checks


def test_a_bad_weight_names_the_key():
    with pytest.raises(ConfigError, match="algorithm_args.undesirable_weight"):
        KTO.parse_args({"undesirable_weight": -2})
