"""SimPO: hand-computed losses, the contract (through zoo.testing) and registration."""
import math

import pytest
import torch

from zoo import Batch, ConfigError
from zoo.testing import assert_algorithm_conforms, fake_batch, make_logprobs, registered_by, tiny_model_and_tokenizer
from zoo_extra_algorithms import simpo
from zoo_extra_algorithms.simpo import SimPO, SimPOArgs, simpo_loss


def test_loss_matches_hand_computed_values():
    """β = 2, γ = 0.5.

    Example 0: chosen −4 over 4 tokens (mean −1), rejected −6 over 3 tokens (mean −2):
        margin = 2·(−1) − 2·(−2) − 0.5 = 1.5,   L = log(1 + e^−1.5) = 0.2014133
    Example 1: chosen −10 over 5 tokens (mean −2), rejected −2 over 2 tokens (mean −1):
        margin = 2·(−2) − 2·(−1) − 0.5 = −2.5,  L = log(1 + e^2.5) = 2.5788897
    The sums alone would rank example 1 the other way round; the lengths must be used.
    """
    policy = make_logprobs([[-4.0, -6.0], [-10.0, -2.0]], lengths=[[4, 3], [5, 2]])
    batch = Batch(input_ids=torch.zeros(4, 1), attention_mask=torch.ones(4, 1), loss_mask=torch.ones(4, 1),
                  group_size=2, valid=torch.ones(2, 2, dtype=torch.bool))
    out = SimPO(SimPOArgs(beta=2.0, gamma=0.5)).loss(policy, None, batch)
    assert out.losses.tolist() == pytest.approx([0.2014133, 2.5788897], abs=1e-6)
    assert out.metrics["reward_margin"].tolist() == pytest.approx([2.0, -2.0])
    assert out.metrics["reward_accuracy"].tolist() == [1.0, 0.0]


def test_gamma_is_the_margin_in_reward_units():
    """With equal rewards the loss is −log σ(−γ) = log(1 + e^γ); γ = 0 gives log 2."""
    same = torch.tensor([-1.0, -3.0])
    for gamma in (0.0, 0.5, 1.6):
        losses = simpo_loss(same, same, beta=2.5, gamma=gamma).losses
        assert losses.tolist() == pytest.approx([math.log1p(math.exp(gamma))] * 2, abs=1e-6)


def test_gradient_matches_the_closed_form():
    """dL/dp_w = −β σ(−m) with m = β(p_w − p_l) − γ; dL/dp_l is its negative."""
    chosen, rejected = torch.tensor([-1.2], requires_grad=True), torch.tensor([-0.7], requires_grad=True)
    simpo_loss(chosen, rejected, beta=2.0, gamma=0.5).losses.sum().backward()
    m = 2.0 * (-1.2 + 0.7) - 0.5
    expected = -2.0 / (1 + math.exp(m))
    assert chosen.grad.item() == pytest.approx(expected, abs=1e-6)
    assert rejected.grad.item() == pytest.approx(-expected, abs=1e-6)


def test_conforms_to_the_algorithm_contract():
    report = assert_algorithm_conforms(SimPO, bad_args=[
        {"beta": 0.0}, {"beta": -1.0}, {"beta": float("nan")}, {"gamma": -0.1}, {"gamma": float("inf")}])
    assert "responsiveness: raising the chosen response's log-prob" in report.checks


def test_loss_on_a_real_batch_uses_length_normalised_logprobs():
    """On real log-probs of the tiny model, the loss equals −log σ(β(mean_w − mean_l) − γ)."""
    model, tokenizer = tiny_model_and_tokenizer()
    batch = fake_batch("pairwise", tokenizer, batch_size=3)
    from zoo import sequence_logprobs

    with torch.no_grad():
        policy = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, 2)
    out = SimPO(SimPOArgs(beta=2.0, gamma=0.5)).loss(policy, None, batch)
    mean = policy.sum / policy.lengths
    expected = [math.log1p(math.exp(-(2.0 * (w - l) - 0.5))) for w, l in mean.tolist()]
    assert out.losses.tolist() == pytest.approx(expected, abs=1e-5)


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match=r"algorithm_args\.gamma"):
        SimPO.parse_args({"gamma": -1})


def test_the_plugin_module_registers_simpo():
    assert registered_by(simpo) == {"algorithms": ["simpo"]}
