"""The tensors that travel from a collator to a loss.

Every data shape is flattened the same way: an example with ``k`` responses becomes ``k`` rows of
``input_ids`` (prompt followed by response), in the order the responses were given, so row
``b * k + j`` holds response ``j`` of example ``b``. SFT has ``k = 1``; pairwise data has
``k = 2`` with the chosen response first; ranked data has ``k`` = the largest number of responses
in the batch, and ``valid`` marks the slots an example really fills.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported by what builds and moves batches, not by an algorithm's import
    import torch
    from torch import Tensor


@dataclass
class Batch:
    """A collated batch.

    Attributes:
        input_ids: ``[B*k, T]`` token ids, right-padded.
        attention_mask: ``[B*k, T]`` 1 for real tokens.
        loss_mask: ``[B*k, T]`` bool, True on the tokens a loss scores (the response, or the
            whole text when training on it).
        group_size: ``k``, the responses per example.
        valid: ``[B, k]`` bool, False for padding slots of examples with fewer than ``k`` responses.
        scores: ``[B, k]`` float scores of the responses (ranked data; pairwise data is 1 / 0),
            or None.
        example_ids: ``B`` stable ids of the tokenised examples (used by the reference cache).
        reference_logps: ``[B, k]`` cached reference sequence log-probs, or None.
        reference_token_logps: ``[B*k, T]`` the reference's per-token log-probs, laid out like
            ``input_ids``, when an online algorithm computed them once for its whole rollout
            (the loop then reads them on every minibatch); None otherwise. Set together with
            ``reference_logps``.
        packed: the same sequences in another layout that the model runs instead, its outputs
            scattered back to the padded layout above (its ``logprobs(model, batch)`` runs it): packed
            rows (:class:`zoo.forward.packing.PackedSequences`, ``data.padding_free``) or shared-prompt
            blocks (:class:`zoo.forward.shared_prefix.SharedPrefixRows`, ``data.shared_prefix``). None
            otherwise.
        prompt_ids / prompt_attention_mask: ``[B, P]`` left-padded prompts, for online
            algorithms that generate; None otherwise.
        prompts: the prompt texts (for reward functions), or None.
        extras: tensors an online algorithm attaches in its experience step.
    """

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor
    group_size: int
    valid: Tensor
    scores: Tensor | None = None
    example_ids: list[str] = field(default_factory=list)
    reference_logps: Tensor | None = None
    reference_token_logps: Tensor | None = None
    packed: Any = None
    prompt_ids: Tensor | None = None
    prompt_attention_mask: Tensor | None = None
    prompts: list[str] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def num_examples(self) -> int:
        return self.valid.shape[0]

    def to(self, device: torch.device | str) -> "Batch":
        from torch import Tensor

        def move(value: Any) -> Any:
            if isinstance(value, Tensor):
                return value.to(device)
            if isinstance(value, dict):
                return {key: move(item) for key, item in value.items()}
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return dataclasses.replace(value, **{f.name: move(getattr(value, f.name))
                                                     for f in dataclasses.fields(value) if f.init})
            return value

        return Batch(**{name: move(getattr(self, name)) for name in self.__dataclass_fields__})


@dataclass
class SequenceLogProbs:
    """Per-token and per-sequence log-probabilities of the scored tokens.

    Attributes:
        token_logps: ``[B*k, T]`` float32; position ``t`` holds ``log p(input_ids[t] | <t)``,
            0 where ``mask`` is False. None for values read from the reference cache, which keeps
            per-sequence sums only (:func:`zoo.forward.cached_logprobs`).
        mask: ``[B*k, T]`` bool, the scored tokens.
        sum: ``[B, k]`` sequence log-probability ``log π(y|x)``.
        mean: ``[B, k]`` length-normalised ``log π(y|x) / |y|``.
        lengths: ``[B, k]`` number of scored tokens ``|y|``.
        hidden_states: ``[B*k, T, H]`` last-layer hidden states when asked for, else None.
        entropy: ``[B*k, T]`` per-token entropy of the policy when asked for, else None.
    """

    token_logps: Tensor | None
    mask: Tensor
    sum: Tensor
    mean: Tensor
    lengths: Tensor
    hidden_states: Tensor | None = None
    entropy: Tensor | None = None


@dataclass
class LossOutput:
    """What a loss returns: unreduced per-example losses and the quantities worth logging.

    ``losses`` is ``[B]``; each metric is a tensor of shape ``[B]`` (averaged over the batch when
    logged) or a scalar. The training loop averages ``losses`` over the batch.

    ``tokens`` is the token count ``Σ |y|`` behind a token-mean loss (:func:`zoo.losses.aggregate`),
    None for any other normaliser. With it the loop turns each device's token mean into one mean
    over every device's tokens (a data-parallel run then trains on the same loss as one device).
    """

    losses: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
    tokens: Tensor | None = None


def left_padded(rows: Sequence[Sequence[int]], pad_id: int, *, min_width: int = 0) -> tuple[Tensor, Tensor]:
    """``[N, W]`` token ids and attention mask of ``rows`` aligned to the right (left padding with
    ``pad_id``), ``W`` the longest row and at least ``min_width``: how prompts are laid out for sampling."""
    return _padded(rows, pad_id, min_width, left=True)


def right_padded(rows: Sequence[Sequence[int]], pad_id: int, *, min_width: int = 0) -> tuple[Tensor, Tensor]:
    """``[N, W]`` token ids and attention mask of ``rows`` aligned to the left (right padding with
    ``pad_id``): how sequences are laid out for scoring and training."""
    return _padded(rows, pad_id, min_width, left=False)


def _padded(rows: Sequence[Sequence[int]], pad_id: int, min_width: int, *, left: bool) -> tuple[Tensor, Tensor]:
    import torch

    width = max([min_width, *(len(row) for row in rows)])
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span] = torch.tensor(row, dtype=torch.long)
            mask[i, span] = 1
    return ids, mask
