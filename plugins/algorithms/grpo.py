"""GRPO: group-relative policy optimisation, with the Dr. GRPO and DAPO aggregations.

Shao et al. 2024, DeepSeekMath (arXiv:2402.03300); Dr. GRPO: Liu et al. 2025 (arXiv:2503.20783);
DAPO: Yu et al. 2025 (arXiv:2503.14476).

For each prompt x a group of G = ``samples_per_prompt`` responses y_1..y_G is sampled from π_old
(the current policy) and scored, R_1..R_G. Every token of response i gets the advantage

    grpo, dapo:  Â_i = (R_i − mean(R)) / (std(R) + ε_std)     (std with Bessel's correction)
    dr_grpo:     Â_i =  R_i − mean(R)

and the per-token loss, with ρ_t = π_θ(y_i,t) / π_old(y_i,t),

    ℓ_i,t = −min(ρ_t Â_i, clip(ρ_t, 1 − ε_low, 1 + ε_high) Â_i) + β k3_i,t
    k3_i,t = π_ref(y_i,t)/π_θ(y_i,t) − log(π_ref(y_i,t)/π_θ(y_i,t)) − 1

(ε_high defaults to ε_low: the symmetric clip; k3 is the low-variance, always ≥ 0 KL estimator).
The ``aggregation`` says how token losses become the loss L of a batch of N responses:

    grpo:     L = (1/N) Σ_i (1/|y_i|) Σ_t ℓ_i,t        per-response mean, then mean
    dr_grpo:  L = (1/N) Σ_i (1/L_max) Σ_t ℓ_i,t       a constant normaliser, L_max = max_new_tokens
    dapo:     L = Σ_i Σ_t ℓ_i,t / Σ_i |y_i|           token mean over the batch

and ``dapo`` drops the groups whose rewards are all equal (Â = 0: no signal, only KL) from
training batches (validation keeps them). Each
response's share of L is its per-example loss (mean over the batch = L), so minibatches of one
rollout aggregate over the minibatch.

``policy_updates`` passes over the rollout, in ``num_minibatches`` shuffled minibatches, each
take one optimiser step. With one step per rollout ρ = 1 and the clip is inactive; π_old's token
log-probs are then the policy's own (detached) and need no extra pass, otherwise they are
recorded while sampling. The reference's token log-probs are computed once per rollout and read by
every step; with β = 0 the instance declares it needs no reference, so none is loaded or run.

Logged per rollout: reward, reward_std (mean within-group std), kept_groups (fraction not
dropped); per step: clip_frac, kl (mean k3), advantage (mean |Â|).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from zoo import (Algorithm, Batch, ExperienceContext, Hyperparameters, LossOutput, Sampling, SequenceLogProbs,
                 generation_batch, hookimpl, right_padded, take_rows)
from zoo.losses import (aggregate, clip_fraction, clipped_surrogate, group_advantages, kl_k3, masked_sums,
                        sequence_mean)


@dataclass
class GRPOArgs(Hyperparameters, Sampling):
    """GRPO's settings; the sampling keys come from :class:`zoo.Sampling` (``samples_per_prompt`` is G)."""

    samples_per_prompt: int = 4
    #: How token losses are averaged (and whether rewards are divided by their group's std).
    aggregation: Literal["grpo", "dr_grpo", "dapo"] = "grpo"
    #: β, the weight of the k3 KL estimate to the reference (0: none, as in Dr. GRPO and DAPO).
    kl_coef: float = 0.04
    #: ε_low, the ratio clip below 1.
    clip_low: float = 0.2
    #: ε_high, the ratio clip above 1 (None: ε_low; DAPO's clip-higher uses 0.28).
    clip_high: float | None = None
    #: ε_std in the advantage's denominator.
    std_eps: float = 1e-4
    #: Passes over each rollout.
    policy_updates: int = 1
    num_minibatches: int = 1

    def validate(self) -> None:
        self.require(self.samples_per_prompt >= 2, "samples_per_prompt",
                     "must be >= 2: a group of one has no relative advantage")
        self.require(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        self.require(0 < self.clip_low < 1, "clip_low", "must be in (0, 1)")
        self.require(self.clip_high is None or self.clip_high > 0, "clip_high", "must be > 0 (or null: clip_low)")
        self.require_positive("std_eps", "policy_updates", "num_minibatches", "temperature")


# ----- pure functions of tensors ----------------------------------------------------------------

#: How each ``aggregation`` normalises token losses (:func:`zoo.losses.aggregate`).
NORMALISERS = {"grpo": "sequence_mean", "dr_grpo": "constant", "dapo": "token_mean"}


def grpo_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *, aggregation: str,
              clip_low: float, clip_high: float, ref_logps: Tensor | None = None, kl_coef: float = 0.0,
              max_tokens: int | None = None) -> LossOutput:
    """Per-response GRPO losses whose batch mean is the aggregated loss (see the module docstring).

    Args:
        logps, old_logps, ref_logps: ``[N, T]`` token log-probs under π_θ, π_old, π_ref.
        advantages: ``[N]`` one advantage per response.
        mask: ``[N, T]`` bool, the response tokens.
        max_tokens: ``dr_grpo``'s constant normaliser.
    """
    if aggregation not in NORMALISERS:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    if aggregation == "dr_grpo" and max_tokens is None:
        raise ValueError("dr_grpo needs max_tokens, its constant normaliser")
    mask = mask.bool()
    surrogate = clipped_surrogate(logps, old_logps, advantages, mask, clip_low=clip_low, clip_high=clip_high)
    tokens = surrogate.token_losses
    kl = None
    if ref_logps is not None and kl_coef > 0:
        kl = kl_k3(logps, ref_logps) * mask.to(logps.dtype)
        tokens = tokens + kl_coef * kl
    losses, count = aggregate(tokens, mask, NORMALISERS[aggregation], constant=max_tokens)
    metrics = {"clip_frac": clip_fraction(surrogate.clipped, mask), "advantage": advantages.abs().detach()}
    if kl is not None:
        metrics["kl"] = sequence_mean(*masked_sums(kl.detach(), mask))
    return LossOutput(losses, metrics, tokens=count)


