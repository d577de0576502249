"""PPO-RLHF: proximal policy optimisation against a reward source with a KL penalty to the reference.

Ziegler et al. 2019 (arXiv:1909.08593), Stiennon et al. 2020 (arXiv:2009.01325), Ouyang et al.
2022 (arXiv:2203.02155); PPO: Schulman et al. 2017 (arXiv:1707.06347), GAE: Schulman et al. 2016
(arXiv:1506.02438).

Each batch of prompts becomes one rollout (``make_experience``): responses y = a_1..a_T are
sampled from π_old (the current policy), scored by the reward source, R = R(x, y), and every
response token gets

    r_t = −β_KL (log π_old(a_t) − log π_ref(a_t)) + [t = T] · R
    δ_t = r_t + γ V(s_{t+1}) − V(s_t),   Â_t = Σ_l (γλ)^l δ_{t+l},   R̂_t = Â_t + V(s_t)

with V(s_{T+1}) = 0; advantages are whitened over the rollout. Then ``ppo_epochs`` passes over
the rollout in ``num_minibatches`` shuffled minibatches each take one optimiser step on

    L = E_t[max(−ρ_t Â_t, −clip(ρ_t, 1 − ε, 1 + ε) Â_t)]
        + c_v · ½ E_t[max((V_t − R̂_t)², (clip(V_t, V_old − ε_v, V_old + ε_v) − R̂_t)²)]

ρ_t = π_θ(a_t)/π_old(a_t). Expectations are means over all response tokens of the minibatch.
The KL term is k1 in the reward by default; ``kl_estimator`` picks k1/k2/k3 and ``kl_placement:
loss`` moves β_KL k(π_θ, π_ref) from the rewards into the policy's token loss (:mod:`zoo.losses.kl`
says which divergence each choice's gradient follows).

The critic is a ``Linear(hidden, 1)`` value head on the policy's last hidden states (one shared
backbone instead of a second model: half the memory of a separate critic, at the price of the
value loss also shaping the policy's features, which the small ``value_coef`` keeps in check).
V(s_t), the value of the state *before* token a_t, is read from the hidden state of the token
preceding a_t.

β_KL is fixed, or, with ``kl_target`` set, adapted toward that per-sequence KL after every rollout
(Ziegler et al. 2019): β ← β · (1 + clip(KL/KL_target − 1, −0.2, 0.2) · N/horizon), N the rollout
size. The coefficient is run state, saved with checkpoints.

A response cut off at ``max_new_tokens`` has no EOS, yet the reward source scores its text as it
scores a finished one (a reward model reads it as if an EOS followed). With
``missing_eos_penalty: P`` such responses get R − P instead, the usual remedy (TRL,
"The N implementation details of RLHF with PPO"), so the policy learns to finish its answers.
"Finished" means ended with one of the sampler's own stop tokens (a chat model's end of turn
included). This and DAPO's over-long shaping are the shared :class:`zoo.losses.RewardShaping` keys.

The policy's dropout is off for the whole run (``disable_dropout: true``, the default): with it,
π_old would be one dropout sample, ρ_t and the KL penalty would carry dropout noise, while the
reference runs without dropout. ``disable_dropout: false`` keeps the model's dropout.

Logged per rollout (``train/…``): reward, kl_ref (per-sequence KL estimate Σ_t log π_old − log
π_ref), entropy (−mean log π_old(a_t) of the sampled tokens: a Monte Carlo estimate that needs no
full-vocabulary pass), response_length, kl_coef, explained_variance of the old values; per
minibatch: policy_loss, value_loss, clip_frac, approx_kl (mean (ρ − 1) − log ρ).

One file per algorithm (the plugin convention): PPO's value head, GAE, KL controller and
clipped losses make it the longest.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor, nn

from zoo import Algorithm, Batch, ExperienceContext, Hyperparameters, LossOutput, SequenceLogProbs, hookimpl
from zoo.losses import (KLEstimator, KLPlacement, RewardShaping, aggregate, clip_fraction, clipped_surrogate, gae,
                        kl_estimate, kl_k3, masked_mean, placement_problem, shape_rewards, token_kl, whiten)
from zoo.rollout import Sampling, generation_batch, take_rows


@dataclass
class PPOArgs(Hyperparameters, Sampling, RewardShaping):
    """PPO's settings; the sampling keys (``samples_per_prompt``, ``max_new_tokens``, ``temperature``,
    ``top_k``, ``top_p``) come from :class:`zoo.rollout.Sampling`, the reward shaping keys
    (``missing_eos_penalty``, ``overlong_window``, ``overlong_penalty``) from :class:`zoo.losses.RewardShaping`."""

    #: β_KL, the per-token KL penalty toward the reference (the initial value when adaptive).
    kl_coef: float = 0.05
    #: k1, k2 or k3 (:mod:`zoo.losses.kl`), estimated per token.
    kl_estimator: KLEstimator = "k1"
    #: ``reward``: −β k in every token's reward; ``loss``: β k (on π_θ) added to the policy's token loss.
    kl_placement: KLPlacement = "reward"
    #: Adapt β_KL toward this per-sequence KL (nats); None keeps it fixed.
    kl_target: float | None = None
    #: Horizon (in samples) of the adaptive controller.
    kl_horizon: int = 10000
    gamma: float = 1.0
    lam: float = 0.95
    #: ε, the policy-ratio clip range.
    clip_range: float = 0.2
    #: ε_v, the value clip range around the rollout's values.
    clip_range_value: float = 0.2
    #: c_v, the weight of the value loss.
    value_coef: float = 0.1
    ppo_epochs: int = 4
    num_minibatches: int = 1
    whiten_advantages: bool = True
    #: Turn off the policy's dropout for the whole run (rollouts, π_old and the updates), as TRL
    #: and "The N implementation details of RLHF with PPO" do; false keeps the model's dropout.
    disable_dropout: bool = True

    def validate(self) -> None:
        self.require_positive("kl_horizon", "clip_range", "clip_range_value", "ppo_epochs", "num_minibatches",
                              "temperature")
        self.require(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        self.require(self.kl_target is None or self.kl_target > 0, "kl_target", "must be > 0 (or null: fixed)")
        self.require(self.value_coef >= 0, "value_coef", "must be >= 0")
        self.require(0 <= self.gamma <= 1, "gamma", "must be in [0, 1]")
        self.require(0 <= self.lam <= 1, "lam", "must be in [0, 1]")
        problem = placement_problem(self.kl_estimator, self.kl_placement, self.kl_coef)
        self.require(problem is None, "kl_estimator", problem or "")


# ----- pure functions of tensors ----------------------------------------------------------------


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """``1 − Var(R̂ − V) / Var(R̂)`` over the masked tokens: 1 is a perfect critic, 0 a constant one."""
    returns_mean = masked_mean(returns, mask)
    returns_var = masked_mean((returns - returns_mean) ** 2, mask)
    residual = returns - values
    residual_var = masked_mean((residual - masked_mean(residual, mask)) ** 2, mask)
    return 1 - residual_var / returns_var.clamp(min=1e-8)


def kl_penalized_rewards(scores: Tensor, logps: Tensor, ref_logps: Tensor, mask: Tensor,
                         kl_coef: float, estimator: KLEstimator = "k1") -> tuple[Tensor, Tensor]:
    """Per-token rewards ``r_t = −β k_t + [t = T] R`` and the per-token KL estimate k_t (k1: log π − log π_ref).

    Args:
        scores: ``[N]`` sequence rewards R.
        logps, ref_logps: ``[N, T]`` token log-probs under the sampling policy and the reference.
        mask: ``[N, T]`` bool, one contiguous run of response tokens per row (T = its last one).
    """
    import torch

    mask = mask.bool()
    kl = kl_estimate(logps, ref_logps, estimator) * mask
    rewards = -kl_coef * kl
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, -1).max(dim=1).values
    has_tokens = last >= 0
    rows = torch.arange(mask.shape[0], device=mask.device)[has_tokens]
    rewards = rewards.index_put((rows, last[has_tokens]), scores[has_tokens].to(rewards.dtype), accumulate=True)
    return rewards, kl


def ppo_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
                   clip_range_value: float) -> tuple[Tensor, Tensor]:
    """Per-token clipped value loss ``½ max((V − R̂)², (clip(V, V_old ± ε_v) − R̂)²)`` and where the
    clipped term was the larger one."""
    import torch

    clipped_values = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    losses = 0.5 * torch.maximum(unclipped_loss, clipped_loss) * mask
    return losses, (clipped_loss > unclipped_loss) & mask.bool()


def ppo_loss(logps: Tensor, values: Tensor, old_logps: Tensor, old_values: Tensor, advantages: Tensor,
             returns: Tensor, mask: Tensor, *, clip_range: float = 0.2, clip_range_value: float = 0.2,
             value_coef: float = 0.1, ref_logps: Tensor | None = None, kl_coef: float = 0.0,
             kl_estimator: KLEstimator = "k3") -> LossOutput:
    """Per-sequence PPO losses (policy + ``value_coef`` × value) from ``[N, T]`` token tensors; each is a
    token sum over the batch's mean token count, so their mean is the token mean."""
    policy = clipped_surrogate(logps, old_logps, advantages, mask, clip_low=clip_range)
    value_tokens, value_clipped = ppo_value_loss(values, old_values, returns, mask, clip_range_value)
    policy_tokens = policy.token_losses
    if ref_logps is not None and kl_coef > 0:  # kl_placement: loss
        policy_tokens = policy_tokens + kl_coef * token_kl(logps, ref_logps, mask, kl_estimator)
    policy_losses, tokens = aggregate(policy_tokens, mask, "token_mean")
    value_losses, _ = aggregate(value_tokens, mask, "token_mean")
    approx_kl = kl_k3(old_logps, logps).detach() * mask  # (ρ − 1) − log ρ, the k3 estimate of KL(π_old ‖ π_θ)
    return LossOutput(policy_losses + value_coef * value_losses, {
        "policy_loss": policy_losses.detach(),
        "value_loss": value_losses.detach(),
        "clip_frac": clip_fraction(policy.clipped, mask),
        "value_clip_frac": masked_mean(value_clipped.float(), mask),
        "approx_kl": masked_mean(approx_kl, mask),
    }, tokens=tokens)


