"""Estimators of KL(π_θ ‖ π_ref) from tokens sampled from π_θ (Schulman 2020, "Approximating KL
divergence"), per token, with r = π_ref(y_t) / π_θ(y_t):

    k1 = −log r = log π_θ − log π_ref          unbiased, can be negative
    k2 = ½ (log r)²                             biased, low variance, ≥ 0
    k3 = r − log r − 1                          unbiased, low variance, ≥ 0

What matters for training is which gradient each *placement* produces on samples of π_θ:

* in the loss (``β k`` added to the token loss and differentiated; the sampling is not):
  E[∇k1] = 0 (a k1 loss term only adds noise), E[∇k2] = ∇KL(π_θ ‖ π_ref),
  E[∇k3] = ∇KL(π_ref ‖ π_θ), the other direction (GRPO's choice);
* in the reward (``−β k`` detached, so it reaches θ through the policy gradient's ∇log π_θ):
  k1 gives ∇KL(π_θ ‖ π_ref) (PPO's and RLOO's choice), k3 gives ∇KL(π_θ ‖ π_ref) −
  ∇KL(π_ref ‖ π_θ), k2 gives no KL's gradient.

So "k1 in the reward" and "k2 in the loss" both follow ∇KL(π_θ ‖ π_ref).
``tests/test_kl_estimators.py`` derives each case exactly on a categorical distribution.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

KLEstimator = Literal["k1", "k2", "k3"]
#: Where a KL term acts: subtracted from the sequence reward, or added to the token loss.
KLPlacement = Literal["reward", "loss"]


def kl_k1(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """``log π_θ − log π_ref`` (elementwise; per token, or on sequence sums)."""
    return logps - ref_logps


def kl_k2(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """``½ (log π_θ − log π_ref)²``."""
    return 0.5 * (logps - ref_logps) ** 2


def kl_k3(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """``π_ref/π_θ − log(π_ref/π_θ) − 1`` (≥ 0)."""
    import torch

    log_ratio = ref_logps - logps
    return torch.exp(log_ratio) - log_ratio - 1


KL_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def kl_estimate(logps: Tensor, ref_logps: Tensor, estimator: KLEstimator) -> Tensor:
    """The chosen estimator, elementwise."""
    try:
        return KL_ESTIMATORS[estimator](logps, ref_logps)
    except KeyError:
        raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {', '.join(KL_ESTIMATORS)}") from None


def placement_problem(estimator: KLEstimator, placement: KLPlacement, coef: float) -> str | None:
    """Why an (estimator, placement) pair is refused, or None: k1 in the loss has an expected gradient
    of zero, so it would only add noise while looking like a KL constraint."""
    if coef > 0 and placement == "loss" and estimator == "k1":
        return ("k1 in the loss has an expected gradient of zero (zoo.losses.kl): use k2 or k3 in the loss, "
                "or kl_placement: reward")
    return None


def sequence_kl(logps: Tensor, ref_logps: Tensor, mask: Tensor, estimator: KLEstimator) -> Tensor:
    """``[N]`` Σ_t k(y_t) over the masked tokens of ``[N, T]`` log-probs: the penalty a reward placement
    subtracts (times β) from each response's reward, computed from π_old when the rollout is made."""
    return (kl_estimate(logps, ref_logps, estimator) * mask.to(logps.dtype)).sum(-1)


def token_kl(logps: Tensor, ref_logps: Tensor, mask: Tensor, estimator: KLEstimator) -> Tensor:
    """``[N, T]`` k(y_t), 0 outside ``mask``: the term a loss placement adds (times β) to the token losses."""
    return kl_estimate(logps, ref_logps, estimator) * mask.to(logps.dtype)
