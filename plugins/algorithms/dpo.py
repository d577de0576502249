"""Direct Preference Optimization and its IPO and conservative variants.

Rafailov et al. 2023, "Direct Preference Optimization" (arXiv:2305.18290).

    h = [log π_θ(y_w|x) − log π_ref(y_w|x)] − [log π_θ(y_l|x) − log π_ref(y_l|x)]

``loss: sigmoid`` (DPO), with label smoothing ε (conservative DPO, Mitchell 2023):

    L = −(1 − ε) log σ(β h) − ε log σ(−β h)

``loss: ipo`` (Azar et al. 2023, arXiv:2310.12036), with its own parameter τ:

    L = (h − 1/(2τ))²

Implicit reward ``r = β (log π_θ − log π_ref)``; ``reward_accuracy`` is the share of pairs whose
chosen implicit reward exceeds the rejected one, a tie counting one half (:func:`zoo.losses.pair_accuracy`).
The loss itself is :func:`zoo.losses.dpo_loss`, shared with online DPO.
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo import Algorithm, Batch, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import PreferenceLoss, dpo_loss


@dataclass
class DPOArgs(Hyperparameters):
    #: β, the strength of the implicit KL constraint (sigmoid loss only).
    beta: float = 0.1
    loss: PreferenceLoss = "sigmoid"
    #: ε, the assumed probability that a preference label is flipped (conservative DPO).
    label_smoothing: float = 0.0
    #: τ, IPO's regularisation parameter (target margin 1/(2τ)); used only by ``loss: ipo``.
    tau: float = 0.1

    def validate(self) -> None:
        self.require_positive("beta", "tau")
        self.require(0 <= self.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)")
        self.require(not (self.loss == "ipo" and self.label_smoothing > 0), "label_smoothing",
                     "applies to the sigmoid loss only; IPO has no label smoothing")


class DPO(Algorithm):
    name = "dpo"
    description = "Direct Preference Optimization (sigmoid, conservative/label-smoothed, IPO)"
    Args = DPOArgs
    data_shape = "pairwise"
    needs_reference = True

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        ref = reference.sum
        a = self.args
        return dpo_loss(policy.sum[:, 0], policy.sum[:, 1], ref[:, 0], ref[:, 1], beta=a.beta, loss=a.loss,
                        label_smoothing=a.label_smoothing, tau=a.tau)


@hookimpl
def zoo_register_algorithms(register):
    register(DPO)
