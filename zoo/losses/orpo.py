"""ORPO's loss (Hong, Lee and Thorne 2024, "ORPO: Monolithic Preference Optimization without
Reference Model", arXiv:2403.07691).

No reference model. With ``P(y|x) = exp(mean_t log π_θ(y_t|x, y_<t))``, the length-normalised
likelihood, and ``odds(y) = P / (1 − P)``:

    log odds(y) = log P − log(1 − P) = m − log(1 − exp(m)),   m = mean_t log π_θ(y_t | x, y_<t) ≤ 0
    L_OR        = −log σ(log odds(y_w) − log odds(y_l))
    L           = L_SFT(y_w) + λ L_OR

``log(1 − exp(m))`` is computed as ``log1p(−exp(m))`` below m = −log 2 and as ``log(−expm1(m))``
above it, each accurate where the other loses digits; ``m`` is kept at or below ``−1e-6`` so that a
completion the model is certain of (``m`` rounding to 0, P = 1) has large but finite odds rather
than infinite ones.

``L_SFT`` is the negative log-likelihood of the chosen completions averaged over all their tokens in
the batch, as in the authors' code and TRL's ``ORPOTrainer`` (the causal-LM loss of the chosen
half), so a longer chosen completion weighs more. Per example that is
``−log π_θ(y_w|x) · B / Σ_b |y_w,b|``, whose batch mean is the token average.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo.batch import LossOutput

#: The largest mean log-prob used for the odds: P stays below 1 so that the odds stay finite.
MAX_MEAN_LOGP = -1e-6


def log1mexp(x: Tensor) -> Tensor:
    """``log(1 − exp(x))`` for ``x < 0``, accurate over the whole range (Mächler 2012)."""
    import torch

    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_odds(mean_logps: Tensor) -> Tensor:
    """``log(P / (1 − P))`` of ``P = exp(mean_logps)``, elementwise."""
    m = mean_logps.clamp(max=MAX_MEAN_LOGP)
    return m - log1mexp(m)


def orpo_loss(chosen_sum: Tensor, chosen_lengths: Tensor, chosen_mean: Tensor, rejected_mean: Tensor, *,
              odds_ratio_weight: float) -> LossOutput:
    """Per-pair ORPO losses.

    Args:
        chosen_sum: ``[B]`` ``log π_θ(y_w|x)`` summed over the chosen tokens; chosen_lengths: ``[B]``
            ``|y_w|``; chosen_mean, rejected_mean: ``[B]`` mean per-token log-probs (``m`` above).
        odds_ratio_weight: λ > 0, the weight of the odds-ratio term.

    Returns:
        ``losses`` ``[B]``; metrics ``nll`` (the chosen NLL term), ``log_odds_ratio`` (``log σ`` of the
        log-odds difference), ``log_odds_chosen`` (the difference), and the rewards ``λ m`` of both
        completions with their margin, as TRL logs them.
    """
    import torch.nn.functional as F

    tokens = chosen_lengths.float().clamp(min=1)
    nll = -chosen_sum * (tokens.numel() / tokens.sum())
    difference = log_odds(chosen_mean) - log_odds(rejected_mean)
    log_odds_ratio = F.logsigmoid(difference)
    lam = odds_ratio_weight
    chosen_reward, rejected_reward = lam * chosen_mean.detach(), lam * rejected_mean.detach()
    return LossOutput(nll - lam * log_odds_ratio, {
        "nll": nll.detach(),
        "log_odds_ratio": log_odds_ratio.detach(),
        "log_odds_chosen": difference.detach(),
        "reward_chosen": chosen_reward,
        "reward_rejected": rejected_reward,
        "reward_margin": chosen_reward - rejected_reward,
    })
