"""Shared prompts: the responses of one example run after a single copy of their prompt.

A pairwise or ranked batch repeats each prompt once per response (row ``b * k + j`` is prompt
``b`` followed by response ``j``), and the model computes every copy. On Anthropic HH at
``max_length`` 256 the prompt is about half of each sequence, so a pair costs ``2P + C + R``
positions where ``P + C + R`` carry all the information. Here each example becomes one *block*:

    [ prompt | response 1 | response 2 | ... ]

Positions restart nowhere: response ``j``'s tokens keep the positions they have in their own
sequence (``P, P+1, ...``). Attention (:mod:`zoo.forward.attention`, given the blocks) lets the
prompt attend to itself and each response to the prompt and to itself, so every token's hidden
state is the one it has in its own sequence, gradients included (the prompt's activations receive
the sum of what every response sends back, as its copies did). The first token of response ``j``
is predicted from the prompt's last hidden state; every other token from the token before it in
its response. Log-probs equal the padded path's to float rounding (``tests/test_shared_prefix.py``).

The shared prefix of a block is the longest run of tokens that every response's row starts with and
that no loss scores (the prompt, unless ``train_on_prompt``); a block with none is just its
sequences one after the other. Blocks go one per row, rows right-padded to the longest block
(``data.shared_prefix``), or all in a single row with no padding at all when ``data.padding_free``
is on too. Either way attention runs per block, through zoo's ``zoo_varlen`` attention, so the
model must use sdpa (:func:`check_shared_prefix_support`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.batch import SequenceLogProbs
from zoo.errors import ConfigError
from zoo.forward.attention import (PREFIX_BLOCKS, PrefixBlocks, enable_varlen_attention, packed_call,
                                   uses_varlen_attention)
from zoo.forward.lm_head import head_log_probs, split_head
from zoo.forward.logprobs import assemble


@dataclass
class SharedPrefixRows:
    """A padded ``[N, T]`` batch laid out as prompt-sharing blocks in ``R`` rows of ``L`` tokens.

    Attributes:
        input_ids: ``[R, L]`` token ids (row padding after the last block).
        position_ids: ``[R, L]`` each token's position in its own sequence (0 on row padding).
        where: ``[N, T]`` the flat index into ``[R * L]`` that holds each padded position's token
            (a prompt token of every response points at the one shared copy); -1 on padding.
        predecessor: ``[R * L]`` the flat index of the position whose hidden state predicts each
            token (the prompt's last token for a response's first); -1 where there is none.
        blocks: per row, its blocks as ``(prefix length, response lengths)``.
    """

    input_ids: Tensor
    position_ids: Tensor
    where: Tensor
    predecessor: Tensor
    blocks: PrefixBlocks

    @property
    def num_positions(self) -> int:
        """Positions the model computes."""
        return self.input_ids.numel()

    def logprobs(self, model: nn.Module, batch, *, hidden_states: bool = False) -> SequenceLogProbs:
        """:func:`shared_prefix_logprobs` of ``batch`` (a :class:`zoo.batch.Batch` carrying these rows)."""
        return shared_prefix_logprobs(model, self, batch.input_ids, batch.loss_mask, batch.group_size,
                                      hidden_states=hidden_states)


def _prefix_length(input_ids: Tensor, loss_mask: Tensor, members: list[int], lengths: list[int]) -> int:
    """The longest unscored run of tokens that every member row starts with."""
    first = members[0]
    shared = min(lengths[i] for i in members)
    for i in members:
        scored = torch.nonzero(loss_mask[i, : lengths[i]]).flatten()
        if scored.numel():
            shared = min(shared, int(scored[0]))
        differs = torch.nonzero(input_ids[i, :shared] != input_ids[first, :shared]).flatten()
        if differs.numel():
            shared = int(differs[0])
    return shared


def share_prefixes(input_ids: Tensor, lengths: list[int], loss_mask: Tensor, group_size: int, pad_token_id: int,
                   *, one_row: bool = False) -> SharedPrefixRows:
    """Lay out the padded batch (row ``b * group_size + j``, ``lengths[i]`` real tokens) as shared-prompt blocks.

    One block per example; one block per row (right-padded), or all blocks in one row with ``one_row``.
    Rows of length 0 (unfilled ranked slots) take no room.
    """
    n, width = input_ids.shape
    block_ids: list[list[Tensor]] = []
    block_positions: list[list[Tensor]] = []
    # per block: (prefix length, [(padded row, response length)])
    layouts: list[tuple[int, list[tuple[int, int]]]] = []
    for start in range(0, n, group_size):
        members = [i for i in range(start, min(start + group_size, n)) if lengths[i] > 0]
        if not members:
            continue
        prefix = _prefix_length(input_ids, loss_mask, members, lengths)
        ids = [input_ids[members[0], :prefix]] + [input_ids[i, prefix: lengths[i]] for i in members]
        positions = [torch.arange(prefix)] + [torch.arange(prefix, lengths[i]) for i in members]
        block_ids.append(ids)
        block_positions.append(positions)
        layouts.append((prefix, [(i, lengths[i] - prefix) for i in members]))
    groups = [list(range(len(layouts)))] if one_row else [[b] for b in range(len(layouts))]
    row_length = max([1, *(sum(sum(len(t) for t in block_ids[b]) for b in row) for row in groups)])
    rows = max(len(groups), 1)
    packed_ids = torch.full((rows, row_length), pad_token_id, dtype=input_ids.dtype)
    position_ids = torch.zeros((rows, row_length), dtype=torch.long)
    where = torch.full((n, width), -1, dtype=torch.long)
    predecessor = torch.full((rows * row_length,), -1, dtype=torch.long)
    blocks: PrefixBlocks = []
    for r, row in enumerate(groups):
        at = r * row_length  # flat index of the next free position
        row_blocks = []
        for b in row:
            prefix, responses = layouts[b]
            flat = torch.cat(block_ids[b])
            packed_ids.view(-1)[at: at + flat.numel()] = flat
            position_ids.view(-1)[at: at + flat.numel()] = torch.cat(block_positions[b])
            prefix_at = at
            if prefix:
                predecessor[prefix_at + 1: prefix_at + prefix] = torch.arange(prefix_at, prefix_at + prefix - 1)
            at += prefix
            for i, length in responses:
                where[i, :prefix] = torch.arange(prefix_at, prefix_at + prefix)
                where[i, prefix: prefix + length] = torch.arange(at, at + length)
                if length:
                    predecessor[at] = prefix_at + prefix - 1 if prefix else -1
                    predecessor[at + 1: at + length] = torch.arange(at, at + length - 1)
                at += length
            row_blocks.append((prefix, tuple(length for _, length in responses)))
        blocks.append(row_blocks)
    return SharedPrefixRows(packed_ids, position_ids, where, predecessor, blocks)


def shared_prefix_logprobs(model: nn.Module, rows: SharedPrefixRows, input_ids: Tensor, loss_mask: Tensor,
                           group_size: int, *, hidden_states: bool = False) -> SequenceLogProbs:
    """:func:`zoo.forward.logprobs.sequence_logprobs` of the padded ``input_ids`` batch, run as ``rows``.

    The LM head runs at the predecessors of scored tokens only when the model splits into backbone
    and head (:func:`zoo.forward.lm_head.split_head`); otherwise at every position. A model still on
    sdpa (a reference loaded only to fill the reference cache) is switched to ``zoo_varlen`` first:
    any other attention would ignore the blocks.
    """
    if not uses_varlen_attention(model):
        check_shared_prefix_support(model, role="the model scoring this batch")
    scored = loss_mask.bool() & (rows.where >= 0)
    scored[:, 0] = False  # the first token has no prediction
    predictor = rows.predecessor[rows.where[scored]]
    targets = input_ids[scored]
    if bool((predictor < 0).any()):
        raise ValueError("a scored token has no predecessor in the shared-prefix layout")
    forward = {"position_ids": rows.position_ids, "use_cache": False, PREFIX_BLOCKS: rows.blocks}
    parts = None if hidden_states else split_head(model)
    with packed_call():  # no mask is built: the blocks say who sees whom
        if parts is not None:
            hidden = parts[0](input_ids=rows.input_ids, **forward).last_hidden_state
            hidden = hidden.reshape(-1, hidden.shape[-1])
            logps = head_log_probs(parts[1], hidden[predictor], targets)
        else:
            out = model(input_ids=rows.input_ids, output_hidden_states=hidden_states, **forward)
            logits = out.logits.reshape(-1, out.logits.shape[-1])[predictor].float()
            logps = -F.cross_entropy(logits, targets, reduction="none")
            hidden = out.hidden_states[-1].reshape(-1, out.hidden_states[-1].shape[-1]) if hidden_states else None
    token_logps = torch.zeros(loss_mask.shape, dtype=logps.dtype, device=logps.device).masked_scatter(scored, logps)
    padded_hidden = None
    if hidden_states:
        real = (rows.where >= 0).unsqueeze(-1)
        padded_hidden = hidden[rows.where.clamp(min=0)] * real
    return assemble(token_logps, loss_mask, group_size, hidden_states=padded_hidden)


def check_shared_prefix_support(model: nn.Module, *, role: str = "the policy") -> None:
    """Switch ``model`` to ``zoo_varlen`` attention, or raise a ConfigError naming why it cannot share prompts."""
    if not enable_varlen_attention(model):
        attention = getattr(getattr(model, "config", None), "_attn_implementation", "unknown")
        raise ConfigError(
            f"data.shared_prefix: {role} uses attention implementation {attention!r} (or a sliding window / "
            f"soft-capped attention), which cannot attend from one response to a prompt it shares with another. "
            f"Use model.attn_implementation: sdpa, or set data.shared_prefix: false.")
