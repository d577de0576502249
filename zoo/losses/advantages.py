"""Advantage estimators for policy-gradient methods.

    whiten:               (x − mean) / sqrt(var + ε) over the masked entries (population variance)
    gae:                  Â_t = Σ_l (γλ)^l δ_{t+l},  δ_t = r_t + γ V(s_{t+1}) − V(s_t)  (Schulman et al. 2016)
    group_advantages:     Â_i = (R_i − mean_g R) [/ (std_g R + ε)]   over each prompt's group (GRPO)
    leave_one_out:        Â_i = R_i − mean_{j≠i} R_j                  (RLOO, Kool et al. 2019)
    batch_normalised:     Â_i = whiten(R_i) over the whole batch        (REINFORCE++, Hu 2025, arXiv:2501.03262)
                          Â_i = whiten(R_i − mean_g R) with the group mean first (REINFORCE++-baseline)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo.losses.aggregation import masked_mean


def whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``(values − mean) / std`` over the masked entries (population variance); 0 elsewhere."""
    import torch

    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(variance + eps) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and returns on ``[N, T]`` token grids.

    ``mask`` marks one contiguous run of action tokens per row; the state after the last one is
    terminal (V = 0). Entries outside the mask are ignored and returned as 0.

    Returns:
        advantages ``Â_t = Σ_l (γλ)^l δ_{t+l}`` and returns ``Â_t + V(s_t)``, both ``[N, T]``.
    """
    import torch

    mask = mask.to(values.dtype)
    steps = rewards.shape[1]
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(steps)):
        next_mask = mask[:, t + 1] if t + 1 < steps else torch.zeros_like(running)
        next_value = values[:, t + 1] * next_mask if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * next_mask * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def group_advantages(rewards: Tensor, *, scale: bool, eps: float = 1e-4) -> Tensor:
    """``[B, G]`` rewards → ``[B, G]`` advantages ``R − mean(R)``, divided by ``std(R) + eps`` (Bessel's
    correction) when ``scale``."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def leave_one_out_advantages(rewards: Tensor) -> Tensor:
    """``[B, k]`` rewards → ``A_i = R_i − mean_{j≠i} R_j`` (k ≥ 2)."""
    k = rewards.shape[1]
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)
    return rewards - baseline


def batch_normalised_advantages(rewards: Tensor, *, subtract_group_mean: bool) -> Tensor:
    """``[B, G]`` rewards → advantages whitened over all ``B·G`` responses (population std), after
    subtracting each group's mean when ``subtract_group_mean``."""
    import torch

    centred = rewards - rewards.mean(dim=1, keepdim=True) if subtract_group_mean else rewards
    return whiten(centred, torch.ones_like(centred, dtype=torch.bool))
