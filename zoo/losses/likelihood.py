"""Negative log-likelihood of chosen responses (SFT, rejection sampling's fine-tuning phase).

    L = −(1/N_tokens) Σ_i log π_θ(y_i|x_i),   N_tokens = Σ_i |y_i|

Per-example losses are sequence sums over the batch's mean token count (:func:`token_mean`), so
their batch mean is the token mean while each example's share stays proportional to its length.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo.batch import LossOutput
from zoo.losses.aggregation import sequence_mean, token_mean


def token_mean_nll(logps: Tensor, lengths: Tensor) -> LossOutput:
    """``[B]`` summed response log-probs and token counts → per-example losses whose mean is
    ``−Σ logps / Σ lengths``; metric ``nll_per_token`` (each response's own mean)."""
    return LossOutput(token_mean(-logps, lengths), {"nll_per_token": sequence_mean(-logps, lengths).detach()},
                      tokens=lengths.sum().detach())
