"""Loading a configured data set into tokenised examples, with the bad-row policy applied."""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from zoo.config import DataConfig
from zoo.data.examples import Example, normalise
from zoo.data.sources import read_rows
from zoo.data.tokenize import ExampleTokenizer, TokenizedExample, check_tokenized
from zoo.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What happened to the rows of one source."""

    source: str
    rows: int = 0
    kept: int = 0
    truncated: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.source}: {self.kept}/{self.rows} rows kept, {self.truncated} truncated"
        if self.skipped:
            text += f", {len(self.skipped)} skipped (on_bad_rows: skip); first: {self.skipped[0]}"
        return text


def chat_renderer(tokenizer: PreTrainedTokenizerBase):
    if getattr(tokenizer, "chat_template", None) is None:
        return None

    def render(messages, add_generation_prompt):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    return render


def load_examples(spec: str, split: str, shape: str, config: DataConfig,
                  tokenizer: PreTrainedTokenizerBase) -> tuple[list[TokenizedExample], LoadReport]:
    """Read, normalise and tokenise the rows of ``spec`` for ``shape``."""
    skip = config.on_bad_rows == "skip"
    try:
        raw = read_rows(spec, split=split, builtin_size=config.builtin_size, seed=config.seed, skip_bad=skip)
    except DataError as exc:
        if exc.row is None:  # the whole file is unreadable: skipping rows cannot help
            raise
        raise DataError(f"{exc} (set data.on_bad_rows: skip to drop such rows)") from None
    report = LoadReport(raw.source, rows=len(raw.rows) + len(raw.skipped), skipped=list(raw.skipped))
    render = chat_renderer(tokenizer)
    encode = ExampleTokenizer(tokenizer, config.max_length, config.max_prompt_length, config.prompt_truncation)
    out: list[TokenizedExample] = []
    for row_no, row in raw.rows:
        try:
            example: Example = normalise(row, row_no, raw.source, shape, render)
            tokenized = encode(example)
            check_tokenized(tokenized, example, config.max_length)
        except DataError as exc:
            if config.on_bad_rows == "error":
                raise DataError(f"{exc} (set data.on_bad_rows: skip to drop such rows)") from None
            report.skipped.append(str(exc))
            continue
        report.truncated += tokenized.truncated
        out.append(tokenized)
    report.kept = len(out)
    if report.skipped:
        log.warning("%s", report.summary())
    if not out:
        raise DataError(f"no usable rows ({report.rows} read, {len(report.skipped)} skipped)", source=raw.source)
    return out, report


def split_off(examples: list[TokenizedExample], fraction: float, seed: int
              ) -> tuple[list[TokenizedExample], list[TokenizedExample]]:
    """Deterministically hold out ``fraction`` of ``examples``."""
    if fraction <= 0 or len(examples) < 2:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(round(len(examples) * fraction)))
    held = set(order[:n_eval])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])
