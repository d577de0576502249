"""Fake data and a tiny model for plugin tests: batches of every data shape, hand-built log-probs."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from zoo.algorithm import DATA_SHAPES
from zoo.batch import Batch, SequenceLogProbs
from zoo.data.collate import Collator
from zoo.data.dataset import arrange
from zoo.data.examples import normalise
from zoo.data.tokenize import ExampleTokenizer
from zoo.tiny import tiny_model, tiny_tokenizer

_PROMPTS = ["Describe the sea:", "Name a colour:", "Say hello politely:", "Review the soup:",
            "Count to three:", "Greet the crew:", "Sum up the film:", "Describe a cat:"]
_RESPONSES = [" Wide, grey and calm.", " Blue.", " Hello there, nice to meet you.", " It was rich and warm.",
              " One, two, three.", " Ahoy!", " A slow start, then a thrilling end.", " Soft and curious."]


def tiny_model_and_tokenizer(**sizes: int) -> tuple[torch.nn.Module, Any]:
    """The built-in tiny Llama-style model (seeded, random weights) and its byte-level tokenizer.

    ``sizes`` are passed to :func:`zoo.tiny.tiny_model` (``hidden_size``, ``num_hidden_layers``, ``seed``...).
    """
    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer, **sizes), tokenizer


def fake_rows(shape: str, batch_size: int = 2, k: int | None = None) -> list[dict[str, Any]]:
    """Raw rows of ``shape`` in the usual column conventions, with responses of unequal lengths.

    ``unpaired`` rows (``prompt``, ``completion``, ``label``) alternate desirable and undesirable,
    starting with desirable. ``ranked`` rows get ``k`` responses (default 3) scored so that the best one sits in a different
    slot in each row; when ``k >= 3`` and ``batch_size >= 2`` the last row has only ``k - 1``
    responses, so the batch has padding slots.
    """
    if shape not in DATA_SHAPES:
        raise ValueError(f"unknown data shape {shape!r}; expected one of {', '.join(DATA_SHAPES)}")
    fixed_k = {"sft": 1, "pairwise": 2, "unpaired": 2}
    if shape in fixed_k and k not in (None, fixed_k[shape]):
        raise ValueError(f"{shape} data has k = {fixed_k[shape]} responses per example, not {k}")
    k = k or 3
    if shape == "ranked" and not 2 <= k <= len(_RESPONSES):
        raise ValueError(f"ranked data needs 2 <= k <= {len(_RESPONSES)} responses per example, not {k}")
    rows = []
    for b in range(batch_size):
        prompt = _PROMPTS[b % len(_PROMPTS)]
        pick = [_RESPONSES[(b + j) % len(_RESPONSES)] for j in range(len(_RESPONSES))]
        if shape == "sft":
            rows.append({"prompt": prompt, "completion": pick[0]})
        elif shape == "pairwise":
            rows.append({"prompt": prompt, "chosen": pick[0], "rejected": pick[1]})
        elif shape == "unpaired":
            rows.append({"prompt": prompt, "completion": pick[0], "label": b % 2 == 0})
        elif shape == "ranked":
            n = k - 1 if (b == batch_size - 1 and batch_size >= 2 and k >= 3) else k
            rows.append({"prompt": prompt, "responses": pick[:n],
                         "scores": [float((j + b) % n) for j in range(n)]})
        else:
            rows.append({"prompt": prompt})
    return rows


def fake_batch(shape: str, tokenizer: Any, batch_size: int = 2, k: int | None = None, *,
               max_length: int = 64, max_prompt_length: int = 32, train_on_prompt: bool = False) -> Batch:
    """A :class:`zoo.Batch` of ``shape`` built from :func:`fake_rows` by the real pipeline.

    Rows go through the same normalisation, :class:`zoo.data.tokenize.ExampleTokenizer` and
    :class:`zoo.data.collate.Collator` as training data, so the layout is exactly what a loss sees.
    """
    encode = ExampleTokenizer(tokenizer, max_length, max_prompt_length)
    examples = [encode(normalise(row, i + 1, "zoo.testing", shape))
                for i, row in enumerate(fake_rows(shape, batch_size, k))]
    examples = arrange(examples, shape, max_length, "zoo.testing's fake rows")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return Collator(pad, train_on_prompt=train_on_prompt and shape == "sft")(examples)


def make_logprobs(sums: Tensor | Sequence[Sequence[float]],
                  lengths: Tensor | Sequence[Sequence[int]] | None = None) -> SequenceLogProbs:
    """Hand-built :class:`zoo.SequenceLogProbs` with the given ``[B, k]`` sequence log-probs.

    Each sequence's ``|y|`` scored tokens (``lengths``, default 1) share its sum equally, so
    ``sum``, ``mean`` and ``token_logps`` agree. Position 0 is never scored, as in the core.
    """
    sums = torch.as_tensor(sums, dtype=torch.float32)
    lengths = torch.ones_like(sums, dtype=torch.long) if lengths is None else torch.as_tensor(lengths)
    if sums.ndim != 2 or lengths.shape != sums.shape:
        raise ValueError(f"sums and lengths must both be [B, k]; got {tuple(sums.shape)} and {tuple(lengths.shape)}")
    width = int(lengths.max()) + 1
    positions = torch.arange(width)
    mask = (positions >= 1) & (positions <= lengths.reshape(-1, 1))
    return with_sums(SequenceLogProbs(token_logps=torch.zeros(mask.shape), mask=mask, sum=sums, mean=sums,
                                       lengths=lengths), sums)


def with_sums(template: SequenceLogProbs, sums: Tensor) -> SequenceLogProbs:
    """``template`` (its mask, lengths, hidden states, entropy) with its log-probs replaced by ``sums``."""
    lengths = template.lengths.clamp(min=1).float()
    per_token = (sums / lengths).reshape(-1, 1)
    detach = (lambda t: None if t is None else t.detach())
    return SequenceLogProbs(token_logps=per_token * template.mask, mask=template.mask, sum=sums.clone(),
                            mean=sums / lengths, lengths=template.lengths,
                            hidden_states=detach(template.hidden_states), entropy=detach(template.entropy))
