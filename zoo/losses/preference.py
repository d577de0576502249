"""Preference losses on sequence log-probs of (chosen, rejected) pairs.

Rafailov et al. 2023, "Direct Preference Optimization" (arXiv:2305.18290). With

    h = [log π_θ(y_w|x) − log π_ref(y_w|x)] − [log π_θ(y_l|x) − log π_ref(y_l|x)]

``loss: sigmoid`` (DPO), with label smoothing ε (conservative DPO, Mitchell 2023):

    L = −(1 − ε) log σ(β h) − ε log σ(−β h)

``loss: ipo`` (Azar et al. 2023, arXiv:2310.12036), with its own parameter τ:

    L = (h − 1/(2τ))²

Implicit reward ``r = β (log π_θ − log π_ref)``; ``reward_accuracy`` is the share of pairs whose
chosen implicit reward exceeds the rejected one, a tie counting one half (:func:`zoo.losses.pair_accuracy`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo.batch import LossOutput
from zoo.losses.accuracy import pair_accuracy

PreferenceLoss = Literal["sigmoid", "ipo"]


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, *, beta: float, loss: str = "sigmoid",
             label_smoothing: float = 0.0, tau: float = 0.1) -> LossOutput:
    """Per-pair DPO / cDPO / IPO losses from ``[B]`` sequence log-probs (module docstring)."""
    import torch.nn.functional as F

    chosen_ratio = policy_chosen - reference_chosen
    rejected_ratio = policy_rejected - reference_rejected
    h = chosen_ratio - rejected_ratio
    if loss == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss == "ipo":
        losses = (h - 1 / (2 * tau)) ** 2
    else:
        raise ValueError(f"unknown DPO loss {loss!r}")
    chosen_reward = beta * chosen_ratio.detach()
    rejected_reward = beta * rejected_ratio.detach()
    return LossOutput(losses, {
        "reward_chosen": chosen_reward,
        "reward_rejected": rejected_reward,
        "reward_margin": chosen_reward - rejected_reward,
        "reward_accuracy": pair_accuracy(chosen_reward - rejected_reward),
        "logps_chosen": policy_chosen.detach(),
        "logps_rejected": policy_rejected.detach(),
    })
