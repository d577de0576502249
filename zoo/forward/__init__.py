"""How a model runs on a batch: the one function the training loop, the reference pass, the
reference cache, online algorithms and the benchmark's evaluation all call.

Two choices are made here, from the batch and from what the caller asks for, never by the caller:

* the layout: a batch that carries packed rows (``data.padding_free``) runs packed
  (:mod:`zoo.forward.packing`), one that carries shared-prompt blocks (``data.shared_prefix``) runs
  those (:mod:`zoo.forward.shared_prefix`), any other batch runs padded (:mod:`zoo.forward.logprobs`);
  the outputs come back in the padded ``[B*k, T]`` layout either way;
* the head: without ``hidden_states`` the LM head runs at the scored positions only
  (:mod:`zoo.forward.lm_head`, which falls back to full logits for a model it cannot split); asking for
  hidden states runs the full model output. ``scores`` runs a scalar reward head instead.

A model with a ``scoring_view()`` context manager (:class:`zoo.lora.AdapterDisabledReference`) is
scored as the model that context yields, so it takes the same path as that model.

The package holds the whole forward path:

* :mod:`zoo.forward.logprobs`: the padded path, log-probs of the scored tokens;
* :mod:`zoo.forward.packing`: the packed path (``data.padding_free``);
* :mod:`zoo.forward.shared_prefix`: one copy of each prompt for all its responses (``data.shared_prefix``);
* :mod:`zoo.forward.lm_head` and :mod:`zoo.forward.chunked_head`: the LM head at the scored
  positions only, in chunks;
* :mod:`zoo.forward.attention`: per-sequence (and per-block) attention for packed rows on sdpa models;
* :mod:`zoo.forward.swiglu`: the SwiGLU MLP that keeps fewer activations for backward.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.batch import Batch, SequenceLogProbs
from zoo.forward.logprobs import sequence_logprobs


def batch_logprobs(model: nn.Module, batch: Batch, *, hidden_states: bool = False,
                   scores: bool = False) -> SequenceLogProbs:
    """``model``'s :class:`SequenceLogProbs` of ``batch``'s scored tokens (see the module docstring).

    With ``scores`` (a scalar-head model, ``Algorithm.output = "scores"``) ``sum`` holds the
    ``[B, k]`` scores.
    """
    view = getattr(model, "scoring_view", None)
    if callable(view):  # another model run in a context (LoRA's adapter-disabled reference)
        with view() as inner:
            return batch_logprobs(inner, batch, hidden_states=hidden_states, scores=scores)
    if scores:
        return sequence_scores(model, batch.input_ids, batch.attention_mask, batch.loss_mask, batch.group_size)
    if batch.packed is not None:  # packed rows or shared-prompt blocks: the layout runs itself
        return batch.packed.logprobs(model, batch, hidden_states=hidden_states)
    return sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, batch.group_size,
                             hidden_states=hidden_states)


def cached_logprobs(sums: Tensor, batch: Batch) -> SequenceLogProbs:
    """Stored ``[B, k]`` sequence log-probs of ``batch`` (the reference cache, or an online
    algorithm's experience) as :class:`SequenceLogProbs`.

    The mask, lengths and means follow from the batch layout; per-token values are not stored,
    so ``token_logps`` is None.
    """
    mask = batch.loss_mask.bool().clone()
    mask[:, 0] = False  # the first token has no prediction (as zoo.forward.logprobs scores it)
    lengths = mask.sum(-1).view(-1, batch.group_size).to(sums.device)
    sums = sums.float()
    return SequenceLogProbs(token_logps=None, mask=mask, sum=sums, mean=sums / lengths.clamp(min=1), lengths=lengths)


def sequence_scores(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, loss_mask: Tensor,
                    group_size: int) -> SequenceLogProbs:
    """Scalar scores of ``[B*k, T]`` sequences as a :class:`SequenceLogProbs` for ``output = "scores"``.

    ``sum`` and ``mean`` both hold the ``[B, k]`` scores; ``token_logps`` is zero (there are no
    token log-probs); ``mask`` and ``lengths`` describe the response tokens as usual.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    scores = logits[:, 0].float().view(-1, group_size)
    mask = loss_mask.bool()
    return SequenceLogProbs(token_logps=torch.zeros(mask.shape, dtype=torch.float32, device=mask.device),
                            mask=mask, sum=scores, mean=scores, lengths=mask.sum(-1).view(-1, group_size))
