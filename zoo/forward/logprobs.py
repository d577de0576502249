"""Log-probabilities of response tokens: the one place where masking and reduction happen.

``log π(y|x) = Σ_t log π(y_t | x, y_<t)`` over the response tokens only; the prompt is masked.
Logits are upcast to float32 before the log-softmax (half-precision log-softmax is a known source
of NaNs in preference losses). Chosen and rejected (or all ``k`` ranked) responses go through the
model in one concatenated forward pass, because the collators already flatten them.

A batch whose rows are all right-padded goes through the model with no attention mask: causal
attention already keeps every real token from seeing the padding after it, and positions count
from 0 either way, so every real token's value is unchanged, while sdpa runs its mask-free
causal kernel and shares grouped key/value heads instead of keeping repeated copies for backward
(:func:`mask_for_forward`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.batch import SequenceLogProbs
from zoo.forward.lm_head import scored_token_logps


def token_logps_from_logits(logits: Tensor, input_ids: Tensor) -> Tensor:
    """``[N, T]`` log-probs of each token given the ones before it; position 0 gets 0.

    ``logits[:, t]`` predicts ``input_ids[:, t + 1]``; the result is aligned with ``input_ids``.
    """
    shifted = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    logps = -F.cross_entropy(shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1),
                             reduction="none").view_as(targets)
    return torch.cat([logps.new_zeros(logps.shape[0], 1), logps], dim=1)


def token_entropy_from_logits(logits: Tensor) -> Tensor:
    """``[N, T]`` entropy of the next-token distribution, aligned like :func:`token_logps_from_logits`."""
    logp = logits[:, :-1].float().log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return torch.cat([entropy.new_zeros(entropy.shape[0], 1), entropy], dim=1)


def reduce_sequences(token_logps: Tensor, mask: Tensor, group_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sum, mean and length of the masked token log-probs, reshaped to ``[B, k]``."""
    mask = mask.clone()
    mask[:, 0] = False  # the first token has no prediction
    masked = token_logps * mask
    total = masked.sum(-1)
    lengths = mask.sum(-1)
    mean = total / lengths.clamp(min=1)
    shape = (-1, group_size)
    return total.view(shape), mean.view(shape), lengths.view(shape)


def mask_for_forward(attention_mask: Tensor) -> Tensor | None:
    """``None`` when every row of ``attention_mask`` is real tokens then padding, else the mask itself."""
    if attention_mask.shape[1] < 2 or bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all()):
        return None
    return attention_mask


def sequence_logprobs(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor,
                      loss_mask: Tensor, group_size: int, *, hidden_states: bool = False,
                      entropy: bool = False) -> SequenceLogProbs:
    """Run ``model`` once over all ``[B*k, T]`` sequences and reduce to per-sequence log-probs.

    Without ``entropy``, the LM head runs at scored positions only (:mod:`zoo.forward.lm_head`) where the
    model allows it. Right-padded batches run without a mask (:func:`mask_for_forward`).
    """
    attention_mask = mask_for_forward(attention_mask)
    if not entropy:
        scored = loss_mask.bool().clone()
        scored[:, 0] = False
        result = scored_token_logps(model, input_ids, scored, with_hidden=hidden_states, attention_mask=attention_mask)
        if result is not None:
            token_logps, hidden = result if hidden_states else (result, None)
            return assemble(token_logps, loss_mask, group_size, hidden_states=hidden)
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                output_hidden_states=hidden_states)
    return assemble(token_logps_from_logits(out.logits, input_ids), loss_mask, group_size,
                    hidden_states=out.hidden_states[-1] if hidden_states else None,
                    entropy=token_entropy_from_logits(out.logits) if entropy else None)


def assemble(token_logps: Tensor, loss_mask: Tensor, group_size: int, *, hidden_states: Tensor | None = None,
             entropy: Tensor | None = None) -> SequenceLogProbs:
    """Mask ``[B*k, T]`` per-token log-probs to the scored tokens and reduce them per sequence."""
    mask = loss_mask.bool().clone()
    mask[:, 0] = False
    token_logps = token_logps * mask
    total, mean, lengths = reduce_sequences(token_logps, mask, group_size)
    return SequenceLogProbs(token_logps=token_logps, mask=mask, sum=total, mean=mean, lengths=lengths,
                            hidden_states=hidden_states, entropy=entropy)
