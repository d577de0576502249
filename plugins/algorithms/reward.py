"""Reward model: a scalar head on the policy's backbone, trained on preferences or scores.

Ouyang et al. 2022, "Training language models to follow instructions with human feedback"
(InstructGPT, arXiv:2203.02155); Stiennon et al. 2020 (arXiv:2009.01325).

r_φ(x, y) is a one-output ``AutoModelForSequenceClassification``, which transformers reads at
the last token that is not the pad token: the EOS of ``prompt + response + EOS`` when the pad
token differs from EOS (the tiny tokenizer, most chat models). A tokenizer without a pad token
gets EOS as its pad (:func:`zoo.models.load_tokenizer`); then the EOS counts as padding too and
the head reads the response's last token before it, for every response alike.

``objective: pairwise`` (Bradley–Terry). For every pair of an example's responses with scores
s_i > s_j (a preference pair is chosen = 1, rejected = 0):

    L = −log σ(r_φ(x, y_i) − r_φ(x, y_j))

averaged over the example's pairs, so an example with K ranked responses contributes its
K(K−1)/2 comparisons as one unit (InstructGPT); ties carry no preference and are skipped.

``objective: pointwise``: regression on the given scores, L = mean_i (r_φ(x, y_i) − s_i)².

Metrics: ``accuracy`` (share of ordered pairs the model orders correctly), ``margin`` (mean
r_i − r_j over them). The trained model is saved so that
``AutoModelForSequenceClassification.from_pretrained(output_dir/model)`` loads it; the mean and
standard deviation of its scores on the training responses are stored in its config
(``zoo_score_mean``, ``zoo_score_std``) and subtracted by ``reward: {model: PATH}`` unless
``reward.args.normalize: false``, because Bradley–Terry fixes only differences of scores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo import Algorithm, Batch, DataError, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import pair_accuracy


@dataclass
class RewardArgs(Hyperparameters):
    objective: Literal["pairwise", "pointwise"] = "pairwise"


def _ordered_pairs(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[B, k, k]`` bool, True where response ``i`` is strictly preferred to response ``j``."""
    both_valid = valid[:, :, None] & valid[:, None, :]
    return (scores[:, :, None] > scores[:, None, :]) & both_valid


def pair_metrics(rewards: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pairwise accuracy and margin of predicted ``rewards`` against target ``scores`` (``[B, k]``).

    Both are scalars over all ordered pairs of the batch, so examples with more responses weigh more.
    """
    pairs = _ordered_pairs(scores, valid)
    diff = (rewards[:, :, None] - rewards[:, None, :]).detach()
    count = pairs.sum().clamp(min=1)
    return {"accuracy": (pair_accuracy(diff) * pairs).sum() / count, "margin": (diff * pairs).sum() / count}


def bradley_terry_loss(rewards: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor) -> LossOutput:
    """Per-example Bradley–Terry losses.

    Args:
        rewards: ``[B, k]`` predicted rewards r_φ(x, y_i).
        scores: ``[B, k]`` target scores; only their order matters.
        valid: ``[B, k]`` bool, the responses an example really has.
    Returns:
        losses ``[B]``: mean over the example's ordered pairs of −log σ(r_i − r_j), 0 when it has
        none; metrics ``accuracy`` and ``margin`` (scalars), ``reward`` (``[B]`` mean prediction).
    """
    import torch.nn.functional as F

    pairs = _ordered_pairs(scores, valid)
    diff = rewards[:, :, None] - rewards[:, None, :]
    per_pair = -F.logsigmoid(diff) * pairs
    losses = per_pair.sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1)
    return LossOutput(losses, {**pair_metrics(rewards, scores, valid), "reward": _valid_mean(rewards, valid)})


def regression_loss(rewards: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor) -> LossOutput:
    """Per-example mean squared error between ``rewards`` and ``scores`` over valid responses."""
    squared = (rewards - scores) ** 2 * valid
    losses = squared.sum(1) / valid.sum(1).clamp(min=1)
    return LossOutput(losses, {**pair_metrics(rewards, scores, valid), "reward": _valid_mean(rewards, valid)})


def _valid_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (values.detach() * valid).sum(1) / valid.sum(1).clamp(min=1)


class RewardModel(Algorithm):
    name = "reward"
    description = "Reward model: scalar head, Bradley–Terry on preferences or regression on scores"
    Args = RewardArgs
    # Ranked data also accepts preference pairs (as k = 2, scores 1 and 0), so one shape serves both
    # objectives.
    data_shape = "ranked"
    output = "scores"

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        rewards = policy.sum
        if batch.scores is None:
            raise DataError("reward model training needs preference pairs or scored responses; the batch has "
                            "no scores")
        scores = batch.scores
        if self.args.objective == "pairwise":
            return bradley_terry_loss(rewards, scores.to(rewards.dtype), batch.valid)
        return regression_loss(rewards, scores.to(rewards.dtype), batch.valid)


@hookimpl
def zoo_register_algorithms(register):
    register(RewardModel)