# ----- the adaptive KL coefficient ------------------------------------------------------------


class KLController:
    """β_KL: fixed, or adapted toward ``target`` (Ziegler et al. 2019) when a target is given."""

    def __init__(self, value: float, target: float | None = None, horizon: int = 10000):
        self.value, self.target, self.horizon = float(value), target, horizon

    def update(self, kl: float, n_samples: int) -> None:
        if self.target is None:
            return
        error = min(max(kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_samples / self.horizon


# ----- the algorithm ----------------------------------------------------------------------------


def value_estimates(head: nn.Module, hidden_states: Tensor, mask: Tensor) -> Tensor:
    """``[N, T]`` V(s_t) for the token at t, read from the hidden state at t − 1; 0 outside ``mask``."""
    import torch

    values = head(hidden_states.to(head.weight.dtype)).squeeze(-1).float()
    values = torch.cat([values.new_zeros(values.shape[0], 1), values[:, :-1]], dim=1)
    return values * mask


class PPO(Algorithm):
    name = "ppo"
    description = "PPO-RLHF: clipped policy and value losses, GAE, KL penalty to the reference"
    Args = PPOArgs
    data_shape = "prompt"
    needs_reference = True
    needs_reward = True
    generates_online = True
    wants_hidden_states = True

    def __init__(self, args: PPOArgs | None = None):
        super().__init__(args)
        self.kl = KLController(self.args.kl_coef, self.args.kl_target, self.args.kl_horizon)
        self.value_head: nn.Linear | None = None
        # Else π_old would be one dropout sample and the KL would hold its noise; the loop switches it off.
        self.disables_dropout = self.args.disable_dropout

    def build_modules(self, policy: nn.Module) -> dict[str, nn.Module]:
        from torch import nn

        head = nn.Linear(policy.config.hidden_size, 1)
        # A zero critic starts at V = 0 everywhere instead of at random values it must first unlearn.
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        self.value_head = head
        return {"value_head": head}

    def make_experience(self, ctx: ExperienceContext, batch: Batch) -> Batch:
        a = self.args
        generation = ctx.generate(batch, a)
        experience = generation_batch(generation, batch.prompts, pad_id=ctx.tokenizer.pad_token_id)
        old = ctx.logprobs(ctx.policy, experience, hidden_states=True)
        reference = ctx.logprobs(ctx.reference, experience)
        mask = old.mask
        device = mask.device
        scores = ctx.reward.score(experience.prompts, generation.texts).to(device)
        # finished: by the sampler's own stop set (a chat model's end of turn included)
        scores = shape_rewards(scores, generation.finished, generation.response_lengths, a, a.max_new_tokens)
        values = value_estimates(ctx.modules["value_head"], old.hidden_states, mask)
        in_reward = self.kl.value if a.kl_placement == "reward" else 0.0
        rewards, kl = kl_penalized_rewards(scores, old.token_logps, reference.token_logps, mask, in_reward,
                                           a.kl_estimator)
        advantages, returns = gae(rewards, values, mask, a.gamma, a.lam)
        if a.whiten_advantages:
            advantages = whiten(advantages, mask)
        sequence_kl = kl.sum(-1)
        lengths = mask.sum(-1).float()
        ctx.log(reward=scores.mean(), kl_ref=sequence_kl.mean(), kl_coef=self.kl.value,
                entropy=(-old.token_logps.sum(-1) / lengths.clamp(min=1)).mean(), response_length=lengths.mean(),
                non_score_reward=(-self.kl.value * sequence_kl).mean(),
                explained_variance=explained_variance(values, returns, mask))
        if ctx.training:
            self.kl.update(float(sequence_kl.mean()), len(scores))
        experience.reference_logps = reference.sum  # the loop reads these instead of a second reference pass
        if a.kl_placement == "loss":
            experience.reference_token_logps = reference.token_logps
        experience.extras = {"old_logps": old.token_logps, "old_values": values, "advantages": advantages,
                             "returns": returns, "scores": scores}
        return experience

    def minibatches(self, experience: Batch) -> Iterator[Batch]:
        import torch

        rows = experience.input_ids.shape[0]
        chunks = min(self.args.num_minibatches, rows)
        for _ in range(self.args.ppo_epochs):
            for index in torch.randperm(rows).chunk(chunks):
                yield take_rows(experience, index)

    def loss(self, policy: SequenceLogProbs, reference, batch: Batch) -> LossOutput:
        if self.value_head is None or policy.hidden_states is None:
            raise RuntimeError("PPO needs its value head (build_modules) and the policy's hidden states")
        e = batch.extras
        mask = policy.mask
        # The loop hands over hidden states, not values: the critic head is applied here, and
        # everything after it is the pure ppo_loss.
        values = value_estimates(self.value_head, policy.hidden_states, mask)
        out = ppo_loss(policy.token_logps, values, e["old_logps"], e["old_values"], e["advantages"], e["returns"],
                       mask, clip_range=self.args.clip_range, clip_range_value=self.args.clip_range_value,
                       value_coef=self.args.value_coef, kl_coef=self.kl.value, kl_estimator=self.args.kl_estimator,
                       ref_logps=reference.token_logps if self.args.kl_placement == "loss" else None)
        out.metrics["reward"] = e["scores"]
        if reference is not None:
            out.metrics["kl_ref"] = (policy.sum.detach() - reference.sum)[:, 0]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"kl_coef": self.kl.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "kl_coef" in state:
            self.kl.value = float(state["kl_coef"])


@hookimpl
def zoo_register_algorithms(register):
    register(PPO)
