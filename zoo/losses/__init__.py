"""The loss math shared by algorithm plugins: pure functions of tensors, each defined once.

In the spirit of torchtune's ``rlhf/loss``: every function takes log-probs, rewards, advantages and
masks and returns tensors (or a :class:`zoo.LossOutput`); none runs a model or reads trainer state.

* :mod:`zoo.losses.preference`: DPO / conservative DPO / IPO on pairs;
* :mod:`zoo.losses.kto`: KTO on labelled completions, with its reference point;
* :mod:`zoo.losses.orpo`: ORPO's odds-ratio term on pairs (no reference model);
* :mod:`zoo.losses.likelihood`: the token-mean negative log-likelihood (SFT);
* :mod:`zoo.losses.policy_gradient`: the clipped surrogate (token- or sequence-level ratio),
  CISPO, REINFORCE, and the one ``clip_frac``;
* :mod:`zoo.losses.aggregation`: token mean, sequence mean, constant normaliser;
* :mod:`zoo.losses.kl`: the k1, k2, k3 estimators of KL(π_θ ‖ π_ref) and what each placement's
  gradient follows;
* :mod:`zoo.losses.advantages`: whitening, GAE, group-normalised, batch-normalised and
  leave-one-out advantages;
* :mod:`zoo.losses.shaping`: the missing-EOS penalty and over-long shaping of rewards, with
  :class:`RewardShaping`, the option set online algorithms inherit;
* :mod:`zoo.losses.accuracy`: :func:`pair_accuracy`, the preference accuracy of a margin, a
  metric preference losses and the preference suite report.

Plugins import these names from ``zoo.losses`` (a front module, like ``zoo``).
"""
from __future__ import annotations

from zoo.losses.accuracy import pair_accuracy
from zoo.losses.advantages import (batch_normalised_advantages, gae, group_advantages, leave_one_out_advantages,
                                   whiten)
from zoo.losses.aggregation import Aggregation, aggregate, masked_mean, masked_sums, sequence_mean, token_mean
from zoo.losses.likelihood import token_mean_nll
from zoo.losses.kto import kl_reference_point, kto_loss, weight_ratio_advice
from zoo.losses.kl import (KL_ESTIMATORS, KLEstimator, KLPlacement, kl_estimate, kl_k1, kl_k2, kl_k3,
                           placement_problem, sequence_kl, token_kl)
from zoo.losses.orpo import log_odds, orpo_loss
from zoo.losses.policy_gradient import (RatioLevel, Surrogate, cispo_objective, clip_fraction, clipped_surrogate,
                                        log_importance_ratio, sequence_reinforce)
from zoo.losses.preference import PreferenceLoss, dpo_loss
from zoo.losses.shaping import RewardShaping, shape_rewards

__all__ = [
    "aggregate", "Aggregation", "batch_normalised_advantages", "cispo_objective", "clip_fraction",
    "clipped_surrogate", "dpo_loss", "gae", "group_advantages", "kl_estimate", "KL_ESTIMATORS", "kl_k1", "kl_k2",
    "kl_k3", "kl_reference_point", "KLEstimator", "KLPlacement", "kto_loss", "leave_one_out_advantages",
    "log_importance_ratio", "log_odds", "masked_mean", "masked_sums", "orpo_loss", "pair_accuracy",
    "placement_problem", "PreferenceLoss", "RatioLevel", "RewardShaping", "sequence_kl", "sequence_mean",
    "sequence_reinforce", "shape_rewards", "Surrogate", "token_kl", "token_mean", "token_mean_nll",
    "weight_ratio_advice", "whiten",
]
