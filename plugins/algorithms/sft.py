"""Supervised fine-tuning.

    L = −(1/N_tokens) Σ log π_θ(y_t | x, y_<t)

over response tokens (the prompt is masked unless ``data.train_on_prompt``). Per-example losses
are token sums divided by the batch's mean token count, so their batch mean equals the
token-level mean above while each example's share stays proportional to its length.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo import Algorithm, Batch, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import token_mean_nll


@dataclass
class SFTArgs(Hyperparameters):
    pass


def sft_loss(logps: torch.Tensor, lengths: torch.Tensor) -> LossOutput:
    """Token-level negative log-likelihood.

    Args:
        logps: ``[B]`` summed response log-probs.
        lengths: ``[B]`` response token counts.
    Returns:
        losses ``[B]`` with ``losses.mean() == −Σ logps / Σ lengths``; metrics ``nll_per_token``.
    """
    out = token_mean_nll(logps, lengths)
    out.metrics["tokens"] = lengths.float()
    return out


class SFT(Algorithm):
    name = "sft"
    description = "Supervised fine-tuning on prompt/completion pairs"
    Args = SFTArgs
    data_shape = "sft"

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        return sft_loss(policy.sum[:, 0], policy.lengths[:, 0])


@hookimpl
def zoo_register_algorithms(register):
    register(SFT)
