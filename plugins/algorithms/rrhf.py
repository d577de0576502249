"""RRHF: Rank Responses to align language models with Human Feedback.

Yuan et al. 2023, "RRHF: Rank Responses to Align Language Models with Human Feedback without
tears" (arXiv:2304.05302).

Each prompt comes with ``k ≥ 2`` responses ``y_i`` and scores ``r_i``. With the length-normalised
log-likelihood ``p_i = log π_θ(y_i|x) / |y_i|``:

    L_rank = Σ_{r_i < r_j} max(0, p_i − p_j)        (all ordered pairs of real responses)
    L_ft   = −(1/|y_b|) Σ_t log π_θ(y_b,t | x, y_b,<t),   b = argmax_i r_i
    L      = rank_weight · L_rank + L_ft

Responses with equal scores form no pair, so ties add no ranking term. Padding slots of
examples with fewer than ``k`` responses (``batch.valid``) take part in neither term; among
equally best-scored responses the first one is the fine-tuning target.

The paper writes L_ft as a token sum, but its released code averages (``.mean()``) the masked
token log-probs of the best response over the padded sequence length. This plugin takes the
mean over the response's own tokens: the per-token scale of the released code, without its
dependence on how much padding a batch happens to have, and the same normalisation as the
``p_i`` of L_rank (with a sum, L_ft would outweigh the ranking term by a factor of the response
length). No reference model is needed. The paper found ``rank_weight`` 1 better than 10 or 100.

Pairwise data (``prompt``/``chosen``/``rejected``) is read as ``k = 2`` with scores (1, 0).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo import Algorithm, Batch, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import pair_accuracy


@dataclass
class RRHFArgs(Hyperparameters):
    #: Weight of the ranking term; 0 leaves plain fine-tuning on the best response (an ablation).
    rank_weight: float = 1.0

    def validate(self) -> None:
        self.require(isinstance(self.rank_weight, (int, float)) and 0 <= self.rank_weight < float("inf"),
                     "rank_weight", "must be a finite number >= 0")


def best_response(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[B]`` index of the highest-scored valid response (the first one among equals)."""
    return scores.masked_fill(~valid, float("-inf")).argmax(dim=-1)


def ranked_pairs(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[B, k, k]`` bool, True at ``[b, i, j]`` when response ``j`` outranks ``i`` (``r_i < r_j``)."""
    both_valid = valid.unsqueeze(-1) & valid.unsqueeze(-2)
    return (scores.unsqueeze(-1) < scores.unsqueeze(-2)) & both_valid


def rrhf_loss(mean_logps: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, *,
              rank_weight: float = 1.0) -> LossOutput:
    """Per-example RRHF losses.

    Args:
        mean_logps: ``[B, k]`` length-normalised log-likelihoods ``p_i``.
        scores: ``[B, k]`` response scores ``r_i``.
        valid: ``[B, k]`` bool, False for padding slots.
    Returns:
        ``losses`` ``[B]``; metrics ``rank_loss`` and ``ft_loss`` (``[B]``) and
        ``ranking_accuracy`` (scalar: the share of ordered pairs with ``p_i < p_j``).
    """
    pairs = ranked_pairs(scores, valid)
    # violation[b, i, j] = p_i − p_j: positive when the worse response i is the likelier one
    violation = mean_logps.unsqueeze(-1) - mean_logps.unsqueeze(-2)
    rank_loss = (violation.clamp(min=0) * pairs).sum(dim=(-2, -1))
    best = best_response(scores, valid)
    ft_loss = -mean_logps.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    correct = (pair_accuracy(-violation.detach()) * pairs).sum()
    accuracy = correct.float() / pairs.sum().clamp(min=1)
    return LossOutput(rank_weight * rank_loss + ft_loss, {
        "rank_loss": rank_loss.detach(),
        "ft_loss": ft_loss.detach(),
        "ranking_accuracy": accuracy,
    })


class RRHF(Algorithm):
    name = "rrhf"
    description = "RRHF: ranking hinge on length-normalised log-probs + fine-tuning on the best response"
    Args = RRHFArgs
    data_shape = "ranked"

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        if batch.scores is None:
            raise ValueError("rrhf needs response scores; ranked batches carry them")
        return rrhf_loss(policy.mean, batch.scores, batch.valid, rank_weight=self.args.rank_weight)


@hookimpl
def zoo_register_algorithms(register):
    register(RRHF)
