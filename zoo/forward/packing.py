"""Padding-free batches: the sequences of a batch packed end to end into a few rows.

A padded batch runs the model over ``B*k × T`` positions, ``T`` being its longest sequence; on
real preference data (HH-RLHF: lengths from a few dozen tokens to ``max_length``) about a third of
those positions are padding. Packing puts the sequences one after the other into rows of
``capacity`` tokens (first-fit decreasing, so rows come out nearly full) and gives each token its
position *within its own sequence*. Rows are sorted by fill and run in a few groups, each only as
wide as its fullest row (:func:`group_rows`), which removes most of the remaining tail padding.

No sequence may see another. Given ``position_ids`` and no attention mask, transformers' mask
construction (``masking_utils.find_packed_sequence_indices``) reads the boundaries from the
restarting positions and builds a block-diagonal causal mask, for sdpa, eager and flex attention,
on CPU and GPU; flash-attention kernels take the boundaries from the same ``position_ids`` when
given one row. :func:`check_packing_support` proves the separation on the actual model, with
several rows, before training starts.

The model's per-token outputs are scattered back to the padded ``[B*k, T]`` layout, so masking,
per-sequence reduction, losses and metrics are computed by exactly the same code as for a padded
batch; only the forward pass changes. (A little over 300 lines: packing, grouping and the packed
forward pass belong together.)
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.batch import SequenceLogProbs
from zoo.errors import ConfigError
from zoo.forward.attention import packed_call, sequence_starts, uses_varlen_attention
from zoo.forward.lm_head import scored_token_logps
from zoo.forward.logprobs import assemble, token_entropy_from_logits, token_logps_from_logits


@dataclass
class PackedSequences:
    """The sequences of a padded ``[N, T]`` batch, packed into ``R`` rows of ``L`` tokens.

    Attributes:
        input_ids: ``[R, L]`` token ids; the tail of a row that no sequence fills holds padding.
        position_ids: ``[R, L]`` each token's position within its own sequence (0 on row padding,
            which makes every padding token a one-token sequence of its own).
        source: ``[R, L]`` where each token sits in the padded batch, as the flat index
            ``row * T + column`` into ``[N, T]``; -1 on row padding.
        padded_shape: ``(N, T)``, the padded layout the outputs are scattered back to.
        row_groups: ``(first row, end row, length)`` per forward pass: rows are sorted by how
            full they are, and each group runs over ``[first:end, :length]`` only, so short rows
            neither compute a long row's padding nor pay its attention cost.
    """

    input_ids: Tensor
    position_ids: Tensor
    source: Tensor
    padded_shape: tuple[int, int]
    row_groups: list[tuple[int, int, int]]

    @property
    def num_positions(self) -> int:
        """Positions the model computes (the row groups' areas)."""
        return sum((end - first) * length for first, end, length in self.row_groups)

    def logprobs(self, model: torch.nn.Module, batch, *, hidden_states: bool = False) -> SequenceLogProbs:
        """:func:`packed_sequence_logprobs` of ``batch`` (a :class:`zoo.batch.Batch` carrying these rows)."""
        return packed_sequence_logprobs(model, self, batch.loss_mask, batch.group_size, hidden_states=hidden_states)

    def as_one_row(self) -> PackedSequences:
        """The same sequences end to end in a single row with no padding (for varlen attention)."""
        keep = self.source >= 0
        ids, positions, source = self.input_ids[keep], self.position_ids[keep], self.source[keep]
        return PackedSequences(ids[None], positions[None], source[None], self.padded_shape,
                               [(0, 1, max(ids.numel(), 1))])


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Assign items of the given lengths to as few bins of ``capacity`` as first-fit decreasing finds.

    Returns the bins as lists of item indices. Every length must be ``<= capacity``.
    """
    bins: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        length = lengths[index]
        if length > capacity:
            raise ValueError(f"a sequence of {length} tokens does not fit rows of {capacity}")
        for b, free in enumerate(room):
            if length <= free:
                bins[b].append(index)
                room[b] -= length
                break
        else:
            bins.append([index])
            room.append(capacity - length)
    return bins


#: Cost model of a forward pass over ``n`` rows of ``L`` tokens: ``n·L·(1 + L/ATTENTION_SCALE) +
#: CALL_OVERHEAD``, in units of one position's matmul work. Dense-mask attention costs as much as
#: the rest of the tiny model's layers at about 1,000 tokens per row on CPU (benchmarks/padding.py);
#: on accelerators attention is relatively cheaper, so the model errs towards fewer, longer calls.
ATTENTION_SCALE = 1024
CALL_OVERHEAD = 256
MAX_ROW_GROUPS = 4


def _call_cost(rows: int, length: int) -> float:
    return rows * length * (1 + length / ATTENTION_SCALE) + CALL_OVERHEAD


def group_rows(fills: list[int]) -> list[tuple[int, int, int]]:
    """Split rows sorted by decreasing fill into at most MAX_ROW_GROUPS contiguous groups of least cost."""
    count = len(fills)
    if not count:
        return []
    # best[g][i]: least cost of the first i rows in g groups, with the split that achieves it
    best = [[(float("inf"), -1)] * (count + 1) for _ in range(MAX_ROW_GROUPS + 1)]
    best[0][0] = (0.0, -1)
    for g in range(1, MAX_ROW_GROUPS + 1):
        for end in range(1, count + 1):
            best[g][end] = min((best[g - 1][first][0] + _call_cost(end - first, fills[first]), first)
                               for first in range(end))
    groups_used = min(range(1, MAX_ROW_GROUPS + 1), key=lambda g: best[g][count][0])
    groups, end = [], count
    for g in range(groups_used, 0, -1):
        first = best[g][end][1]
        groups.append((first, end, max(fills[first], 1)))
        end = first
    return groups[::-1]


def pack_sequences(input_ids: Tensor, lengths: list[int], capacity: int, pad_token_id: int) -> PackedSequences:
    """Pack the first ``lengths[i]`` tokens of each row of the padded ``input_ids`` into rows.

    Rows hold at most ``max(capacity, longest sequence)`` tokens. Of the row lengths tried (the
    longest sequence, twice that, ``capacity``), the one that leaves the fewest positions wins,
    ties going to shorter rows (attention cost grows with the row length): so a batch never
    packs into more positions than its padded form, which is the longest sequence times ``N``.
    The rows are then sorted by fill and cut into :func:`group_rows` groups.
    """
    n, width = input_ids.shape
    longest = max(max(lengths, default=1), 1)
    capacity = max(capacity, longest)
    best: tuple[int, int, list[list[int]]] | None = None
    for candidate in sorted({longest, min(2 * longest, capacity), capacity}):
        candidate_bins = first_fit_decreasing(lengths, candidate)
        fill = max(sum(lengths[i] for i in b) for b in candidate_bins) if candidate_bins else 1
        if best is None or len(candidate_bins) * fill < best[0]:
            best = (len(candidate_bins) * fill, fill, candidate_bins)
    _, row_length, bins = best
    bins.sort(key=lambda b: -sum(lengths[i] for i in b))
    packed_ids = torch.full((len(bins), row_length), pad_token_id, dtype=input_ids.dtype)
    position_ids = torch.zeros((len(bins), row_length), dtype=torch.long)
    source = torch.full((len(bins), row_length), -1, dtype=torch.long)
    for r, members in enumerate(bins):
        start = 0
        for i in members:
            length = lengths[i]
            packed_ids[r, start: start + length] = input_ids[i, :length]
            position_ids[r, start: start + length] = torch.arange(length)
            source[r, start: start + length] = torch.arange(i * width, i * width + length)
            start += length
    groups = group_rows([sum(lengths[i] for i in b) for b in bins])
    return PackedSequences(packed_ids, position_ids, source, (n, width), groups)


def unpack(values: Tensor, packed: PackedSequences) -> Tensor:
    """Scatter per-token ``values`` (``[R, L, ...]``) back to the padded layout (``[N, T, ...]``).

    Padded positions get 0. Differentiable with respect to ``values``.
    """
    n, width = packed.padded_shape
    keep = packed.source.reshape(-1) >= 0
    flat = values.reshape(-1, *values.shape[2:])[keep]
    out = values.new_zeros((n * width, *values.shape[2:]))
    out = out.index_copy(0, packed.source.reshape(-1)[keep], flat)
    return out.view(n, width, *values.shape[2:])


@contextlib.contextmanager
def _packed_inputs(model: torch.nn.Module, position_ids: Tensor) -> Iterator[dict[str, Tensor]]:
    """The forward kwargs that keep packed sequences apart, for this model's attention.

    :data:`zoo.forward.attention.VARLEN` attention: the rows as one, boundaries as ``cu_seq_lens_q``, and no
    mask built while inside. Otherwise: the ``position_ids`` alone, from which transformers derives
    each sequence's causal block.
    """
    if not uses_varlen_attention(model):
        yield {"position_ids": position_ids}
        return
    with packed_call():
        yield {"position_ids": position_ids.reshape(1, -1), "cu_seq_lens_q": sequence_starts(position_ids)}


def packed_forward(model: torch.nn.Module, input_ids: Tensor, position_ids: Tensor, **kwargs) -> object:
    """The model's forward pass over packed rows (the one way both training and the check call it).

    With :data:`zoo.forward.attention.VARLEN` attention the rows run as one, each sequence attending to
    itself through ``cu_seq_lens_q`` (:mod:`zoo.forward.attention`); the logits come back as ``[R, L, V]``.
    Otherwise: no attention mask and no cache, and transformers derives each sequence's causal block
    from the restarting ``position_ids`` (a measured alternative, zoo's own additive block-diagonal
    mask, ran no faster on CPU; see ``benchmarks/padding.py``).
    """
    rows, length = input_ids.shape
    with _packed_inputs(model, position_ids) as forward:
        out = model(input_ids=input_ids.reshape(forward["position_ids"].shape), use_cache=False, **forward, **kwargs)
    out.logits = out.logits.view(rows, length, -1)
    if getattr(out, "hidden_states", None) is not None:
        out.hidden_states = tuple(h.view(rows, length, -1) for h in out.hidden_states)
    return out


def run_layout(model: torch.nn.Module, packed: PackedSequences) -> PackedSequences:
    """The rows ``model`` actually runs: all in one row for :data:`zoo.forward.attention.VARLEN` attention."""
    return packed.as_one_row() if uses_varlen_attention(model) else packed


def packed_sequence_logprobs(model: torch.nn.Module, packed: PackedSequences, loss_mask: Tensor, group_size: int,
                             *, hidden_states: bool = False, entropy: bool = False) -> SequenceLogProbs:
    """:func:`zoo.forward.logprobs.sequence_logprobs` for a packed batch, with the same outputs and layout.

    A token's log-prob comes from the logits of the token before it in the packed row, which is
    the same sequence's previous token except at a sequence's first token; those positions map to
    column 0 of the padded layout, which the padded path scores as 0 and masks, and are zeroed here.
    """
    packed = run_layout(model, packed)
    width = packed.input_ids.shape[1]
    inside = packed.position_ids > 0  # not the first token of a sequence
    if not entropy:
        result = _scored_packed_logps(model, packed, loss_mask, inside, with_hidden=hidden_states)
        if result is not None:
            return assemble(result[0], loss_mask, group_size, hidden_states=result[1])
    pieces: dict[str, list[Tensor]] = {"logps": [], "hidden": [], "entropy": []}
    for first, end, length in packed.row_groups:
        ids = packed.input_ids[first:end, :length]
        out = packed_forward(model, ids, packed.position_ids[first:end, :length],
                             output_hidden_states=hidden_states)
        pieces["logps"].append(F.pad(token_logps_from_logits(out.logits, ids), (0, width - length)))
        if hidden_states:
            pieces["hidden"].append(F.pad(out.hidden_states[-1], (0, 0, 0, width - length)))
        if entropy:
            pieces["entropy"].append(F.pad(token_entropy_from_logits(out.logits), (0, width - length)))

    def unpacked(name: str) -> Tensor:
        values = torch.cat(pieces[name])
        if values.ndim == 2:
            return unpack((values * inside).unsqueeze(-1), packed).squeeze(-1)
        return unpack(values, packed)

    return assemble(unpacked("logps"), loss_mask, group_size,
                    hidden_states=unpacked("hidden") if hidden_states else None,
                    entropy=unpacked("entropy") if entropy else None)


def _scored_packed_logps(model: torch.nn.Module, packed: PackedSequences, loss_mask: Tensor, inside: Tensor,
                         *, with_hidden: bool = False) -> tuple[Tensor, Tensor | None] | None:
    """Padded-layout token log-probs (and last hidden states when asked) with the LM head at scored
    tokens only (:mod:`zoo.forward.lm_head`)."""
    width = packed.input_ids.shape[1]
    real = packed.source >= 0
    scored = loss_mask.reshape(-1)[packed.source.clamp(min=0)].bool() & inside & real
    pieces, hidden_pieces = [], []
    for first, end, length in packed.row_groups:
        ids = packed.input_ids[first:end, :length]
        with _packed_inputs(model, packed.position_ids[first:end, :length]) as forward:
            result = scored_token_logps(model, ids, scored[first:end, :length], with_hidden=with_hidden, **forward)
        if result is None:
            return None
        logps, hidden = result if with_hidden else (result, None)
        pieces.append(F.pad(logps, (0, width - length)))
        if with_hidden:
            hidden_pieces.append(F.pad(hidden.reshape(end - first, length, -1), (0, 0, 0, width - length)))
    token_logps = unpack(torch.cat(pieces).unsqueeze(-1), packed).squeeze(-1)
    return token_logps, unpack(torch.cat(hidden_pieces), packed) if with_hidden else None


def check_packing_support(model: torch.nn.Module) -> None:
    """Raise a ConfigError unless ``model`` keeps packed sequences apart.

    Packs two short sequences into two rows in both orders and compares the logits with those of
    each sequence run alone. Models whose attention ignores ``position_ids`` boundaries (e.g.
    flash-attention kernels given several rows, or architectures that build their own masks) fail
    here, before any training step, instead of silently attending across sequences.
    """
    parameter = next(model.parameters())
    device = parameter.device
    vocab = int(getattr(model.config, "vocab_size", 32))
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(1, vocab, (6,), generator=generator).to(device)
    second = torch.randint(1, vocab, (4,), generator=generator).to(device)
    rows = torch.stack([torch.cat([first, second]), torch.cat([second, first])])
    positions = torch.stack([torch.cat([torch.arange(6), torch.arange(4)]),
                             torch.cat([torch.arange(4), torch.arange(6)])]).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = [model(input_ids=s[None], use_cache=False).logits[0].float() for s in (first, second)]
            packed = packed_forward(model, rows, positions).logits.float()
    finally:
        model.train(was_training)
    got = [packed[0, :6], packed[0, 6:], packed[1, 4:], packed[1, :4]]
    want = [alone[0], alone[1], alone[0], alone[1]]
    tolerance = (1e-3 if parameter.dtype == torch.float32 else 5e-2) * max(1.0, alone[0].abs().max().item())
    if any((g - w).abs().max().item() > tolerance for g, w in zip(got, want)):
        attention = getattr(model.config, "_attn_implementation", "unknown")
        raise ConfigError(
            f"data.padding_free: this model (attention implementation {attention!r}) lets packed sequences "
            f"attend to each other, so packed batches would not equal padded ones. Use an architecture whose "
            f"masks follow position_ids (Llama, Qwen2, Mistral, Gemma, ... with sdpa, eager or flex attention), "
            f"or set data.padding_free: false.")
