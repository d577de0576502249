"""KTO's loss (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization",
arXiv:2402.01306).

Each completion is labelled desirable or undesirable on its own. With the log-ratio
``r = log π_θ(y|x) − log π_ref(y|x)`` (sequence sums) and the reference point ``z``:

    z    = max(0, mean over mismatched pairs (x_i, y_j), j ≠ i, of log π_θ(y_j|x_i) − log π_ref(y_j|x_i))
    L(y) = λ_D (1 − σ(β (r − z)))    if y is desirable
           λ_U (1 − σ(β (z − r)))    if y is undesirable

``z`` estimates KL(π_θ ‖ π_ref) from completions scored after prompts they were not written for,
so it does not move with what the loss does to the training completions; it carries no gradient
(the paper's prescription: it sets the level of the value function, not a direction). TRL's
``KTOTrainer`` computes the same (``kl = (policy_KL_logps − reference_KL_logps).mean().clamp(min=0)``,
under ``no_grad``); it also averages ``z`` over processes, whereas here each process uses its own
batch's pairs.

The paper's weighting guidance: with ``n_D`` desirable and ``n_U`` undesirable examples,
``λ_D n_D / (λ_U n_U)`` should lie in ``[1, 4/3]`` (:func:`weight_ratio_advice`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo.batch import LossOutput

#: The paper's range for λ_D n_D / (λ_U n_U).
WEIGHT_RATIO_RANGE = (1.0, 4.0 / 3.0)


def kl_reference_point(policy_mismatched: Tensor, reference_mismatched: Tensor) -> Tensor:
    """``z = max(0, mean(policy − reference))`` over ``[N]`` mismatched-pair sequence log-probs; a
    detached scalar."""
    return (policy_mismatched - reference_mismatched).mean().detach().clamp(min=0)


def kto_loss(policy: Tensor, reference: Tensor, desirable: Tensor, policy_mismatched: Tensor,
             reference_mismatched: Tensor, *, beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> LossOutput:
    """Per-example KTO losses.

    Args:
        policy, reference: ``[B]`` sequence log-probs ``log π(y|x)`` of the labelled completions.
        desirable: ``[B]`` bool, the labels.
        policy_mismatched, reference_mismatched: ``[N]`` sequence log-probs of mismatched pairs
            (completions after other examples' prompts), for the reference point ``z``.
        beta: β > 0; desirable_weight, undesirable_weight: λ_D, λ_U > 0.

    Returns:
        ``losses`` ``[B]`` as in the module docstring; metrics ``kl`` (``z``, scalar), ``reward``
        (``β r``, ``[B]``), and the batch's mean reward of each label (scalar; 0 when the batch has
        none of that label).
    """
    import torch

    desirable = desirable.bool()
    z = kl_reference_point(policy_mismatched, reference_mismatched)
    ratio = policy - reference
    losses = torch.where(desirable, desirable_weight * (1 - torch.sigmoid(beta * (ratio - z))),
                         undesirable_weight * (1 - torch.sigmoid(beta * (z - ratio))))
    reward = beta * ratio.detach()

    def mean_over(mask: Tensor) -> Tensor:
        return (reward * mask).sum() / mask.sum().clamp(min=1)

    return LossOutput(losses, {
        "kl": z,
        "reward": reward,
        "reward_desirable": mean_over(desirable),
        "reward_undesirable": mean_over(~desirable),
    })


def weight_ratio_advice(desirable: int, undesirable: int, desirable_weight: float,
                        undesirable_weight: float) -> str | None:
    """None when ``λ_D n_D / (λ_U n_U)`` is in the paper's range ``[1, 4/3]``, else what to set.

    Like TRL, it names a range for either weight (keeping the other), not for both.
    """
    if desirable == 0 or undesirable == 0:
        missing = "undesirable" if undesirable == 0 else "desirable"
        return (f"the training data has no {missing} examples ({desirable} desirable, {undesirable} undesirable): "
                f"KTO then only {'raises' if missing == 'undesirable' else 'lowers'} the likelihood of what it "
                f"sees, relative to the reference point")
    low, high = WEIGHT_RATIO_RANGE
    ratio = desirable_weight * desirable / (undesirable_weight * undesirable)
    if low <= ratio <= high:
        return None
    d_range = (low * undesirable_weight * undesirable / desirable, high * undesirable_weight * undesirable / desirable)
    u_range = (desirable_weight * desirable / (high * undesirable), desirable_weight * desirable / (low * undesirable))
    return (f"λ_D n_D / (λ_U n_U) = {desirable_weight:g}·{desirable} / ({undesirable_weight:g}·{undesirable}) = "
            f"{ratio:.3g}, outside the paper's range [1, 4/3]; set algorithm_args.desirable_weight in "
            f"[{d_range[0]:.3g}, {d_range[1]:.3g}] or algorithm_args.undesirable_weight in "
            f"[{u_range[0]:.3g}, {u_range[1]:.3g}] (one of them, not both)")
