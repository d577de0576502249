"""Held-out pairs, texts and prompts for the preference, perplexity and generation suites.

Rows are read and normalised by :mod:`zoo.data` (the same column conventions as training data:
TRL's ``prompt``/``chosen``/``rejected``, Anthropic HH dialogues, ``prompt``/``completion``,
``text``, ``messages``), so a malformed row is a DataError naming the file, row and field. The
source is the suite's ``data`` option when set, else ``DATA_DIR/hh-rlhf/*SPLIT*.jsonl[.gz]`` with
``--data-dir``, else the Hub's ``Anthropic/hh-rlhf``.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from zoo.batch import Batch
from zoo.data.collate import Collator
from zoo.data.dataset import chat_renderer
from zoo.data.examples import Example, normalise
from zoo.data.sources import read_rows
from zoo.data.tokenize import ExampleTokenizer, TokenizedExample
from zoo.eval.files import local_file

HH_HUB = "Anthropic/hh-rlhf"


def resolve_source(data: str | None, data_dir: str | Path | None, split: str) -> str:
    """Where the held-out rows come from (see the module docstring)."""
    if data:
        return data
    path = local_file(data_dir, "hh-rlhf", f"*{split}*.jsonl*")
    return str(path) if path is not None else HH_HUB


def read_examples(spec: str, split: str, shape: str | None, limit: int | None, tokenizer=None) -> tuple[list[Example], str]:
    """The first ``limit`` rows of ``spec`` normalised to ``shape``.

    ``shape`` None picks per row: ``pairwise`` for rows with a ``chosen`` column, ``sft`` otherwise.
    """
    raw = read_rows(spec, split=split)
    render = chat_renderer(tokenizer) if tokenizer is not None else None
    examples = []
    for row_no, row in raw.rows[:limit]:
        row_shape = shape or ("pairwise" if isinstance(row, dict) and row.get("chosen") is not None else "sft")
        examples.append(normalise(row, row_no, raw.source, row_shape, render))
    return examples, raw.source


def pad_id(tokenizer) -> int:
    for token in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token is not None:
            return token
    return 0


def batches(examples: Sequence[Example], tokenizer, *, batch_size: int, max_length: int, max_prompt_length: int
            ) -> Iterator[tuple[list[TokenizedExample], Batch]]:
    """Tokenised (``[BOS] prompt response EOS``, as in training) and collated batches of examples."""
    encode = ExampleTokenizer(tokenizer, max_length, max_prompt_length)
    collate = Collator(pad_id(tokenizer))
    for start in range(0, len(examples), batch_size):
        chunk = [encode(example) for example in examples[start: start + batch_size]]
        yield chunk, collate(chunk)

