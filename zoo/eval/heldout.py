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
from zoo.data.sources import stream_rows
from zoo.data.tokenize import ExampleTokenizer, TokenizedExample
from zoo.errors import DataError
from zoo.eval.files import local_file

HH_HUB = "Anthropic/hh-rlhf"


def resolve_source(data: str | None, data_dir: str | Path | None, split: str) -> str:
    """Where the held-out rows come from (see the module docstring)."""
    if data:
        return data
    path = local_file(data_dir, "hh-rlhf", f"*{split}*.jsonl*")
    return str(path) if path is not None else HH_HUB


class HeldOutExamples(list):
    """Normalised examples that remember their rows, to be rendered again once the tokenizer exists.

    Suites read their data before any model (so that a bad row fails first); a message-list row
    needs the model's chat template, so it is checked with a placeholder then and rendered by
    :func:`with_tokenizer` when the suite runs.
    """

    def __init__(self, examples: list[Example], rows: list[tuple[int, dict, str]], source: str, templated: bool,
                 skipped: list[str] | None = None):
        super().__init__(examples)
        self.rows, self.source, self.templated = rows, source, templated
        #: Messages of the bad rows left out (``skip_bad``).
        self.skipped = list(skipped or [])


def _placeholder_render(messages, add_generation_prompt) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + ("\nassistant:" if add_generation_prompt else "")


def read_examples(spec: str, split: str, shape: str | None, limit: int | None, tokenizer=None, *,
                  skip_bad: bool = False) -> tuple[list[Example], str]:
    """The first ``limit`` rows of ``spec`` normalised to ``shape``; ``skip_bad`` leaves bad rows out (listed
    in ``skipped``) instead of stopping at the first.

    ``shape`` None picks per row: ``pairwise`` for rows with a ``chosen`` column, ``sft`` otherwise.
    Without a tokenizer, message-list rows are checked now and rendered by :func:`with_tokenizer`.
    """
    stream = stream_rows(spec, split=split, limit=limit)
    render = chat_renderer(tokenizer) if tokenizer is not None else None
    used = []

    def placeholder(messages, add_generation_prompt):
        used.append(True)
        return _placeholder_render(messages, add_generation_prompt)

    examples, rows, skipped = [], [], []
    for row_no, row in stream:
        if limit is not None and len(examples) >= limit:
            break
        try:
            if isinstance(row, DataError):
                raise row
            row_shape = shape or ("pairwise" if row.get("chosen") is not None else "sft")
            examples.append(normalise(row, row_no, stream.source, row_shape, render or placeholder))
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
            continue
        rows.append((row_no, row, row_shape))
    if not examples and skipped:
        raise DataError(f"no usable rows ({len(skipped)} skipped; first: {skipped[0]})", source=stream.source)
    if tokenizer is None and not used:
        rows = []  # nothing to render again
    return HeldOutExamples(examples, rows, stream.source, bool(used) and tokenizer is None, skipped), stream.source


def with_tokenizer(examples: list[Example], tokenizer) -> list[Example]:
    """``examples`` with message lists rendered by the tokenizer's chat template (see :class:`HeldOutExamples`)."""
    if not isinstance(examples, HeldOutExamples) or not examples.templated:
        return examples
    render = chat_renderer(tokenizer) if tokenizer is not None else None
    if render is None:
        raise DataError("message lists need a tokenizer with a chat template, and this model's has none",
                        source=examples.source)
    return [normalise(row, row_no, examples.source, row_shape, render) for row_no, row, row_shape in examples.rows]


def pad_id(tokenizer) -> int:
    for token in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token is not None:
            return token
    return 0


def batches(examples: Sequence[Example], tokenizer, *, batch_size: int, max_length: int, max_prompt_length: int
            ) -> Iterator[tuple[list[TokenizedExample], Batch]]:
    """Tokenised (``[BOS] prompt response EOS``, as in training) and collated batches of examples."""
    encode = ExampleTokenizer(tokenizer, max_length, max_prompt_length, render_chat=chat_renderer(tokenizer))
    collate = Collator(pad_id(tokenizer))
    for start in range(0, len(examples), batch_size):
        chunk = [encode(example) for example in examples[start: start + batch_size]]
        yield chunk, collate(chunk)

