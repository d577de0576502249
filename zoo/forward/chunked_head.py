"""Log-probs of target tokens through a linear LM head, chunk by chunk, with no ``[N, V]`` logits kept.

For hidden states ``h_i`` (the positions that predict a scored token ``x_i``) and a head
``logits = h Wᵀ + b`` over a vocabulary of ``V`` tokens::

    log π(x_i) = z_i[x_i] − logsumexp_v z_i[v],        z_i = W h_i + b

The plain path keeps ``z`` (``N × V`` floats, upcast to float32) and its log-softmax for the
backward pass: at SmolLM2's 49,152-token vocabulary that is 0.4 GB per thousand scored tokens,
the largest tensor of a training step. :class:`ChunkedLinearLogProbs` computes the same numbers
``chunk`` rows at a time and keeps only ``h``, the targets and each row's ``logsumexp`` (``N``
floats). Its backward pass recomputes one chunk's logits at a time (one extra head matmul) and
uses ``∂ log π(x_i) / ∂ z_i = onehot(x_i) − softmax(z_i)``::

    g_z = g_i (onehot(x_i) − exp(z_i − lse_i)),   ∂h_i = g_z W,   ∂W = Σ_i g_zᵀ h_i,   ∂b = Σ_i g_z

(the fused linear + cross-entropy of Liger-Kernel and Apple's Cut Cross-Entropy, written with
torch matmuls). The matmuls run in the dtype the plain path would use (the inputs', or the
autocast dtype when autocast is on), the log-softmax in float32, so values and gradients equal
the plain path's up to float rounding (``tests/test_chunked_head.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Floats of one chunk's logits (16 MiB in float32): 170 rows at a 49,152-token vocabulary.
CHUNK_ELEMENTS = 1 << 22


def default_chunk(vocab_size: int) -> int:
    """Rows per chunk: about :data:`CHUNK_ELEMENTS` logits, at least 16 rows."""
    return max(16, CHUNK_ELEMENTS // max(vocab_size, 1))


def _compute_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype ``F.linear(hidden, weight)`` computes in here, autocast included."""
    device = hidden.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(hidden.dtype, weight.dtype)


class ChunkedLinearLogProbs(torch.autograd.Function):
    """``log_softmax(hidden @ weight.T + bias)[range(N), targets]`` in chunks (see the module docstring)."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                chunk: int) -> Tensor:
        dtype = _compute_dtype(hidden, weight)
        w = weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(out)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                rows = slice(start, start + chunk)
                logits = F.linear(hidden[rows].to(dtype), w, b).float()
                lse[rows] = torch.logsumexp(logits, dim=-1)
                out[rows] = logits.gather(1, targets[rows, None]).squeeze(1) - lse[rows]
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.chunk, ctx.dtype, ctx.has_bias = chunk, dtype, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        dtype, chunk = ctx.dtype, ctx.chunk
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        w = weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) \
            if need_bias and ctx.has_bias else None
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                rows = slice(start, start + chunk)
                h = hidden[rows].to(dtype)
                grad_logits = F.linear(h, w, b).float().sub_(lse[rows, None]).exp_().neg_()  # −softmax
                grad_logits.scatter_add_(1, targets[rows, None], torch.ones_like(lse[rows, None]))  # + onehot
                grad_logits.mul_(grad_out[rows, None])
                if grad_bias is not None:
                    grad_bias += grad_logits.sum(0)
                grad_logits = grad_logits.to(dtype)  # as the plain path's ``.float()`` casts its gradient back
                if grad_hidden is not None:
                    grad_hidden[rows] = (grad_logits @ w).to(hidden.dtype)
                if grad_weight is not None:
                    grad_weight.addmm_(grad_logits.t().float() if dtype != torch.float32 else grad_logits.t(),
                                       h.float() if dtype != torch.float32 else h)
        return (grad_hidden, grad_weight.to(weight.dtype) if grad_weight is not None else None,
                grad_bias.to(bias.dtype) if grad_bias is not None else None, None, None)


def linear_log_probs(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                     chunk: int | None = None) -> Tensor:
    """``[N]`` float32 log-probs of ``targets`` under ``log_softmax(hidden @ weight.T + bias)``, chunked."""
    if hidden.ndim != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"expected hidden [N, d] and targets [N], got {tuple(hidden.shape)} and "
                         f"{tuple(targets.shape)}")
    return ChunkedLinearLogProbs.apply(hidden, weight, bias, targets.long(), chunk or default_chunk(weight.shape[0]))
