"""The training optimiser: AdamW, as torch's fused kernel wherever the parameters allow it.

torch's default AdamW on CPU is the single-tensor loop: for every parameter it runs about a dozen
separate element-wise ops, each allocating a temporary the size of the parameter. On
SmolLM2-135M (a full fine-tune) one step took 0.49–0.60 s that way against 0.07 s with
``fused=True``, and those temporaries were the peak of a checkpointed training step. The fused
kernel computes the same update,

    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   θ ← θ − lr (m̂ / (√v̂ + ε) + λ θ)

in one pass per tensor, with no temporaries; its results equal the single-tensor loop's up to
float rounding (the order of a few operations differs), so runs with it are not bit-identical to
runs without it.

It is used when every trainable parameter is a floating-point tensor on the CPU or a CUDA device
and the Trainer does not train in mixed precision (a fused step unscales gradients itself, and
Lightning's mixed-precision plugin, bf16 included, then refuses to clip them); otherwise torch
chooses.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_FUSED_DEVICES = ("cpu", "cuda")
_FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def can_fuse(parameters: list[nn.Parameter], *, scales_gradients: bool = False) -> bool:
    """Whether torch's fused AdamW takes ``parameters`` (see the module docstring)."""
    return bool(parameters) and not scales_gradients and all(
        p.device.type in _FUSED_DEVICES and p.dtype in _FUSED_DTYPES and not p.is_sparse for p in parameters)


def adamw(parameters: Iterable[nn.Parameter], *, lr: float, weight_decay: float, betas: tuple[float, float],
          scales_gradients: bool = False) -> torch.optim.AdamW:
    """AdamW over ``parameters``, fused when :func:`can_fuse` allows it."""
    parameters = list(parameters)
    fused = can_fuse(parameters, scales_gradients=scales_gradients)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused or None)