# ----- the algorithm ----------------------------------------------------------------------------


class GRPO(Algorithm):
    name = "grpo"
    description = "GRPO: group-normalised advantages, clipped ratio, k3 KL (grpo / dr_grpo / dapo aggregation)"
    Args = GRPOArgs
    data_shape = "prompt"
    needs_reference = True
    needs_reward = True
    generates_online = True

    def __init__(self, args: GRPOArgs | None = None):
        super().__init__(args)
        self.needs_reference = self.args.kl_coef > 0  # β = 0: no reference pass

    def make_experience(self, ctx: ExperienceContext, batch: Batch) -> Batch:
        a = self.args
        group = a.samples_per_prompt
        several_steps = a.policy_updates * a.num_minibatches > 1
        generation = ctx.generate(batch, a, record_logps=several_steps)
        prompts = [batch.prompts[int(i)] for i in generation.prompt_index]
        rewards = ctx.reward.score(prompts, generation.texts).float().view(-1, group)
        advantages = group_advantages(rewards, scale=a.aggregation != "dr_grpo", eps=a.std_eps)
        keep = torch.ones(rewards.shape[0], dtype=torch.bool)
        if a.aggregation == "dapo" and ctx.training:  # validation measures every group
            keep = rewards.amax(1) > rewards.amin(1)
        rows = torch.arange(rewards.numel()).view(-1, group)[keep].flatten()
        ctx.log(reward=rewards.mean(), reward_std=rewards.std(dim=1).mean(), kept_groups=keep.float().mean())
        device = generation.sequences.device
        extras = {"advantages": advantages[keep].flatten().to(device), "rewards": rewards[keep].flatten().to(device)}
        if several_steps:
            extras["old_logps"] = right_padded(generation, rows.to(device),
                                               pad_id=ctx.tokenizer.pad_token_id).token_logps
        experience = generation_batch(generation, batch.prompts, rows=rows.to(device),
                                      pad_id=ctx.tokenizer.pad_token_id, extras=extras)
        if self.needs_reference and rows.numel():
            # Once per rollout: every minibatch and policy update reads these instead of a reference pass.
            reference = ctx.logprobs(ctx.reference, experience)
            experience.reference_logps, experience.reference_token_logps = reference.sum, reference.token_logps
        return experience

    def minibatches(self, experience: Batch) -> Iterator[Batch]:
        rows = experience.input_ids.shape[0]
        if rows == 0:  # dapo dropped every group of this batch
            return
        chunks = min(self.args.num_minibatches, rows)
        for _ in range(self.args.policy_updates):
            for index in torch.randperm(rows).chunk(chunks):
                yield take_rows(experience, index) if chunks > 1 else experience

    def loss(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None, batch: Batch) -> LossOutput:
        a = self.args
        e = batch.extras
        old = e["old_logps"] if "old_logps" in e else policy.token_logps.detach()
        out = grpo_loss(policy.token_logps, old, e["advantages"], policy.mask, aggregation=a.aggregation,
                        clip_low=a.clip_low, clip_high=a.clip_low if a.clip_high is None else a.clip_high,
                        ref_logps=None if reference is None else reference.token_logps, kl_coef=a.kl_coef,
                        max_tokens=a.max_new_tokens)
        out.metrics["reward"] = e["rewards"]
        return out


@hookimpl
def zoo_register_algorithms(register):
    register(GRPO)
