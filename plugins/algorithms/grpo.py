"""GRPO and its family: Dr. GRPO, DAPO, GSPO, CISPO, REINFORCE++ (and -baseline) as options and presets.

GRPO: Shao et al. 2024, DeepSeekMath (arXiv:2402.03300); Dr. GRPO: Liu et al. 2025 (arXiv:2503.20783);
DAPO: Yu et al. 2025 (arXiv:2503.14476); GSPO: Zheng et al. 2025 (arXiv:2507.18071); CISPO:
MiniMax-M1 2025 (arXiv:2506.13585); REINFORCE++: Hu 2025 (arXiv:2501.03262).

For each prompt x a group of G = ``samples_per_prompt`` responses y_1..y_G is sampled from π_old
(the current policy) and scored, R_1..R_G (shaped by ``missing_eos_penalty`` / ``overlong_window``,
:mod:`zoo.losses.shaping`; with ``kl_placement: reward`` also R_i − β Σ_t k(y_i,t)). Every token of
response i gets the advantage (``advantages``)

    group (grpo, dapo):  Â_i = (R_i − mean_g R) / (std_g R + ε_std)   (std with Bessel's correction)
    group (dr_grpo):     Â_i =  R_i − mean_g R
    batch:               Â_i = (R_i − mean_B R) / std_B R             over every response of the batch (REINFORCE++)
    group_batch:         R_i − mean_g R, then normalised over the batch (REINFORCE++-baseline)

and the per-token loss, with ρ_t = π_θ(y_i,t) / π_old(y_i,t) (:mod:`zoo.losses.policy_gradient`),

    clip:   ℓ_i,t = −min(ρ Â_i, clip(ρ, 1 − ε_low, 1 + ε_high) Â_i) + β k_i,t
    cispo:  ℓ_i,t = −sg[clip(ρ_t, 1 − ε_low, 1 + ε_high)] Â_i log π_θ(y_i,t) + β k_i,t

where ρ is ρ_t (``ratio_level: token``) or GSPO's s_i = exp(mean_t log ρ_t) (``sequence``), and
k the ``kl_estimator`` (k3 = π_ref/π_θ − log(π_ref/π_θ) − 1 by default; :mod:`zoo.losses.kl` says
which divergence each estimator's gradient follows in the loss and in the reward). ε_high defaults
to ε_low. The ``aggregation`` says how token losses become the loss L of a batch of N responses:

    grpo:     L = (1/N) Σ_i (1/|y_i|) Σ_t ℓ_i,t        per-response mean, then mean
    dr_grpo:  L = (1/N) Σ_i (1/L_max) Σ_t ℓ_i,t       a constant normaliser, L_max = max_new_tokens
    dapo:     L = Σ_i Σ_t ℓ_i,t / Σ_i |y_i|           token mean over the batch

Dynamic sampling (``drop_equal_groups``, on by default with the ``dapo`` aggregation) drops the
groups whose rewards are all equal (Â = 0: no signal, only KL) from training batches (validation
keeps them); ``refill_rounds`` extra sampling rounds, at most, resample the dropped prompts and
fill the batch back up to one group per prompt with groups that do differ. Each response's share
of L is its per-example loss (mean over the batch = L), so minibatches of one rollout aggregate
over the minibatch.

``policy_updates`` passes over the rollout, in ``num_minibatches`` shuffled minibatches, each
take one optimiser step. With one step per rollout ρ = 1 and the clip is inactive; π_old's token
log-probs are then the policy's own (detached) and need no extra pass, otherwise (and for a KL in
the reward) they are recorded while sampling. The reference's token log-probs are computed once
per rollout and read by every step; with β = 0 the instance declares it needs no reference, so
none is loaded or run.

The presets ``gspo``, ``cispo``, ``reinforce_pp`` and ``reinforce_pp_baseline`` are this algorithm
with their papers' defaults (below); every option stays available to each.

Logged per rollout: reward (the score, before shaping), reward_std (mean within-group std),
kept_groups (fraction of the first round's groups kept), refill_rounds, refilled_groups,
kl_ref (mean Σ_t k with a KL in the reward); per step: clip_frac, kl (mean k in the loss),
advantage (mean |Â|).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo import Algorithm, Batch, ExperienceContext, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import (KLEstimator, KLPlacement, RatioLevel, RewardShaping, aggregate, batch_normalised_advantages,
                        cispo_objective, clip_fraction, clipped_surrogate, group_advantages, masked_sums,
                        placement_problem, sequence_kl, sequence_mean, shape_rewards, token_kl)
from zoo.rollout import Sampling, generation_batch, join_generations, right_padded, take_rows


@dataclass
class GRPOArgs(Hyperparameters, Sampling, RewardShaping):
    """GRPO's settings; the sampling keys come from :class:`zoo.rollout.Sampling` (``samples_per_prompt`` is G),
    the reward shaping keys from :class:`zoo.losses.RewardShaping`."""

    samples_per_prompt: int = 4
    #: How token losses are averaged (and whether group advantages are divided by the group's std).
    aggregation: Literal["grpo", "dr_grpo", "dapo"] = "grpo"
    #: Where rewards are normalised into advantages: per group, over the batch, or both (group mean first).
    advantages: Literal["group", "batch", "group_batch"] = "group"
    #: The importance ratio per token, or per sequence (GSPO: the geometric mean of the token ratios).
    ratio_level: RatioLevel = "token"
    #: ``clip``: PPO's clipped surrogate; ``cispo``: the clipped, detached weight times log π.
    policy_loss: Literal["clip", "cispo"] = "clip"
    #: β, the weight of the KL estimate to the reference (0: none, as in Dr. GRPO and DAPO).
    kl_coef: float = 0.04
    #: k1, k2 or k3 (:mod:`zoo.losses.kl`).
    kl_estimator: KLEstimator = "k3"
    #: ``loss``: β k added to every token's loss; ``reward``: β Σ_t k subtracted from the reward.
    kl_placement: KLPlacement = "loss"
    #: ε_low, the ratio clip below 1.
    clip_low: float = 0.2
    #: ε_high, the ratio clip above 1 (None: ε_low; DAPO's clip-higher uses 0.28).
    clip_high: float | None = None
    #: ε_std in the group advantage's denominator.
    std_eps: float = 1e-4
    #: Drop groups whose rewards are all equal from training batches (None: only with aggregation dapo).
    drop_equal_groups: bool | None = None
    #: Extra sampling rounds, at most, that refill the dropped groups (dynamic sampling).
    refill_rounds: int = 0
    #: Passes over each rollout.
    policy_updates: int = 1
    num_minibatches: int = 1

    def validate(self) -> None:
        groupwise = self.advantages != "batch"
        self.require(self.samples_per_prompt >= 2 or not groupwise, "samples_per_prompt",
                     "must be >= 2: a group of one has no relative advantage (advantages: batch allows 1)")
        self.require(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        self.require(0 < self.clip_low < 1 or (self.policy_loss == "cispo" and self.clip_low == 1), "clip_low",
                     "must be in (0, 1) (cispo also takes 1: no lower clip)")
        self.require(self.clip_high is None or self.clip_high > 0, "clip_high", "must be > 0 (or null: clip_low)")
        self.require_positive("std_eps", "policy_updates", "num_minibatches", "temperature")
        self.require(isinstance(self.refill_rounds, int) and self.refill_rounds >= 0, "refill_rounds", "must be >= 0")
        self.require(not (self.aggregation == "dr_grpo" and self.advantages != "group"), "advantages",
                     "dr_grpo removes the std scaling of advantages; batch normalisation would put one back "
                     "(use advantages: group, or another aggregation)")
        self.require(not (self.policy_loss == "cispo" and self.ratio_level == "sequence"), "ratio_level",
                     "cispo weighs each token by its own ratio; sequence-level ratios go with policy_loss: clip")
        problem = placement_problem(self.kl_estimator, self.kl_placement, self.kl_coef)
        self.require(problem is None, "kl_estimator", problem or "")
        self.require(not (self.drops_equal_groups and self.samples_per_prompt < 2), "drop_equal_groups",
                     "needs groups of >= 2 samples: a group of one always has equal rewards")
        self.require(self.refill_rounds == 0 or self.drops_equal_groups, "refill_rounds",
                     "refills dropped groups: set drop_equal_groups: true (or aggregation: dapo)")

    @property
    def drops_equal_groups(self) -> bool:
        return self.aggregation == "dapo" if self.drop_equal_groups is None else self.drop_equal_groups


# ----- pure functions of tensors ----------------------------------------------------------------

#: How each ``aggregation`` normalises token losses (:func:`zoo.losses.aggregate`).
NORMALISERS = {"grpo": "sequence_mean", "dr_grpo": "constant", "dapo": "token_mean"}


def grpo_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *, aggregation: str,
              clip_low: float, clip_high: float, ref_logps: Tensor | None = None, kl_coef: float = 0.0,
              max_tokens: int | None = None, ratio_level: RatioLevel = "token", policy_loss: str = "clip",
              kl_estimator: KLEstimator = "k3") -> LossOutput:
    """Per-response losses whose batch mean is the aggregated loss (see the module docstring).

    Args:
        logps, old_logps, ref_logps: ``[N, T]`` token log-probs under π_θ, π_old, π_ref (no
            ``ref_logps``: no KL term in the loss).
        advantages: ``[N]`` one advantage per response.
        mask: ``[N, T]`` bool, the response tokens.
        max_tokens: ``dr_grpo``'s constant normaliser.
    """
    if aggregation not in NORMALISERS:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    if aggregation == "dr_grpo" and max_tokens is None:
        raise ValueError("dr_grpo needs max_tokens, its constant normaliser")
    mask = mask.bool()
    if policy_loss == "clip":
        objective = clipped_surrogate(logps, old_logps, advantages, mask, clip_low=clip_low, clip_high=clip_high,
                                      level=ratio_level)
    elif policy_loss == "cispo":
        objective = cispo_objective(logps, old_logps, advantages, mask, clip_low=clip_low, clip_high=clip_high)
    else:
        raise ValueError(f"unknown policy loss {policy_loss!r}")
    tokens = objective.token_losses
    kl = None
    if ref_logps is not None and kl_coef > 0:
        kl = token_kl(logps, ref_logps, mask, kl_estimator)
        tokens = tokens + kl_coef * kl
    losses, count = aggregate(tokens, mask, NORMALISERS[aggregation], constant=max_tokens)
    metrics = {"clip_frac": clip_fraction(objective.clipped, mask), "advantage": advantages.abs().detach()}
    if kl is not None:
        metrics["kl"] = sequence_mean(*masked_sums(kl.detach(), mask))
    return LossOutput(losses, metrics, tokens=count)


def has_signal(rewards: Tensor) -> Tensor:
    """``[B]`` bool: the group's ``[B, G]`` rewards are not all equal."""
    return rewards.amax(1) > rewards.amin(1)


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

    def _sample(self, ctx: ExperienceContext, batch: Batch, record: bool) -> tuple:
        """One round: the generation, its raw scores ``[N]`` and its shaped rewards ``[B, G]``."""
        a = self.args
        generation = ctx.generate(batch, a, record_logps=record)
        prompts = [batch.prompts[int(i)] for i in generation.prompt_index]
        scores = ctx.reward.score(prompts, generation.texts).float()
        shaped = shape_rewards(scores, generation.finished, generation.response_lengths, a, a.max_new_tokens)
        return generation, scores, shaped.view(-1, a.samples_per_prompt)

    def _refill(self, ctx: ExperienceContext, batch: Batch, record: bool, generation, scores: Tensor,
                rewards: Tensor) -> tuple:
        """Dynamic sampling: resample the prompts whose groups are still missing, at most ``refill_rounds``
        times; the rewards of every round's groups, in order (the caller keeps the first B with signal)."""
        import torch

        a = self.args
        prompts = batch.prompt_ids.shape[0]
        rounds = 0
        while rounds < a.refill_rounds and int(has_signal(rewards).sum()) < prompts:
            group_prompt = generation.prompt_index[::a.samples_per_prompt].cpu()
            covered = set(group_prompt[has_signal(rewards)].tolist())
            missing = torch.tensor([i for i in range(prompts) if i not in covered], dtype=torch.long)
            subset = dataclasses.replace(batch, prompt_ids=batch.prompt_ids[missing],
                                         prompt_attention_mask=batch.prompt_attention_mask[missing],
                                         prompts=[batch.prompts[int(i)] for i in missing])
            extra, extra_scores, extra_rewards = self._sample(ctx, subset, record)
            extra.prompt_index = missing.to(extra.prompt_index.device)[extra.prompt_index]
            generation = join_generations(generation, extra, pad_id=ctx.tokenizer.pad_token_id)
            scores, rewards = torch.cat([scores, extra_scores]), torch.cat([rewards, extra_rewards])
            rounds += 1
        return generation, scores, rewards, rounds

    def make_experience(self, ctx: ExperienceContext, batch: Batch) -> Batch:
        import torch

        a = self.args
        group = a.samples_per_prompt
        several_steps = a.policy_updates * a.num_minibatches > 1
        kl_in_reward = self.needs_reference and a.kl_placement == "reward"
        record = several_steps or kl_in_reward
        generation, scores, rewards = self._sample(ctx, batch, record)
        first_round = scores.view(-1, group)
        keep = torch.ones(rewards.shape[0], dtype=torch.bool)
        if a.drops_equal_groups and ctx.training:  # validation measures every group
            keep = has_signal(rewards)
            ctx.log(kept_groups=keep.float().mean())
            if a.refill_rounds:
                # Refills resample only prompts without a kept group, so the batch keeps at most one per prompt.
                generation, scores, rewards, rounds = self._refill(ctx, batch, record, generation, scores, rewards)
                keep = has_signal(rewards)
                ctx.log(refill_rounds=float(rounds), refilled_groups=keep[first_round.shape[0]:].float().sum())
        else:
            ctx.log(kept_groups=keep.float().mean())
        rows = torch.arange(rewards.numel()).view(-1, group)[keep].flatten()
        raw = scores.view(-1, group)
        ctx.log(reward=first_round.mean())
        if group > 1:  # a group of one has no spread
            ctx.log(reward_std=first_round.std(dim=1).mean())
        device = generation.sequences.device
        pad = ctx.tokenizer.pad_token_id
        experience = generation_batch(generation, batch.prompts, rows=rows.to(device), pad_id=pad)
        kept_rewards = rewards[keep]
        if self.needs_reference and rows.numel():
            # Once per rollout: every minibatch and policy update reads these instead of a reference pass.
            reference = ctx.logprobs(ctx.reference, experience)
            experience.reference_logps, experience.reference_token_logps = reference.sum, reference.token_logps
            if kl_in_reward:
                old = right_padded(generation, rows.to(device), pad_id=pad).token_logps
                kl = sequence_kl(old, reference.token_logps, reference.mask, a.kl_estimator)
                ctx.log(kl_ref=kl.mean())
                kept_rewards = kept_rewards - a.kl_coef * kl.view(-1, group).to(kept_rewards.device)
        if a.advantages == "group":
            advantages = group_advantages(kept_rewards, scale=a.aggregation != "dr_grpo", eps=a.std_eps)
        else:
            advantages = batch_normalised_advantages(kept_rewards, subtract_group_mean=a.advantages == "group_batch")
        experience.extras = {"advantages": advantages.flatten().to(device),
                             "rewards": raw[keep].flatten().to(device)}
        if several_steps:
            experience.extras["old_logps"] = right_padded(generation, rows.to(device), pad_id=pad).token_logps
        return experience

    def minibatches(self, experience: Batch) -> Iterator[Batch]:
        import torch

        rows = experience.input_ids.shape[0]
        if rows == 0:  # every group of this batch was dropped
            return
        chunks = min(self.args.num_minibatches, rows)
        for _ in range(self.args.policy_updates):
            for index in torch.randperm(rows).chunk(chunks):
                yield take_rows(experience, index) if chunks > 1 else experience

    def loss(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None, batch: Batch) -> LossOutput:
        a = self.args
        e = batch.extras
        old = e["old_logps"] if "old_logps" in e else policy.token_logps.detach()
        kl_in_loss = reference is not None and a.kl_placement == "loss"
        out = grpo_loss(policy.token_logps, old, e["advantages"], policy.mask, aggregation=a.aggregation,
                        clip_low=a.clip_low, clip_high=a.clip_low if a.clip_high is None else a.clip_high,
                        ref_logps=reference.token_logps if kl_in_loss else None, kl_coef=a.kl_coef,
                        max_tokens=a.max_new_tokens, ratio_level=a.ratio_level, policy_loss=a.policy_loss,
                        kl_estimator=a.kl_estimator)
        out.metrics["reward"] = e["rewards"]
        return out


