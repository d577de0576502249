"""Rejection-sampling fine-tuning (best-of-n fine-tuning), as in Llama 2.

Touvron et al. 2023, "Llama 2: Open Foundation and Fine-Tuned Chat Models" (arXiv:2307.09288),
section 3.2.3; also RAFT (Dong et al. 2023, arXiv:2304.06767).

For each batch of prompts x, sample n responses y_1..y_n from the current policy, score them with
the reward source and keep the best one, y* = argmax_i R(x, y_i), if R(x, y*) ≥ ``min_score``
(when set). Then take ``sft_epochs`` supervised steps on the kept pairs:

    L = −(1/N_tokens) Σ log π_θ(y*_t | x, y*_<t)

A *round* is one epoch over the prompt set (``train.max_epochs`` rounds): Llama 2 samples a whole
round from a fixed policy first, here each batch samples from the policy as it is at that point
of the round. The round number and its running statistics (prompts seen, prompts kept, mean best
reward) are run state that survives a resume; finished rounds are kept in ``history``.

Validation samples and scores the same way but keeps every prompt (``min_score`` filters training
data only), so ``val/reward_best`` and ``val/reward_mean`` measure best-of-n and average reward
of the current policy. Best-of-n *decoding* without training is :func:`zoo.rollout.sampler.best_of_n`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo import Algorithm, Batch, ExperienceContext, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import token_mean_nll
from zoo.rollout import Sampling, generation_batch, select_best


@dataclass
class RejectionSamplingArgs(Hyperparameters, Sampling):
    """The sampling keys come from :class:`zoo.rollout.Sampling`; ``samples_per_prompt`` is n."""

    renamed_keys: ClassVar[dict[str, str]] = {"n": "samples_per_prompt"}
    samples_per_prompt: int = 4
    temperature: float = 0.8
    #: Keep a prompt's best response only if its reward is at least this (null: always keep).
    min_score: float | None = None
    #: Optimiser steps on each kept set.
    sft_epochs: int = 1

    def validate(self) -> None:
        self.require_positive("temperature", "sft_epochs")


def best_response_nll(logps: torch.Tensor, lengths: torch.Tensor) -> LossOutput:
    """Token-level negative log-likelihood of the kept responses.

    Args:
        logps: ``[B]`` summed log-probs of the kept responses; lengths: ``[B]`` their token counts.
    Returns:
        losses ``[B]`` = −logps / mean(lengths), whose mean is −Σ logps / Σ lengths.
    """
    return token_mean_nll(logps, lengths)


@dataclass
class RoundStats:
    round: int = 0
    prompts: int = 0
    kept: int = 0
    best_reward_sum: float = 0.0

    def summary(self) -> dict[str, float]:
        return {"round": self.round, "prompts": self.prompts, "kept": self.kept,
                "mean_best_reward": self.best_reward_sum / max(1, self.prompts)}


class RejectionSampling(Algorithm):
    name = "rejection_sampling"
    description = "Rejection-sampling fine-tuning: SFT on the best of n samples per prompt (Llama 2)"
    Args = RejectionSamplingArgs
    data_shape = "prompt"
    needs_reward = True
    generates_online = True

    def __init__(self, args: RejectionSamplingArgs | None = None):
        super().__init__(args)
        self.stats = RoundStats()
        self.history: list[dict[str, float]] = []

    def _record(self, epoch: int, best: torch.Tensor, keep: torch.Tensor) -> None:
        if epoch != self.stats.round:
            if self.stats.prompts:
                self.history.append(self.stats.summary())
            self.stats = RoundStats(round=epoch)
        self.stats.prompts += best.numel()
        self.stats.kept += int(keep.sum())
        self.stats.best_reward_sum += float(best.sum())

    def make_experience(self, ctx: ExperienceContext, batch: Batch) -> Batch:
        import torch

        a = self.args
        n = a.samples_per_prompt
        generation = ctx.generate(batch, a)
        prompts = [batch.prompts[int(i)] for i in generation.prompt_index]
        scores = ctx.reward.score(prompts, generation.texts).view(-1, n)
        index, keep = select_best(scores, a.min_score if ctx.training else None)
        best = scores.gather(1, index[:, None]).squeeze(1)
        if ctx.training:
            self._record(ctx.epoch, best, keep)
        rows = (torch.arange(scores.shape[0]) * n + index)[keep]
        experience = generation_batch(generation, batch.prompts, rows=rows.to(generation.sequences.device),
                                      pad_id=ctx.tokenizer.pad_token_id,
                                      extras={"reward_best": best[keep], "reward_mean": scores.mean(1)[keep]})
        ctx.log(reward_mean=scores.mean(), reward_best=best.mean(), kept_fraction=keep.float().mean(),
                round=float(self.stats.round), round_mean_best_reward=self.stats.summary()["mean_best_reward"])
        return experience

    def minibatches(self, experience: Batch) -> Iterator[Batch]:
        if experience.input_ids.shape[0] == 0:  # min_score rejected every prompt of this batch
            return
        for _ in range(self.args.sft_epochs):
            yield experience

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        out = best_response_nll(policy.sum[:, 0], policy.lengths[:, 0])
        out.metrics["reward_best"] = batch.extras["reward_best"].to(out.losses.device)
        out.metrics["reward_mean"] = batch.extras["reward_mean"].to(out.losses.device)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"round": vars(self.stats).copy(), "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "round" in state:
            self.stats = RoundStats(**state["round"])
            self.history = list(state.get("history", []))


@hookimpl
def zoo_register_algorithms(register):
    register(RejectionSampling)
