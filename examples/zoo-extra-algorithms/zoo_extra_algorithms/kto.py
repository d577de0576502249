"""KTO: Kahneman–Tversky Optimization.

Ethayarajh, Xu, Muennighoff, Jurafsky and Kiela 2024, "KTO: Model Alignment as Prospect Theoretic
Optimization" (arXiv:2402.01306).

Each response is labelled desirable or undesirable on its own; its value is measured against a
reference point, the policy's KL divergence from the reference:

    r_θ(x, y) = log π_θ(y|x) − log π_ref(y|x)
    z_ref     = max(0, KL estimate), with no gradient through it
    v(x, y)   = λ_D σ(β (r_θ(x, y) − z_ref))    if y is desirable
                λ_U σ(β (z_ref − r_θ(x, y)))    if y is undesirable
    L         = E_y [λ_y − v(x, y)]

Pairwise data is read as one desirable (chosen) and one undesirable (rejected) response per
prompt. Each example's loss is the mean of its two responses' terms, so the batch mean equals
the expectation over all 2B responses above.

The reference point. The paper and TRL estimate the KL term from mismatched pairs in the batch
(response j scored after prompt i ≠ j), which needs an extra forward pass of both models over
re-paired sequences. A loss here sees only the batch the core collates, so this plugin
estimates it from the batch's own log-ratios:

    z_ref = max(0, mean over the batch's 2B responses of r_θ(x, y))

Like the mismatched estimate it is 0 while π_θ = π_ref, is clamped at 0, and is detached, as
the paper prescribes (it sets the level of the value function, not a direction to optimise).
It differs in measuring the log-ratio on the training responses themselves, which the loss
pushes up (desirable) and down (undesirable), so the two movements partly cancel in the mean
and the estimate can read lower than the KL on unrelated responses would. It is computed per
batch on each device and logged as ``kl``.

Hyperparameters: ``beta`` (β, default 0.1 as in the paper), ``desirable_weight`` (λ_D) and
``undesirable_weight`` (λ_U), both 1.0. The paper recommends λ_D n_D / (λ_U n_U) ∈ [1, 4/3]
for n_D desirable and n_U undesirable examples; pairwise data has n_D = n_U.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo import Algorithm, Batch, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl, pair_accuracy


@dataclass
class KTOArgs(Hyperparameters):
    #: β, the sharpness of the value function (the strength of the implicit KL constraint).
    beta: float = 0.1
    #: λ_D, the weight of desirable (chosen) responses.
    desirable_weight: float = 1.0
    #: λ_U, the weight of undesirable (rejected) responses.
    undesirable_weight: float = 1.0

    def validate(self) -> None:
        self.require_positive("beta", "desirable_weight", "undesirable_weight")


def kto_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, *, beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> LossOutput:
    """Per-pair KTO losses from ``[B]`` sequence log-probs (chosen desirable, rejected undesirable).

    Returns:
        ``losses`` ``[B]``: ``(λ_D (1 − σ(β(r_w − z))) + λ_U (1 − σ(β(z − r_l)))) / 2``; metrics
        ``kl`` (the scalar reference point ``z_ref``), the implicit rewards ``β r_θ`` of both
        responses, their margin and whether the chosen one is larger (``[B]``).
    """
    chosen_ratio = policy_chosen - reference_chosen
    rejected_ratio = policy_rejected - reference_rejected
    kl = torch.cat([chosen_ratio, rejected_ratio]).mean().detach().clamp(min=0)
    desirable = desirable_weight * (1 - torch.sigmoid(beta * (chosen_ratio - kl)))
    undesirable = undesirable_weight * (1 - torch.sigmoid(beta * (kl - rejected_ratio)))
    chosen_reward, rejected_reward = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
    return LossOutput((desirable + undesirable) / 2, {
        "kl": kl,
        "reward_chosen": chosen_reward,
        "reward_rejected": rejected_reward,
        "reward_margin": chosen_reward - rejected_reward,
        "reward_accuracy": pair_accuracy(chosen_reward - rejected_reward),
    })


class KTO(Algorithm):
    name = "kto"
    description = "KTO: prospect-theoretic loss on desirable/undesirable responses against a KL reference point"
    Args = KTOArgs
    data_shape = "pairwise"
    needs_reference = True

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        ref = reference.sum
        a = self.args
        return kto_loss(policy.sum[:, 0], policy.sum[:, 1], ref[:, 0], ref[:, 1], beta=a.beta,
                        desirable_weight=a.desirable_weight, undesirable_weight=a.undesirable_weight)


@hookimpl
def zoo_register_algorithms(register):
    register(KTO)
