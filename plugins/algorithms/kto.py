"""KTO: Kahneman–Tversky Optimization.

Ethayarajh, Xu, Muennighoff, Jurafsky and Kiela 2024, "KTO: Model Alignment as Prospect Theoretic
Optimization" (arXiv:2402.01306). Each completion is labelled desirable or undesirable on its own
(TRL's unpaired ``prompt`` / ``completion`` / ``label`` rows; pairwise rows are read as a desirable
chosen and an undesirable rejected completion) and valued against a reference point:

    r(x, y) = log π_θ(y|x) − log π_ref(y|x)
    z       = max(0, mean over the batch's mismatched pairs (x_i, y_j), j ≠ i, of r(x_i, y_j)), no gradient
    L(x, y) = λ_D (1 − σ(β (r(x, y) − z)))    if y is desirable
              λ_U (1 − σ(β (z − r(x, y))))    if y is undesirable

The ``unpaired`` data shape gives every example its mismatched pair in slot 1 (the completion of
another example scored after this prompt, :mod:`zoo.data.unpaired`), so ``policy.sum[:, 1]`` and
``reference.sum[:, 1]`` are the KL estimate's terms; the math is :func:`zoo.losses.kto_loss`.

Hyperparameters: ``beta`` (β > 0, default 0.1 as in the paper), ``desirable_weight`` (λ_D) and
``undesirable_weight`` (λ_U), both 1.0. The paper asks for ``λ_D n_D / (λ_U n_U)`` in ``[1, 4/3]``
for ``n_D`` desirable and ``n_U`` undesirable training examples; a run whose data and weights fall
outside it is warned, with the weights that would fit, when its data is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo import Algorithm, Batch, DataSummary, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import kto_loss, weight_ratio_advice


@dataclass
class KTOArgs(Hyperparameters):
    #: β, the sharpness of the value function (the strength of the implicit KL constraint).
    beta: float = 0.1
    #: λ_D, the weight of desirable completions.
    desirable_weight: float = 1.0
    #: λ_U, the weight of undesirable completions.
    undesirable_weight: float = 1.0

    def validate(self) -> None:
        self.require_positive("beta", "desirable_weight", "undesirable_weight")


class KTO(Algorithm):
    name = "kto"
    description = "KTO: prospect-theoretic loss on desirable/undesirable completions against a KL reference point"
    Args = KTOArgs
    data_shape = "unpaired"
    needs_reference = True

    def loss(self, policy: SequenceLogProbs, reference: SequenceLogProbs, batch: Batch) -> LossOutput:
        a = self.args
        return kto_loss(policy.sum[:, 0], reference.sum[:, 0], batch.scores[:, 0] > 0, policy.sum[:, 1],
                        reference.sum[:, 1], beta=a.beta, desirable_weight=a.desirable_weight,
                        undesirable_weight=a.undesirable_weight)

    def check_data(self, summary: DataSummary) -> list[str]:
        advice = weight_ratio_advice(summary.desirable, summary.undesirable, self.args.desirable_weight,
                                     self.args.undesirable_weight)
        return [] if advice is None else [advice]


@hookimpl
def zoo_register_algorithms(register):
    register(KTO)
