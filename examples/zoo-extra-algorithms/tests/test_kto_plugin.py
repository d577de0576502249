"""KTO: hand-computed losses, the detached reference point, the contract and registration."""
import math

import pytest
import torch

from zoo import Batch
from zoo.testing import assert_algorithm_conforms, make_logprobs, registered_by
from zoo_extra_algorithms import kto
from zoo_extra_algorithms.kto import KTO, KTOArgs, kto_loss


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def pair_batch(n: int) -> Batch:
    return Batch(input_ids=torch.zeros(2 * n, 1), attention_mask=torch.ones(2 * n, 1),
                 loss_mask=torch.ones(2 * n, 1), group_size=2, valid=torch.ones(n, 2, dtype=torch.bool))


def test_loss_matches_hand_computed_values():
    """β = 0.5, λ_D = 1, λ_U = 1.5.

    Log-ratios r = policy − reference:
        example 0: chosen −3 − (−5) = 2, rejected −7 − (−6) = −1
        example 1: chosen −4 − (−4) = 0, rejected −5 − (−8) = 3
    z_ref = max(0, mean(2, −1, 0, 3)) = 1.
        example 0: desirable 1 − σ(0.5·(2 − 1)) = 0.3775407, undesirable 1.5·(1 − σ(0.5·(1 + 1))) = 0.4034121
                   loss = (0.3775407 + 0.4034121) / 2 = 0.3904764
        example 1: desirable 1 − σ(0.5·(0 − 1)) = 0.6224593, undesirable 1.5·(1 − σ(0.5·(1 − 3))) = 1.0965879
                   loss = (0.6224593 + 1.0965879) / 2 = 0.8595236
    """
    policy = make_logprobs([[-3.0, -7.0], [-4.0, -5.0]])
    reference = make_logprobs([[-5.0, -6.0], [-4.0, -8.0]])
    algorithm = KTO(KTOArgs(beta=0.5, desirable_weight=1.0, undesirable_weight=1.5))
    out = algorithm.loss(policy, reference, pair_batch(2))
    assert out.losses.tolist() == pytest.approx([0.3904764, 0.8595236], abs=1e-6)
    assert out.metrics["kl"].item() == pytest.approx(1.0)


def test_reference_point_is_clamped_at_zero():
    """Mean log-ratio (−1 + −3) / 2 = −2 < 0, so z_ref = 0.

    β = 1, λ = 1: desirable 1 − σ(−1) = 0.7310586, undesirable 1 − σ(0 + 3) = 0.0474259,
    loss = 0.3892422.
    """
    out = kto_loss(torch.tensor([-2.0]), torch.tensor([-6.0]), torch.tensor([-1.0]), torch.tensor([-3.0]), beta=1.0)
    assert out.metrics["kl"].item() == 0.0
    assert out.losses.item() == pytest.approx(((1 - sigmoid(-1)) + (1 - sigmoid(3))) / 2, abs=1e-7)
    assert out.losses.item() == pytest.approx(0.3892422, abs=1e-6)


def test_no_gradient_flows_through_the_reference_point():
    """With z_ref held fixed, dL/dπ(y_w,0) = −(λ_D/2) β σ'(β(r_w,0 − z)) for L the sum of the losses.

    Two pairs (β = 0.5, λ_D = 1, λ_U = 1.5): r_w = (2, 0), r_l = (−1, 3), so z = 1 and
    −½ · 0.5 · σ(0.5)(1 − σ(0.5)) = −0.0587509. With one pair the z terms of the desirable and
    undesirable halves cancel, so only a batch of two or more can tell a detached z from one that
    back-propagates: that gradient would be −0.0662403 here.
    """
    def gradient(detach: bool) -> float:
        chosen = torch.tensor([-3.0, -4.0], requires_grad=True)
        rejected, ref_chosen, ref_rejected = torch.tensor([-7.0, -5.0]), torch.tensor([-5.0, -4.0]), \
            torch.tensor([-6.0, -8.0])
        if detach:
            losses = kto_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5, desirable_weight=1.0,
                              undesirable_weight=1.5).losses
        else:  # an independent implementation that lets the gradient through z_ref
            r_w, r_l = chosen - ref_chosen, rejected - ref_rejected
            z = torch.cat([r_w, r_l]).mean().clamp(min=0)
            losses = ((1 - torch.sigmoid(0.5 * (r_w - z))) + 1.5 * (1 - torch.sigmoid(0.5 * (z - r_l)))) / 2
        losses.sum().backward()
        return chosen.grad[0].item()

    expected = -0.5 * 0.5 * sigmoid(0.5) * (1 - sigmoid(0.5))
    assert expected == pytest.approx(-0.0587509, abs=1e-6)
    assert gradient(detach=True) == pytest.approx(expected, abs=1e-7)
    assert gradient(detach=False) == pytest.approx(-0.0662403, abs=1e-6)  # what the test tells apart


def test_conforms_to_the_algorithm_contract():
    report = assert_algorithm_conforms(KTO, bad_args=[
        {"beta": 0.0}, {"desirable_weight": -1.0}, {"undesirable_weight": 0.0}, {"beta": float("inf")}])
    assert "cached reference" in report.checks
    assert "responsiveness: raising the rejected response's log-prob" in report.checks


def test_the_plugin_module_registers_kto():
    assert registered_by(kto) == {"algorithms": ["kto"]}
