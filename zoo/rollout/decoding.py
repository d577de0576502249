"""The decoding loop behind :class:`zoo.rollout.sampler.Sampler`: prefill once, then one token per step
for the rows that are still generating.

``generate`` keeps every row in the batch until the last one stops: a row that emitted EOS at
step 3 still runs through the model, its KV cache still grows, and its padding is still masked,
for every remaining step. Rollouts of a policy that answers briefly spend much of their time on
such rows. :func:`decode` instead

* runs each distinct prompt once (prefill) with the LM head on the last position only, and gives
  its ``samples_per_prompt`` rows copies of that prompt's KV cache (``generate`` repeats the
  prompt rows first and prefills every copy);
* after each step drops the rows that emitted EOS from the batch and from the KV cache, so a step
  costs what its unfinished rows cost;
* keeps the KV cache in buffers with room for every position to come (:mod:`zoo.rollout.kvcache`)
  instead of copying it at each step, with the same attention results bit for bit;
* applies the sampling settings as ``generate`` does (temperature, then top-k, then top-p on the
  float32 logits, then ``softmax`` and ``torch.multinomial``), using transformers' own warpers,
  and reads the raw log-probs of the chosen tokens only when asked to;
* on request (``packed_weights``), runs the decoding steps on CPU with oneDNN-packed weights
  (:mod:`zoo.rollout.packed`: faster, equal up to float rounding).

Under greedy decoding the tokens are those ``generate`` picks (the same model calls with the same
positions and masks, on fewer rows). Under sampling each step draws from the same distribution
with the same seed; once a row has stopped, later draws consume the random stream for fewer rows
than ``generate`` would, so the samples of the other rows are different draws of the same
distribution rather than the same draws.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from zoo.rollout.kvcache import roomy_cache
from zoo.rollout.packed import packed_linears


@dataclass
class Decoded:
    """``tokens``: ``[N, L]`` generated tokens (``pad_id`` after a row's EOS), ``L`` the steps run;
    ``token_logps``: ``[N, L]`` raw log-probs of those tokens (0 after EOS), or None."""

    tokens: Tensor
    token_logps: Tensor | None


def warpers(temperature: float, top_k: int, top_p: float) -> LogitsProcessorList:
    """The sampling warpers ``generate`` applies for these settings, in its order."""
    chain = LogitsProcessorList()
    if temperature != 1.0:
        chain.append(TemperatureLogitsWarper(temperature))
    if top_k:
        chain.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
    if top_p < 1.0:
        chain.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    return chain


def supports_decoding(model: torch.nn.Module) -> bool:
    """Whether :func:`decode` can drive ``model``: a transformers causal LM (or a peft wrapper of one)."""
    from transformers import PreTrainedModel

    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    return isinstance(base, PreTrainedModel) and callable(getattr(base, "get_output_embeddings", None)) \
        and base.get_output_embeddings() is not None and not base.config.is_encoder_decoder


def _cache_argument(model: torch.nn.Module) -> str:
    """The forward argument that takes the KV cache: ``cache`` since transformers 5, ``past_key_values`` before."""
    import inspect

    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


@torch.no_grad()
def decode(model: torch.nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, *, max_new_tokens: int,
           eos_ids: Sequence[int], pad_id: int, temperature: float, top_k: int = 0, top_p: float = 1.0,
           samples_per_prompt: int = 1, record_logps: bool = False, packed_weights: bool = False,
           tick: Callable[[int], None] | None = None) -> Decoded:
    """Generate up to ``max_new_tokens`` tokens for each left-padded prompt row (see the module docstring).

    Each prompt gets ``samples_per_prompt`` consecutive rows of the result (``generate``'s
    ``num_return_sequences`` order), so ``Decoded`` has ``B * samples_per_prompt`` rows.
    ``temperature = 0`` is greedy decoding. ``tick(n)`` is called once per decoding step with the
    number of tokens it generated (one per row still going, its EOS included). ``packed_weights``
    runs the decoding steps (not the prefill) on oneDNN-packed weights (:mod:`zoo.rollout.packed`).
    """
    from transformers import DynamicCache

    n = samples_per_prompt
    rows, device = prompt_ids.shape[0] * n, prompt_ids.device
    sampling = warpers(temperature, top_k, top_p) if temperature != 0 else None
    eos = torch.tensor(list(eos_ids), device=device)
    tokens = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((rows, max_new_tokens), dtype=torch.float32, device=device) if record_logps else None
    mask = prompt_mask.long()
    # generate's positions: counted from each row's first real token (left padding gets 0).
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    config = getattr(model, "config", None)
    room = prompt_ids.shape[1] + max_new_tokens
    cache = {_cache_argument(model): DynamicCache() if config is None else roomy_cache(config, room)}
    out = model(input_ids=prompt_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                **cache)
    logits = out.logits[:, -1]
    del out
    if n > 1:  # each prompt's samples share its prefill: copies of its cache rows and first logits
        next(iter(cache.values())).batch_repeat_interleave(n)
        logits, mask, positions = (t.repeat_interleave(n, dim=0) for t in (logits, mask, positions))
    with packed_linears(model, rows) if packed_weights else contextlib.nullcontext():
        steps = _steps(model, cache, logits, mask, positions, tokens, logps, sampling, eos, tick)
    return Decoded(tokens[:, :steps], None if logps is None else logps[:, :steps])


def _steps(model: torch.nn.Module, cache: dict, logits: Tensor, mask: Tensor, positions: Tensor, tokens: Tensor,
           logps: Tensor | None, sampling: LogitsProcessorList | None, eos: Tensor,
           tick: Callable[[int], None] | None) -> int:
    """The decoding loop of :func:`decode`: fills ``tokens`` (and ``logps``) row by row; returns the steps run."""
    max_new_tokens = tokens.shape[1]
    active = torch.arange(tokens.shape[0], device=tokens.device)  # the rows still generating, in the cache's order
    next_position = positions[:, -1] + 1
    steps = 0
    for step in range(max_new_tokens):
        logits = logits.to(copy=True, dtype=torch.float32)
        if sampling is None:
            chosen = logits.argmax(-1)
        else:
            chosen = torch.multinomial(torch.softmax(sampling(None, logits), dim=-1), num_samples=1).squeeze(1)
        tokens[active, step] = chosen
        if logps is not None:
            logps[active, step] = logits.log_softmax(-1).gather(-1, chosen[:, None]).squeeze(1)
        steps = step + 1
        if tick is not None:
            tick(int(active.numel()))
        going = ~torch.isin(chosen, eos)
        if step == max_new_tokens - 1 or not bool(going.any()):
            break
        if not bool(going.all()):
            keep = going.nonzero().squeeze(1)
            next(iter(cache.values())).batch_select_indices(keep)
            active, chosen, mask, next_position = active[keep], chosen[keep], mask[keep], next_position[keep]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        logits = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position[:, None],
                       use_cache=True, **cache).logits[:, -1]
        next_position = next_position + 1
    return steps
