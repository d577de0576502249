"""ORPO: Monolithic Preference Optimization without Reference Model.

Hong, Lee and Thorne 2024 (arXiv:2403.07691). SFT and preference alignment in one loss, with no
reference model: the chosen completion's NLL plus an odds-ratio term that favours it over the
rejected one, on length-normalised likelihoods ``P(y|x) = exp(mean_t log π_θ(y_t|x, y_<t))``:

    log odds(y) = log P(y|x) − log(1 − P(y|x))
    L = L_SFT(y_w) − λ log σ(log odds(y_w) − log odds(y_l))

``L_SFT`` averages over the chosen tokens of the batch, as the authors' code and TRL do; the math,
computed in log space, is :func:`zoo.losses.orpo_loss`. The paper trains from the base model
with no separate SFT stage, which the NLL term stands in for.

Hyperparameter: ``odds_ratio_weight`` (λ > 0; the paper's default 0.1, TRL's ``beta``). The
logged rewards are ``λ · mean log π`` of each completion, as TRL logs them.
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo import Algorithm, Batch, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import orpo_loss, pair_accuracy


@dataclass
class ORPOArgs(Hyperparameters):
    #: λ, the weight of the odds-ratio term against the chosen completion's NLL.
    odds_ratio_weight: float = 0.1

    def validate(self) -> None:
        self.require_positive("odds_ratio_weight")


class ORPO(Algorithm):
    name = "orpo"
    description = "ORPO: chosen NLL plus a log odds-ratio preference term, no reference model"
    Args = ORPOArgs
    data_shape = "pairwise"
    needs_reference = False

    def loss(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None, batch: Batch) -> LossOutput:
        out = orpo_loss(policy.sum[:, 0], policy.lengths[:, 0], policy.mean[:, 0], policy.mean[:, 1],
                        odds_ratio_weight=self.args.odds_ratio_weight)
        out.metrics["reward_accuracy"] = pair_accuracy(out.metrics["reward_margin"])
        return out


@hookimpl
def zoo_register_algorithms(register):
    register(ORPO)
