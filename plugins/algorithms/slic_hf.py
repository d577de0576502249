"""SLiC-HF: Sequence Likelihood Calibration with Human Feedback.

Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback"
(arXiv:2305.10425).

With un-normalised sequence log-likelihoods ``log π_θ(y|x)`` (token sums):

    L = max(0, δ − log π_θ(y⁺|x) + log π_θ(y⁻|x)) − λ log π_θ(y_ref|x)

``δ`` is the calibration margin (``delta``), ``λ`` the regularisation weight (``reg_weight``) of
the cross-entropy term that keeps the policy near its targets. ``y_ref`` is the best-ranked
response of each example (the paper's "best-ranked candidate" choice; with pairwise data it is
the chosen response). Pairwise data is ``k = 2`` with y⁺ the chosen and y⁻ the rejected response.
For ``k > 2`` ranked responses this is the paper's sample-rank variant: the hinge is taken on
the pairs (best, other) for every valid response scored strictly below the best, and averaged
over those pairs. Responses tied with the best form no pair.

No reference model is needed. TRL's ``loss_type="hinge"`` is not this loss: it is RSO's
``max(0, 1 − β h)`` on reference-normalised log-ratios, with no regularisation term.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo import Algorithm, Batch, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import pair_accuracy


@dataclass
class SLiCHFArgs(Hyperparameters):
    #: δ, the margin by which log π(y⁺|x) should exceed log π(y⁻|x).
    delta: float = 1.0
    #: λ, the weight of the cross-entropy term on the best-ranked response (sweep it).
    reg_weight: float = 0.5

    def validate(self) -> None:
        self.require_positive("delta")
        self.require(isinstance(self.reg_weight, (int, float)) and 0 <= self.reg_weight < float("inf"),
                     "reg_weight", "must be a finite number >= 0")


def slic_hf_loss(logps: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, *, delta: float = 1.0,
                 reg_weight: float = 0.5) -> LossOutput:
    """Per-example SLiC-HF losses.

    Args:
        logps: ``[B, k]`` sequence log-likelihoods ``log π_θ(y_i|x)`` (token sums).
        scores: ``[B, k]`` response scores; the highest valid one is y⁺ and y_ref.
        valid: ``[B, k]`` bool, False for padding slots.
    Returns:
        ``losses`` ``[B]``; metrics ``hinge_loss``, ``reg_loss`` (``−log π(y_ref|x)``),
        ``margin`` (mean ``log π(y⁺|x) − log π(y⁻|x)`` over the pairs) and ``pair_accuracy``
        (share of pairs with a positive margin), all ``[B]``.
    """
    best = scores.masked_fill(~valid, float("-inf")).argmax(dim=-1, keepdim=True)
    best_logps = logps.gather(-1, best)
    best_scores = scores.gather(-1, best)
    negatives = valid & (scores < best_scores)
    n_pairs = negatives.sum(-1).clamp(min=1)
    margins = best_logps - logps
    hinge = ((delta - margins).clamp(min=0) * negatives).sum(-1) / n_pairs
    reg = -best_logps.squeeze(-1)
    detached = margins.detach()
    return LossOutput(hinge + reg_weight * reg, {
        "hinge_loss": hinge.detach(),
        "reg_loss": reg.detach(),
        "margin": (detached * negatives).sum(-1) / n_pairs,
        "pair_accuracy": (pair_accuracy(detached) * negatives).sum(-1) / n_pairs,
    })


class SLiCHF(Algorithm):
    name = "slic_hf"
    description = "SLiC-HF: calibration hinge on sequence log-likelihoods + cross-entropy on the best response"
    Args = SLiCHFArgs
    data_shape = "ranked"

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        if batch.scores is None:
            raise ValueError("slic_hf needs response scores; ranked batches carry them")
        a = self.args
        return slic_hf_loss(policy.sum, batch.scores, batch.valid, delta=a.delta, reg_weight=a.reg_weight)


@hookimpl
def zoo_register_algorithms(register):
    register(SLiCHF)
