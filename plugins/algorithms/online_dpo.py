"""Online and iterative DPO: DPO / IPO on pairs sampled from the policy and labelled by a reward.

Online AI feedback: Guo et al. 2024 (arXiv:2402.04792); iterative DPO: Xiong et al. 2024
(arXiv:2312.11456); DPO: Rafailov et al. 2023 (arXiv:2305.18290); IPO: Azar et al. 2023
(arXiv:2310.12036).

For each prompt x, n = ``samples_per_prompt`` ≥ 2 responses are sampled and scored by the reward
source; the best-scored one is chosen, y_w, the worst-scored one rejected, y_l (the first of
equal scores; n = 2 is the plain pair). Prompts whose best and worst scores tie carry no
preference and are dropped from training batches (validation keeps them, so that its loss is
measured on every prompt). With

    h = [log π_θ(y_w|x) − log π_ref(y_w|x)] − [log π_θ(y_l|x) − log π_ref(y_l|x)]

the loss per pair is DPO's ``L = −log σ(β h)`` (``loss: sigmoid``) or IPO's ``L = (h − 1/(2τ))²``
(``loss: ipo``), against the frozen reference.

``mode: online`` samples every batch's pairs from the current policy. ``mode: iterative``
samples from a snapshot of the policy taken at the start of each round (one epoch over the
prompts, ``train.max_epochs`` rounds), so a round's pairs all come from the same policy and
are regenerated once per round; the snapshot costs one more copy of the policy's weights. The
round is run state; after a resume the snapshot is retaken from the resumed policy.

Logged per batch: reward_chosen, reward_rejected (the scores), tied_fraction (pairs dropped),
round; per step: reward_margin and reward_accuracy (a tie counting one half, :func:`zoo.losses.pair_accuracy`)
of the implicit reward β (log π_θ − log π_ref). The loss is :func:`zoo.losses.dpo_loss`, DPO's own.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor, nn

from zoo import Algorithm, Batch, ExperienceContext, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import PreferenceLoss, dpo_loss
from zoo.rollout import Sampling, generation_batch


@dataclass
class OnlineDPOArgs(Hyperparameters, Sampling):
    """Online DPO's settings; the sampling keys come from :class:`zoo.rollout.Sampling`."""

    samples_per_prompt: int = 2
    #: β, the strength of the implicit KL constraint (``loss: sigmoid``).
    beta: float = 0.1
    loss: PreferenceLoss = "sigmoid"
    #: τ, IPO's regularisation (target margin 1/(2τ)); used only by ``loss: ipo``.
    tau: float = 0.1
    #: ``online``: pairs from the current policy; ``iterative``: from the policy at the round's start.
    mode: Literal["online", "iterative"] = "online"

    def validate(self) -> None:
        self.require(self.samples_per_prompt >= 2, "samples_per_prompt", "must be >= 2: a pair needs two samples")
        self.require_positive("beta", "tau", "temperature")


# ----- pure functions of tensors ----------------------------------------------------------------


def label_pairs(scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``[B, n]`` scores → (chosen index, rejected index, keep) per prompt.

    Chosen is the first best-scored sample, rejected the first worst-scored one; ``keep`` is
    False where they tie (no preference).
    """
    chosen = scores.argmax(dim=1)
    rejected = scores.argmin(dim=1)
    keep = scores.gather(1, chosen[:, None]).squeeze(1) > scores.gather(1, rejected[:, None]).squeeze(1)
    return chosen, rejected, keep


# ----- the algorithm ----------------------------------------------------------------------------


class OnlineDPO(Algorithm):
    name = "online_dpo"
    description = "Online / iterative DPO: DPO or IPO on on-policy pairs labelled by the reward source"
    Args = OnlineDPOArgs
    data_shape = "prompt"
    needs_reference = True
    needs_reward = True
    generates_online = True

    def __init__(self, args: OnlineDPOArgs | None = None):
        super().__init__(args)
        self.round = -1
        self.snapshot: nn.Module | None = None

    def _sampling_model(self, ctx: ExperienceContext) -> nn.Module | None:
        """None (the policy itself) online; the round's snapshot in iterative mode."""
        if self.args.mode == "online":
            return None
        if self.snapshot is None or (ctx.training and ctx.epoch != self.round):
            self.snapshot = copy.deepcopy(ctx.policy).eval().requires_grad_(False)
            self.round = ctx.epoch
        return self.snapshot

    def make_experience(self, ctx: ExperienceContext, batch: Batch) -> Batch:
        import torch

        a = self.args
        n = a.samples_per_prompt
        generation = ctx.generate(batch, a, model=self._sampling_model(ctx))
        prompts = [batch.prompts[int(i)] for i in generation.prompt_index]
        scores = ctx.reward.score(prompts, generation.texts).float().view(-1, n)
        chosen, rejected, preferred = label_pairs(scores)
        keep = preferred if ctx.training else torch.ones_like(preferred)
        starts = torch.arange(scores.shape[0]) * n
        rows = torch.stack([starts + chosen, starts + rejected], dim=1)[keep].flatten()
        ctx.log(reward_chosen=scores.max(1).values.mean(), reward_rejected=scores.min(1).values.mean(),
                tied_fraction=1 - preferred.float().mean(), round=float(max(self.round, 0)))
        device = generation.sequences.device
        experience = generation_batch(generation, batch.prompts, rows=rows.to(device), group_size=2,
                                      pad_id=ctx.tokenizer.pad_token_id)
        if rows.numel():
            experience.reference_logps = ctx.logprobs(ctx.reference, experience).sum
        return experience

    def minibatches(self, experience: Batch) -> Iterator[Batch]:
        if experience.input_ids.shape[0]:  # every pair of this batch tied: no step
            yield experience

    def loss(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None, batch: Batch) -> LossOutput:
        a = self.args
        out = dpo_loss(policy.sum[:, 0], policy.sum[:, 1], reference.sum[:, 0], reference.sum[:, 1],
                       beta=a.beta, loss=a.loss, tau=a.tau)
        # reward_chosen / reward_rejected name the sampled responses' scores here (the rollout's log).
        out.metrics = {name: out.metrics[name] for name in ("reward_margin", "reward_accuracy")}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"round": self.round}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.round = int(state.get("round", -1))
        self.snapshot = None


@hookimpl
def zoo_register_algorithms(register):
    register(OnlineDPO)
