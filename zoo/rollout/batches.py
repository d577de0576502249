"""Turning sampled responses into training batches: the half of sampling that needs no model.

:class:`Generation` is what :class:`zoo.rollout.sampler.Sampler` returns; the functions here re-lay
its rows the way the collators do (:func:`right_padded`, :func:`generation_batch`), pick rows
(:func:`take_rows`, :func:`select_best`) and encode prompts. Online algorithm plugins import
these at load time, so this module stays free of transformers (``zoo plugins`` and ``zoo --help``
load every plugin).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo.batch import Batch, left_padded


@dataclass
class Generation:
    """Sampled responses for a batch of prompts.

    Attributes:
        sequences: ``[N, P+L]`` the left-padded prompt, then the right-padded response.
        attention_mask: ``[N, P+L]`` 1 on real prompt tokens and on response tokens up to and
            including the first EOS.
        response_mask: ``[N, P+L]`` bool, True on the generated tokens (EOS included).
        token_logps: ``[N, P+L]`` float32, ``log π(sequences[:, t] | sequences[:, <t])`` on the
            response tokens (see the module docstring), 0 elsewhere; None unless the sampler was
            asked to record them.
        texts: the ``N`` decoded responses (special tokens removed).
        prompt_index: ``[N]`` the prompt each row was sampled for; row ``i * n + j`` is sample ``j``
            of prompt ``i`` when ``n`` samples are drawn per prompt.
        prompt_length: ``P``, the padded prompt width.
        finished: ``[N]`` bool, True where the response ended with one of ``stop_ids`` (False: cut
            at ``max_new_tokens``).
        stop_ids: the token ids the sampler stopped at (the tokenizer's EOS, the model's
            configured EOS ids and the chat template's end of turn).

    The reference's per-token log-probs of a rollout live on the training batch made from it
    (``Batch.reference_token_logps``), in the layout the loss reads.
    """

    sequences: Tensor
    attention_mask: Tensor
    response_mask: Tensor
    token_logps: Tensor | None
    texts: list[str]
    prompt_index: Tensor
    prompt_length: int = 0
    finished: Tensor | None = None
    stop_ids: tuple[int, ...] = ()

    @property
    def response_lengths(self) -> Tensor:
        return self.response_mask.sum(-1)


def join_generations(first: Generation, second: Generation, *, pad_id: int) -> Generation:
    """The rows of ``first`` then those of ``second`` (e.g. an extra sampling round for some prompts).

    Both must come from the same left-padded prompts' width; the shorter responses are right-padded
    (masked out). ``prompt_index`` is kept as given: a caller that sampled ``second`` for a subset
    of the prompts maps its indices back first.
    """
    import torch

    if first.prompt_length != second.prompt_length:
        raise ValueError(f"cannot join generations of prompt widths {first.prompt_length} and {second.prompt_length}")
    if (first.token_logps is None) != (second.token_logps is None):
        raise ValueError("cannot join a generation with recorded log-probs and one without")
    width = max(first.sequences.shape[1], second.sequences.shape[1])

    def widened(value: Tensor, fill: Any) -> Tensor:
        return torch.nn.functional.pad(value, (0, width - value.shape[1]), value=fill)

    def joined(name: str, fill: Any) -> Tensor:
        return torch.cat([widened(getattr(first, name), fill), widened(getattr(second, name), fill)])

    return Generation(
        sequences=joined("sequences", pad_id), attention_mask=joined("attention_mask", 0),
        response_mask=joined("response_mask", False),
        token_logps=None if first.token_logps is None else joined("token_logps", 0.0),
        texts=first.texts + second.texts, prompt_index=torch.cat([first.prompt_index, second.prompt_index]),
        prompt_length=first.prompt_length, finished=torch.cat([first.finished, second.finished]),
        stop_ids=first.stop_ids)


def encode_prompts(tokenizer: Any, prompts: Sequence[str], max_prompt_length: int = 128,
                   prompt_truncation: str = "keep_end") -> tuple[Tensor, Tensor]:
    """Left-padded ``[B, P]`` prompt ids and mask, fitted to ``max_prompt_length`` tokens as training fits them.

    The one prompt truncation policy (:mod:`zoo.data.truncation`): ``keep_end`` / ``keep_start``
    (``drop`` cuts as ``keep_end``: a prompt given to a sampler is never left out), and a
    :class:`zoo.data.examples.ChatPrompt` is cut in whole turns with its template kept, so a row's
    prompt encodes to the ids its training example holds.
    """
    from zoo.data.examples import prompt_messages
    from zoo.data.truncation import PromptPolicy

    fit = PromptPolicy(max_prompt_length, prompt_truncation, "max_prompt_length").never_dropping().encoder(tokenizer)
    rows = [fit(prompt, prompt_messages(prompt), source="prompts", row=i + 1)[0] for i, prompt in enumerate(prompts)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return left_padded(rows, pad, min_width=1)


class PaddedRows(NamedTuple):
    """Generated rows laid out as the collators lay them out (:func:`right_padded`), all ``[n, W]``."""

    input_ids: Tensor
    attention_mask: Tensor
    #: The response tokens.
    loss_mask: Tensor
    #: The sampled tokens' recorded log-probs moved along with them (None when none were recorded).
    token_logps: Tensor | None


def right_padded(generation: Generation, rows: Tensor | None = None, *, pad_id: int = 0) -> PaddedRows:
    """Re-lay generated rows as the collators do: ``prompt + response`` from position 0, right-padded.

    Returns :class:`PaddedRows` (the per-token log-probs move along with their tokens). Training forward
    passes then see the same positions as ``generate`` did (which counts positions from the
    first real prompt token), for any kind of position embedding.
    """
    import torch

    index = torch.arange(generation.sequences.shape[0], device=generation.sequences.device) if rows is None else rows
    sequences = generation.sequences[index]
    real = generation.attention_mask[index].bool()
    response = generation.response_mask[index]
    logps = None if generation.token_logps is None else generation.token_logps[index]
    lengths = real.sum(-1)
    width = max(1, int(lengths.max())) if lengths.numel() else 1
    # A stable sort moves the real tokens to the front in their original order.
    order = torch.sort((~real).long(), dim=1, stable=True).indices[:, :width]
    input_ids = sequences.gather(1, order)
    attention_mask = real.gather(1, order)
    loss_mask = response.gather(1, order) & attention_mask
    token_logps = None if logps is None else logps.gather(1, order) * loss_mask
    input_ids = input_ids.masked_fill(~attention_mask, pad_id)
    return PaddedRows(input_ids, attention_mask.long(), loss_mask, token_logps)


def generation_batch(generation: Generation, prompts: Sequence[str] | None, *, rows: Tensor | None = None,
                     group_size: int = 1, pad_id: int = 0, extras: dict[str, Any] | None = None) -> Batch:
    """A :class:`Batch` of generated responses (right-padded rows, response tokens in ``loss_mask``).

    ``rows`` selects which generated rows to keep (all by default); ``group_size`` is ``k`` of the
    batch layout (consecutive rows form one example). ``prompts`` are the texts of the original
    prompts, indexed by ``generation.prompt_index``.
    """
    import torch

    index = torch.arange(generation.sequences.shape[0], device=generation.sequences.device) if rows is None else rows
    input_ids, attention_mask, loss_mask, _ = right_padded(generation, index, pad_id=pad_id)
    n = input_ids.shape[0]
    if n % group_size:
        raise ValueError(f"{n} rows do not split into groups of {group_size}")
    prompt_index = generation.prompt_index[index]
    prompt_texts = None
    if prompts is not None:
        prompt_texts = [prompts[int(i)] for i in prompt_index[::group_size]]
    return Batch(input_ids=input_ids, attention_mask=attention_mask, loss_mask=loss_mask, group_size=group_size,
                 valid=torch.ones((n // group_size, group_size), dtype=torch.bool, device=input_ids.device),
                 prompts=prompt_texts, extras=dict(extras or {}))


def take_rows(batch: Batch, index: Tensor) -> Batch:
    """The examples ``index`` of a ``group_size = 1`` batch (tensors in ``extras`` included).

    Tensors whose first dimension is the number of rows are indexed; everything else is kept.
    """
    from torch import Tensor

    if batch.group_size != 1:
        raise ValueError("take_rows needs a batch with one response per example")
    n = batch.input_ids.shape[0]
    positions = index.tolist()

    def pick(value: Any) -> Any:
        if isinstance(value, Tensor) and value.ndim and value.shape[0] == n:
            return value[index.to(value.device)]
        if isinstance(value, list) and len(value) == n:
            return [value[i] for i in positions]
        if isinstance(value, dict):
            return {key: pick(item) for key, item in value.items()}
        return value

    fields = {name: pick(getattr(batch, name)) for name in batch.__dataclass_fields__ if name != "group_size"}
    # Widths shrink to the longest kept row, so minibatches do not pay for padding of others.
    width = max(1, int(fields["attention_mask"].sum(-1).max())) if len(positions) else 1
    for name in ("input_ids", "attention_mask", "loss_mask"):
        fields[name] = fields[name][:, :width]
    if fields["reference_token_logps"] is not None:
        fields["reference_token_logps"] = fields["reference_token_logps"][:, :width]
    for name, value in list(fields["extras"].items()):
        if isinstance(value, Tensor) and value.ndim == 2 and value.shape[1] == batch.input_ids.shape[1]:
            fields["extras"][name] = value[:, :width]
    return Batch(group_size=1, **fields)


def select_best(scores: Tensor, min_score: float | None = None) -> tuple[Tensor, Tensor]:
    """The best sample of each prompt.

    Args:
        scores: ``[B, n]`` rewards of ``n`` samples per prompt.
        min_score: keep a prompt only when its best reward is at least this (None: keep all).
    Returns:
        ``index`` ``[B]`` of the best sample (the first one on ties) and ``keep`` ``[B]`` bool.
    """
    import torch

    best, index = scores.max(dim=1)
    keep = torch.ones_like(best, dtype=torch.bool) if min_score is None else best >= min_score
    return index, keep
