"""SimPO: Simple Preference Optimization with a reference-free reward.

Meng, Xia and Chen 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward"
(arXiv:2405.14734).

The implicit reward is the policy's length-normalised log-likelihood, scaled by β; the loss asks
the chosen reward to beat the rejected one by a target margin γ:

    r(x, y) = (β / |y|) log π_θ(y|x)
    L = −log σ(r(x, y_w) − r(x, y_l) − γ)

No reference model is needed (half the memory and forward passes of DPO), and the length
normalisation removes the incentive to prefer long responses that an un-normalised sum has.

Hyperparameters:

* ``beta`` (β > 0): scale of the reward; the paper tunes it in [2, 10] and uses 2.0–2.5 for
  most models. Default 2.0.
* ``gamma`` (γ ≥ 0): the target reward margin, in reward units, used as written in the formula
  above. Default 0.5 (TRL's ``simpo_gamma``). The authors' released training configs instead
  give the margin as the ratio γ/β (``gamma_beta_ratio``); to reproduce such a config set
  ``gamma = beta × gamma_beta_ratio`` (β = 2.0 with ratio 0.5 is γ = 1.0). A single parameter
  with one meaning is kept here so that ``gamma`` never silently changes units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo import Algorithm, Batch, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import pair_accuracy


@dataclass
class SimPOArgs(Hyperparameters):
    #: β, the scale of the length-normalised reward.
    beta: float = 2.0
    #: γ, the target margin between the chosen and rejected rewards (reward units).
    gamma: float = 0.5

    def validate(self) -> None:
        self.require_positive("beta")
        self.require(isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma) and self.gamma >= 0,
                     "gamma", "must be a finite number >= 0 (a target margin; 0 disables it)")


def simpo_loss(chosen_mean_logps: torch.Tensor, rejected_mean_logps: torch.Tensor, *, beta: float,
               gamma: float) -> LossOutput:
    """Per-pair SimPO losses.

    Args:
        chosen_mean_logps: ``[B]`` ``log π_θ(y_w|x) / |y_w|``.
        rejected_mean_logps: ``[B]`` ``log π_θ(y_l|x) / |y_l|``.
    Returns:
        ``losses`` ``[B]``; metrics (``[B]``): the rewards ``β/|y| log π``, their margin and
        whether the chosen reward is the larger one.
    """
    import torch.nn.functional as F

    chosen_reward = beta * chosen_mean_logps
    rejected_reward = beta * rejected_mean_logps
    losses = -F.logsigmoid(chosen_reward - rejected_reward - gamma)
    chosen_reward, rejected_reward = chosen_reward.detach(), rejected_reward.detach()
    return LossOutput(losses, {
        "reward_chosen": chosen_reward,
        "reward_rejected": rejected_reward,
        "reward_margin": chosen_reward - rejected_reward,
        "reward_accuracy": pair_accuracy(chosen_reward - rejected_reward),
    })


class SimPO(Algorithm):
    name = "simpo"
    description = "SimPO: reference-free, length-normalised preference optimisation with a target margin"
    Args = SimPOArgs
    data_shape = "pairwise"
    needs_reference = False

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        return simpo_loss(policy.mean[:, 0], policy.mean[:, 1], beta=self.args.beta, gamma=self.args.gamma)


@hookimpl
def zoo_register_algorithms(register):
    register(SimPO)
