"""Variable-length causal attention for padding-free batches: each packed sequence attends to itself only.

transformers runs a packed row through sdpa with a block-diagonal mask built from the restarting
``position_ids``. That mask costs ``L²`` per row of ``L`` tokens whatever the sequences in it, and
with an explicit mask sdpa's fused kernels cannot use their causal shortcuts. This module registers
one more attention implementation, ``zoo_varlen``, with transformers' ``AttentionInterface``:

* given ``cu_seq_lens_q`` (the cumulative sequence lengths ``[0, l₁, l₁+l₂, ...]`` of one row that
  holds the whole batch end to end), it runs ``scaled_dot_product_attention(is_causal=True)`` on
  each sequence separately, so the work is ``Σ lᵢ²`` with no mask at all; grouped-query heads are
  shared through ``enable_gqa`` rather than copied;
* without it, it *is* transformers' sdpa attention, mask and all, so generation, evaluation and
  padded batches behave exactly as with ``attn_implementation="sdpa"``.

* given ``zoo_prefix_blocks`` (``data.shared_prefix``), each row holds blocks of one prompt
  followed by the responses that continue it: the prompt attends to itself, each response to the
  prompt and to itself (a lower-right causal mask over ``prompt + response`` keys), never to another
  response, so every response sees exactly the keys it would see as one sequence. The blocks travel
  as a forward keyword, like ``cu_seq_lens_q``, so that a checkpointed layer recomputing its
  attention in the backward pass gets them again. Keys beyond the queries (a key/value cache of a
  prefix computed earlier, which transformers puts before the row's own keys) precede every block
  of the row: each block's prompt and responses see them too (the evaluation scorer's layout).

Its mask function is sdpa's, except inside :func:`packed_call` (a packed forward pass), where it
returns ``None``: the block-diagonal mask would be built and never read.

:func:`enable_varlen_attention` switches a model from ``sdpa`` to ``zoo_varlen``; other
implementations (eager, flex, flash-attention kernels that read ``position_ids`` themselves) and
models with sliding-window or soft-capped attention are left as they are and keep the row path.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

VARLEN = "zoo_varlen"

_in_packed_call: contextvars.ContextVar[bool] = contextvars.ContextVar("zoo_in_packed_call", default=False)
#: Per row: its blocks as ``(prefix length, response lengths)``, end to end from the row's start.
PrefixBlocks = list[list[tuple[int, tuple[int, ...]]]]
#: The forward keyword that carries :data:`PrefixBlocks` to the attention layers.
PREFIX_BLOCKS = "zoo_prefix_blocks"


def varlen_attention_forward(module: torch.nn.Module, query: Tensor, key: Tensor, value: Tensor,
                             attention_mask: Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                             cu_seq_lens_q: Tensor | None = None, **kwargs) -> tuple[Tensor, None]:
    """Per-sequence causal sdpa over one packed row (``query``: ``[1, H, T, D]``), else transformers' sdpa.

    Returns the attention output as ``[1, T, H, D]`` (the layout transformers' implementations return).
    Given ``zoo_prefix_blocks`` the rows (``[R, H, T, D]``) hold prompt-sharing blocks instead.
    """
    blocks = kwargs.get(PREFIX_BLOCKS)
    if blocks is not None:
        return _prefix_attention(query, key, value, blocks, dropout, scaling), None
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if query.shape[0] != 1:
        raise ValueError(f"{VARLEN} attention takes one packed row, got a batch of {query.shape[0]}")
    bounds = cu_seq_lens_q.tolist()
    # each sequence is a block that is all prompt: causal attention over itself
    sequences = [(end - start, ()) for start, end in zip(bounds[:-1], bounds[1:])]
    return _prefix_attention(query, key, value, [sequences], dropout, scaling), None


def _causal_lower_right(query: Tensor, key: Tensor, value: Tensor, dropout: float, scaling: float | None,
                        gqa: bool) -> Tensor:
    """sdpa where query ``i`` of ``L`` sees keys ``0 .. K - L + i`` of ``K`` (the queries are the last ``L``)."""
    length, keys = query.shape[2], key.shape[2]
    if length == keys:
        return F.scaled_dot_product_attention(query, key, value, is_causal=True, dropout_p=dropout, scale=scaling,
                                              enable_gqa=gqa)
    allowed = torch.arange(keys, device=query.device)[None] \
        <= keys - length + torch.arange(length, device=query.device)[:, None]
    return F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, dropout_p=dropout, scale=scaling,
                                          enable_gqa=gqa)


def _prefix_attention(query: Tensor, key: Tensor, value: Tensor, blocks: PrefixBlocks, dropout: float,
                      scaling: float | None) -> Tensor:
    """Attention over rows of prompt-sharing blocks (see the module docstring), as ``[R, T, H, D]``."""
    gqa = query.shape[1] != key.shape[1]
    cached = key.shape[2] - query.shape[2]  # keys of an earlier prefix, before the row's own
    rows = []
    for r, row_blocks in enumerate(blocks):
        lengths = [n for prefix, responses in row_blocks for n in (prefix, *responses)]
        tail = query.shape[2] - sum(lengths)
        before_k, before_v = key[r:r + 1, :, :cached], value[r:r + 1, :, :cached]
        # split, not slicing: its backward writes each gradient once instead of a zero-filled copy per piece
        pieces = zip(*(t[r:r + 1, :, t.shape[2] - query.shape[2]:].split([*lengths, tail], 2)
                       for t in (query, key, value)))
        outputs = []
        for prefix, responses in row_blocks:
            q, k, v = next(pieces)
            if cached:
                k, v = torch.cat([before_k, k], 2), torch.cat([before_v, v], 2)
            if prefix:
                outputs.append(_causal_lower_right(q, k, v, dropout, scaling, gqa))
            for length in responses:
                rq, rk, rv = next(pieces)
                if length:  # response token i sees the earlier keys, the whole prompt and its tokens 0..i
                    outputs.append(_causal_lower_right(rq, torch.cat([k, rk], 2), torch.cat([v, rv], 2), dropout,
                                                       scaling, gqa))
        if tail:
            outputs.append(query.new_zeros(1, query.shape[1], tail, query.shape[3]))
        rows.append(torch.cat(outputs, dim=2))
    return torch.cat(rows).transpose(1, 2).contiguous()


def varlen_mask(*args, **kwargs) -> Tensor | None:
    """sdpa's mask, or ``None`` inside a packed call (the sequences' boundaries travel as ``cu_seq_lens_q``)."""
    if _in_packed_call.get():
        return None
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(VARLEN, varlen_attention_forward)
AttentionMaskInterface.register(VARLEN, varlen_mask)


def _config(model: torch.nn.Module):
    return getattr(model, "config", None)


def uses_varlen_attention(model: torch.nn.Module) -> bool:
    config = _config(model)
    return getattr(config, "_attn_implementation", None) == VARLEN


def enable_varlen_attention(model: torch.nn.Module) -> bool:
    """Switch ``model`` from sdpa to :data:`VARLEN` attention when that is exact for it; returns whether it did.

    Left alone: other attention implementations, and configs with a sliding window or attention
    soft-capping (per-sequence causal attention would ignore them).
    """
    config = _config(model)
    if config is None or getattr(config, "_attn_implementation", None) not in ("sdpa", VARLEN):
        return False
    windowed = getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True)
    if windowed or getattr(config, "attn_logit_softcapping", None) is not None:
        return False
    if config._attn_implementation != VARLEN:
        # The attention modules share this config and read the implementation at every call.
        setter = getattr(model, "set_attn_implementation", None)
        if setter is not None:
            setter(VARLEN)
        else:
            config._attn_implementation = VARLEN
    return True


def sequence_starts(position_ids: Tensor) -> Tensor:
    """``cu_seq_lens`` of the flattened rows: where positions restart at 0, plus the total length."""
    flat = position_ids.reshape(-1)
    starts = torch.nonzero(flat == 0).flatten()
    total = torch.tensor([flat.numel()], dtype=starts.dtype, device=starts.device)
    return torch.cat([starts, total]).to(torch.int32)


@contextlib.contextmanager
def packed_call() -> Iterator[None]:
    """Inside it, :data:`VARLEN` models build no attention mask."""
    token = _in_packed_call.set(True)
    try:
        yield
    finally:
        _in_packed_call.reset(token)