# ----- presets: the same algorithm with each paper's defaults ------------------------------------


@dataclass
class GSPOArgs(GRPOArgs):
    """GSPO's defaults: sequence-level ratios, the paper's clip range (3e-4, 4e-4), no KL."""

    ratio_level: RatioLevel = "sequence"
    clip_low: float = 3e-4
    clip_high: float | None = 4e-4
    kl_coef: float = 0.0


class GSPO(GRPO):
    name = "gspo"
    description = "GSPO: GRPO with sequence-level (geometric-mean) importance ratios clipped per response"
    Args = GSPOArgs


@dataclass
class CISPOArgs(GRPOArgs):
    """CISPO's defaults: the clipped weight with no lower clip (ε_low = 1), ε_high = 0.28, token mean, no KL."""

    policy_loss: Literal["clip", "cispo"] = "cispo"
    clip_low: float = 1.0
    clip_high: float | None = 0.28
    aggregation: Literal["grpo", "dr_grpo", "dapo"] = "dapo"
    drop_equal_groups: bool | None = False
    kl_coef: float = 0.0


class CISPO(GRPO):
    name = "cispo"
    description = "CISPO: clipped, detached importance weights times log π; every token keeps its gradient"
    Args = CISPOArgs


@dataclass
class ReinforcePPArgs(GRPOArgs):
    """REINFORCE++'s defaults: batch-normalised advantages, k1 KL folded into the reward, token mean."""

    advantages: Literal["group", "batch", "group_batch"] = "batch"
    kl_coef: float = 0.01
    kl_estimator: KLEstimator = "k1"
    kl_placement: KLPlacement = "reward"
    aggregation: Literal["grpo", "dr_grpo", "dapo"] = "dapo"
    drop_equal_groups: bool | None = False


class ReinforcePP(GRPO):
    name = "reinforce_pp"
    description = "REINFORCE++: clipped surrogate without a critic, batch-normalised advantages, KL in the reward"
    Args = ReinforcePPArgs


@dataclass
class ReinforcePPBaselineArgs(ReinforcePPArgs):
    """REINFORCE++-baseline's defaults: the group mean subtracted first, then batch normalisation; k2 KL in the loss."""

    advantages: Literal["group", "batch", "group_batch"] = "group_batch"
    kl_estimator: KLEstimator = "k2"
    kl_placement: KLPlacement = "loss"


class ReinforcePPBaseline(GRPO):
    name = "reinforce_pp_baseline"
    description = "REINFORCE++-baseline: group mean subtracted, then batch-normalised advantages; k2 KL in the loss"
    Args = ReinforcePPBaselineArgs


@hookimpl
def zoo_register_algorithms(register):
    for algorithm in (GRPO, GSPO, CISPO, ReinforcePP, ReinforcePPBaseline):
        register(algorithm)
