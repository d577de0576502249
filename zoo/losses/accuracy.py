"""Preference accuracy: one definition of a correctly ordered pair, shared by every place that reports it.

A pair (chosen, rejected) with margin ``m = r(chosen) − r(rejected)`` scores

    1    if m >  TIE_TOLERANCE
    1/2  if |m| ≤ TIE_TOLERANCE   (a tie)
    0    if m < −TIE_TOLERANCE

so a policy equal to its reference (implicit rewards 0, up to float noise) scores 0.5, not 0 or a
noise-dependent fraction. ``TIE_TOLERANCE`` sits well above float32 rounding of summed log-probs
(a difference of two such sums of a few hundred tokens is off by ~1e-5 at most, times β) and far
below any margin that means something. Training metrics (DPO's ``reward_accuracy``, the reward
model's ``accuracy``, SLiC-HF's ``pair_accuracy``, RRHF's ``ranking_accuracy``), the
``preference`` evaluation suite and the benchmark's preference accuracy all use it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

TIE_TOLERANCE = 1e-5


def pair_accuracy(margin: torch.Tensor | float, tolerance: float = TIE_TOLERANCE) -> torch.Tensor | float:
    """1, 1/2 or 0 per margin (a tensor of any shape, or one float), as the module docstring defines."""
    import torch

    if isinstance(margin, torch.Tensor):
        margin = margin.detach().float()
        return (margin > tolerance).float() + 0.5 * (margin.abs() <= tolerance).float()
    margin = float(margin)
    return 1.0 if margin > tolerance else 0.5 if abs(margin) <= tolerance else 0.0
