"""Policy-gradient objectives on ``[N, T]`` token log-probs, with ρ_t = π_θ(y_t) / π_old(y_t).

Clipped surrogate (PPO, Schulman et al. 2017; decoupled ε_low / ε_high as in DAPO):

    ℓ_t = −min(ρ_t Â, clip(ρ_t, 1 − ε_low, 1 + ε_high) Â)

with the ratio at the token level, or at the sequence level (GSPO, Zheng et al. 2025,
arXiv:2507.18071): every token of response i uses s_i = exp((1/|y_i|) Σ_t log ρ_t), the
geometric mean of its token ratios, so the clip keeps or drops whole responses.

CISPO (MiniMax-M1, arXiv:2506.13585) clips the importance weight instead of the objective and
detaches it, so every token keeps the REINFORCE gradient −sg[clip(ρ_t)] Â ∇log π_θ(y_t):

    ℓ_t = −sg[clip(ρ_t, 1 − ε_low, 1 + ε_high)] Â log π_θ(y_t)

REINFORCE on whole sequences: ℓ = −Â Σ_t log π_θ(y_t).

``clip_frac`` has one definition: the share of response tokens where the clip is active, i.e.
changes the objective. For the clipped surrogate that is ρ < 1 − ε_low with Â < 0 or ρ > 1 + ε_high
with Â > 0 (the other side of the clip is never the minimum); for CISPO it is any weight outside
[1 − ε_low, 1 + ε_high].
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

RatioLevel = Literal["token", "sequence"]


class Surrogate(NamedTuple):
    """Per-token results of a policy objective, all ``[N, T]`` and 0 (False) outside the mask."""

    #: ℓ_t, the token losses.
    token_losses: Tensor
    #: Where the clip is active.
    clipped: Tensor
    #: log ρ_t (the sequence-level value on every token of a response for ``level="sequence"``).
    log_ratio: Tensor


def log_importance_ratio(logps: Tensor, old_logps: Tensor, mask: Tensor, level: RatioLevel = "token") -> Tensor:
    """``[N, T]`` log ρ_t (token level) or log s_i = mean_t log ρ_t on every token (sequence level)."""
    weights = mask.to(logps.dtype)
    log_ratio = (logps - old_logps) * weights
    if level == "token":
        return log_ratio
    if level == "sequence":
        per_sequence = log_ratio.sum(-1, keepdim=True) / weights.sum(-1, keepdim=True).clamp(min=1)
        return per_sequence * weights
    raise ValueError(f"unknown importance-ratio level {level!r}; expected token or sequence")


def _token_advantages(advantages: Tensor, like: Tensor) -> Tensor:
    """``[N]`` (one per response) or ``[N, T]`` advantages, as ``[N, 1]`` or ``[N, T]`` in ``like``'s dtype."""
    advantages = advantages.to(like.dtype)
    return advantages[:, None] if advantages.ndim == 1 else advantages


def clipped_surrogate(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *, clip_low: float,
                      clip_high: float | None = None, level: RatioLevel = "token") -> Surrogate:
    """PPO's clipped surrogate (module docstring); ``clip_high`` None is ``clip_low`` (the symmetric clip)."""
    import torch

    clip_high = clip_low if clip_high is None else clip_high
    mask = mask.bool()
    weights = mask.to(logps.dtype)
    log_ratio = log_importance_ratio(logps, old_logps, mask, level)
    ratio = torch.exp(log_ratio)
    advantage = _token_advantages(advantages, logps)
    surrogate = torch.minimum(ratio * advantage, torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * advantage)
    clipped = ((ratio < 1 - clip_low) & (advantage < 0)) | ((ratio > 1 + clip_high) & (advantage > 0))
    return Surrogate(-surrogate * weights, clipped & mask, log_ratio)


def cispo_objective(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *, clip_low: float,
                    clip_high: float) -> Surrogate:
    """CISPO's token losses ``−sg[clip(ρ_t, 1 − ε_low, 1 + ε_high)] Â log π_θ(y_t)`` (module docstring)."""
    import torch

    mask = mask.bool()
    weights = mask.to(logps.dtype)
    log_ratio = log_importance_ratio(logps, old_logps, mask)
    ratio = torch.exp(log_ratio).detach()
    weight = torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    advantage = _token_advantages(advantages, logps)
    clipped = ((ratio < 1 - clip_low) | (ratio > 1 + clip_high)) & mask
    return Surrogate(-weight * advantage * logps * weights, clipped, log_ratio)


def sequence_reinforce(logps: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """``[N]`` REINFORCE losses ``−Â_i Σ_t log π_θ(y_i,t)``."""
    return -advantages.to(logps.dtype) * (logps * mask.to(logps.dtype)).sum(-1)


def clip_fraction(clipped: Tensor, mask: Tensor) -> Tensor:
    """Scalar share of the masked tokens where ``clipped`` is True."""
    import torch

    return (clipped & mask.bool()).float().sum() / mask.to(torch.float32).sum().clamp(min=1)
