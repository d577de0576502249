"""RLOO: REINFORCE with a leave-one-out baseline, against a reward source with a KL penalty.

Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
Human Feedback in LLMs" (arXiv:2402.14740); Kool et al. 2019 for the leave-one-out baseline.

For each prompt x, k = ``samples_per_prompt`` responses y_1..y_k are sampled from π_old (the
current policy). Each gets the sequence reward, with the KL penalty to the reference,

    R_i = score(x, y_i) − β Σ_t k(y_i,t),    k1 = log π_old(y_i,t) − log π_ref(y_i,t) by default

(``kl_estimator`` k1/k2/k3; ``kl_placement: loss`` instead adds β Σ_t k to each response's loss,
with k on π_θ, :mod:`zoo.losses.kl`), the score shaped first by ``missing_eos_penalty`` /
``overlong_window`` (:mod:`zoo.losses.shaping`),

and the baseline of the other k − 1 samples of its prompt,

    b_i = (1/(k − 1)) Σ_{j≠i} R_j,      A_i = R_i − b_i = k/(k − 1) · (R_i − mean(R))

The per-response loss is REINFORCE on the whole sequence,

    L_i = −A_i · log π_θ(y_i|x) = −A_i Σ_t log π_θ(y_i,t)

or, with ``clip_range`` ε set, its PPO-clipped form over the tokens (the same gradient at ρ = 1),

    L_i = −Σ_t min(ρ_t A_i, clip(ρ_t, 1 − ε, 1 + ε) A_i),   ρ_t = π_θ(y_i,t) / π_old(y_i,t).

The batch loss is the mean over responses. π_old's token log-probs are recorded while sampling
(no extra forward pass); π_ref's come from one reference pass per rollout, which the loop then
reuses. ``policy_updates`` passes over each rollout take one optimiser step each (only with a
clip, since unclipped REINFORCE is on-policy for the first step only).

Logged per rollout: reward (the score), kl_ref (Σ_t log π_old − log π_ref), non_score_reward
(−β · kl_ref); per step: advantage (|A|), clip_frac (the share of tokens where the clip is active,
:func:`zoo.losses.clip_fraction`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from collections.abc import Iterator
from dataclasses import dataclass

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo import Algorithm, Batch, ExperienceContext, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import (KLEstimator, KLPlacement, RewardShaping, aggregate, clip_fraction, clipped_surrogate, kl_k1,
                        leave_one_out_advantages, placement_problem, sequence_kl, sequence_reinforce, shape_rewards,
                        token_kl)
from zoo.rollout import Sampling, generation_batch, right_padded


@dataclass
class RLOOArgs(Hyperparameters, Sampling, RewardShaping):
    """RLOO's settings; the sampling keys come from :class:`zoo.rollout.Sampling` (``samples_per_prompt`` is k),
    the reward shaping keys from :class:`zoo.losses.RewardShaping`."""

    samples_per_prompt: int = 4
    #: β, the weight of the sequence KL penalty in the reward.
    kl_coef: float = 0.05
    #: k1, k2 or k3 (:mod:`zoo.losses.kl`).
    kl_estimator: KLEstimator = "k1"
    #: ``reward``: β Σ_t k subtracted from the reward; ``loss``: added to each response's loss.
    kl_placement: KLPlacement = "reward"
    #: ε of the PPO-clipped form (None: plain REINFORCE).
    clip_range: float | None = None
    #: Optimiser steps on each rollout (more than one needs ``clip_range``).
    policy_updates: int = 1

    def validate(self) -> None:
        self.require(self.samples_per_prompt >= 2, "samples_per_prompt",
                     "must be >= 2: the leave-one-out baseline needs another sample of the same prompt")
        self.require(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        problem = placement_problem(self.kl_estimator, self.kl_placement, self.kl_coef)
        self.require(problem is None, "kl_estimator", problem or "")
        self.require(self.clip_range is None or 0 < self.clip_range < 1, "clip_range", "must be in (0, 1) or null")
        self.require_positive("policy_updates", "temperature")
        self.require(self.policy_updates == 1 or self.clip_range is not None, "policy_updates",
                     "more than one update per rollout needs clip_range (plain REINFORCE is on-policy only once)")


# ----- pure functions of tensors ----------------------------------------------------------------


def rloo_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *,
              clip_range: float | None = None) -> LossOutput:
    """Per-response RLOO losses from ``[N, T]`` token log-probs and ``[N]`` advantages."""
    if clip_range is None:
        return LossOutput(sequence_reinforce(logps, advantages, mask), {"advantage": advantages.abs().detach()})
    surrogate = clipped_surrogate(logps, old_logps, advantages, mask, clip_low=clip_range)
    losses, _ = aggregate(surrogate.token_losses, mask, "constant", constant=1.0)
    return LossOutput(losses, {"advantage": advantages.abs().detach(),
                               "clip_frac": clip_fraction(surrogate.clipped, mask)})


# ----- the algorithm ----------------------------------------------------------------------------


class RLOO(Algorithm):
    name = "rloo"
    description = "RLOO: REINFORCE with a leave-one-out baseline over k samples, KL-penalised reward"
    Args = RLOOArgs
    data_shape = "prompt"
    needs_reference = True
    needs_reward = True
    generates_online = True

    def make_experience(self, ctx: ExperienceContext, batch: Batch) -> Batch:
        a = self.args
        generation = ctx.generate(batch, a, record_logps=True)
        device = generation.sequences.device
        pad = ctx.tokenizer.pad_token_id
        experience = generation_batch(generation, batch.prompts, pad_id=pad)
        old_logps = right_padded(generation, pad_id=pad).token_logps.to(device)
        reference = ctx.logprobs(ctx.reference, experience)
        if a.kl_estimator == "k1":  # from the sequence sums, the form RLOO has always used
            kl = kl_k1((old_logps * reference.mask).sum(-1), reference.sum[:, 0])
        else:
            kl = sequence_kl(old_logps, reference.token_logps, reference.mask, a.kl_estimator)
        scores = ctx.reward.score(experience.prompts, generation.texts).float().to(device)
        shaped = shape_rewards(scores, generation.finished, generation.response_lengths, a, a.max_new_tokens)
        rewards = shaped - a.kl_coef * kl if a.kl_placement == "reward" else shaped
        advantages = leave_one_out_advantages(rewards.view(-1, a.samples_per_prompt)).flatten()
        ctx.log(reward=scores.mean(), kl_ref=kl.mean(), non_score_reward=(-a.kl_coef * kl).mean())
        experience.reference_logps = reference.sum  # the loop reads these instead of a second reference pass
        if a.kl_placement == "loss":
            experience.reference_token_logps = reference.token_logps
        experience.extras = {"old_logps": old_logps, "advantages": advantages, "scores": scores}
        return experience

    def minibatches(self, experience: Batch) -> Iterator[Batch]:
        for _ in range(self.args.policy_updates):
            yield experience

    def loss(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None, batch: Batch) -> LossOutput:
        e = batch.extras
        a = self.args
        out = rloo_loss(policy.token_logps, e["old_logps"], e["advantages"], policy.mask, clip_range=a.clip_range)
        if a.kl_placement == "loss" and a.kl_coef > 0:
            kl = token_kl(policy.token_logps, reference.token_logps, policy.mask, a.kl_estimator).sum(-1)
            out = LossOutput(out.losses + a.kl_coef * kl, {**out.metrics, "kl": kl.detach()})
        out.metrics["reward"] = e["scores"]
        return out


@hookimpl
def zoo_register_algorithms(register):
    register(RLOO)
