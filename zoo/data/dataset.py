"""Loading a configured data set into tokenised examples, with the bad-row policy applied."""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zoo.config import DataConfig
from zoo.data.examples import Example, normalise, sft_target
from zoo.data.sources import stream_rows
from zoo.data.tokenize import ExampleTokenizer, TokenizedExample, check_tokenized
from zoo.data.truncation import DroppedRow, chat_renderer
from zoo.errors import ConfigError, DataError
from zoo.progress import Progress

if TYPE_CHECKING:  # transformers is imported by whoever passes a tokenizer
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What happened to the rows of one source, and how many examples the run uses."""

    source: str
    rows: int = 0
    kept: int = 0
    truncated: int = 0
    skipped: list[str] = field(default_factory=list)
    #: ``data.max_examples`` when it stopped the reading before the end of the source.
    stopped_at: int | None = None
    #: Examples held out of these for evaluation (``data.eval_fraction``).
    held_out: int = 0
    #: Prompts shortened in whole chat turns (the template kept), out of ``truncated``.
    turns_cut: int = 0
    #: Chat prompts shortened inside one message (the template kept), out of ``truncated``.
    message_cut: int = 0
    #: Prompts that lost the start of their only message, or of their text (``keep_end``): where an
    #: instruction usually is.
    start_cut: int = 0
    #: Rows left out by ``prompt_truncation: drop``.
    dropped: int = 0
    prompt_truncation: str = "keep_end"
    #: ``data.sft_from`` when SFT examples were taken from preference rows.
    sft_from: str | None = None
    #: Unpaired data: the (desirable, undesirable) completions the training split was read as.
    labelled: tuple[int, int] | None = None

    def summary(self) -> str:
        text = f"{self.source}: {self.kept}/{self.rows} rows kept, {self.truncated} truncated"
        if self.sft_from is not None:
            side = "the chosen response" if self.sft_from == "chosen" else "the best-scored response"
            text = text.replace(" rows kept", f" rows kept (SFT on {side}, data.sft_from: {self.sft_from})", 1)
        if self.truncated:
            parts = [f"data.prompt_truncation: {self.prompt_truncation}"]
            if self.turns_cut:
                parts.append(f"{self.turns_cut} chat prompts cut in whole turns, template kept")
            if self.message_cut:
                parts.append(f"{self.message_cut} chat prompts cut inside one message, template kept")
            if self.start_cut:
                parts.append(f"{self.start_cut} prompts lost the start of their text, where an instruction usually "
                             f"is; data.prompt_truncation: drop leaves such rows out instead")
            text += f" ({'; '.join(parts)})"
        if self.dropped:
            text += f", {self.dropped} dropped (prompt longer than data.max_prompt_length; prompt_truncation: drop)"
        if self.skipped:
            text += f", {len(self.skipped)} skipped (on_bad_rows: skip); first: {self.skipped[0]}"
        if self.stopped_at is not None:
            text += f"; reading stopped after {self.rows} rows (data.max_examples = {self.stopped_at})"
        if self.held_out:
            text += (f"; {self.kept - self.held_out} train, {self.held_out} held out for evaluation "
                     f"(data.eval_fraction)")
        if self.labelled is not None:
            text += (f"; {sum(self.labelled)} labelled completions to train on ({self.labelled[0]} desirable, "
                     f"{self.labelled[1]} undesirable)")
        return text


#: The data shape a ``data.sft_from`` setting reads rows as.
PREFERENCE_SHAPE = {"chosen": "pairwise", "best": "ranked"}

_warned: set[str] = set()


def warn_untemplated(source: str, count: int, total: int) -> None:
    """Once per source: string prompts reach a model whose tokenizer has a chat template."""
    if source in _warned:
        return
    _warned.add(source)
    log.warning("%s: %d of %d prompts are plain strings used without the tokenizer's chat template "
                "(data.chat_template: auto). An instruct model expects its template: set "
                "data.chat_template: on to render each prompt as a user turn (HH dialogues as their turns), "
                "or off to keep the strings and silence this warning.", source, count, total)


def load_examples(spec: str, split: str, shape: str, config: DataConfig,
                  tokenizer: PreTrainedTokenizerBase, *, limit: int | None = None,
                  bad_rows_key: str = "data.on_bad_rows") -> tuple[list[TokenizedExample], LoadReport]:
    """Read, normalise and tokenise the rows of ``spec`` for ``shape``.

    ``limit``: stop once this many usable examples are kept; the rest of the source is not read.
    ``bad_rows_key``: the config key an error message suggests for skipping bad rows.
    """
    skip = config.on_bad_rows == "skip"
    hint = f" (set {bad_rows_key}: skip to drop such rows)"
    stream = stream_rows(spec, split=split, builtin_size=config.builtin_size, seed=config.seed, limit=limit)
    report = LoadReport(stream.source, prompt_truncation=config.prompt_truncation)
    render = chat_renderer(tokenizer)
    template_strings = config.chat_template == "on"
    if template_strings and render is None:
        raise ConfigError("data.chat_template = 'on', but the tokenizer has no chat template; "
                          "use 'off' (or 'auto') for this model")
    encode = ExampleTokenizer(tokenizer, config.max_length, config.max_prompt_length, config.prompt_truncation,
                              render_chat=render)
    untemplated = 0
    sft_from = config.sft_from if shape == "sft" else None
    report.sft_from = sft_from
    out: list[TokenizedExample] = []
    total = stream.total if limit is None else min(limit, stream.total or limit)
    rows = iter(stream)
    with Progress(f"reading {stream.source}", total, "examples" if limit is not None else "rows") as progress:
        while limit is None or len(out) < limit:
            try:
                item = next(rows, None)
            except DataError as exc:
                if exc.row is None:  # the whole file is unreadable: skipping rows cannot help
                    raise
                raise DataError(f"{exc}{hint}") from None
            if item is None:
                break
            row_no, row = item
            report.rows += 1
            try:
                if isinstance(row, DataError):
                    raise row
                if sft_from is not None:  # SFT on the chosen (or best) side of preference data
                    example = sft_target(normalise(row, row_no, stream.source, PREFERENCE_SHAPE[sft_from], render,
                                                   template_strings), sft_from)
                else:
                    example = normalise(row, row_no, stream.source, shape, render, template_strings)
                tokenized = encode(example)
                check_tokenized(tokenized, example, config.max_length)
            except DroppedRow:
                report.dropped += 1
                progress.advance(int(limit is None))
                continue
            except DataError as exc:
                if not skip:
                    raise DataError(f"{exc}{hint}") from None
                report.skipped.append(str(exc))
                progress.advance(int(limit is None))
                continue
            report.truncated += tokenized.truncated
            report.turns_cut += tokenized.prompt_cut == "turns"
            report.message_cut += tokenized.prompt_cut == "message"
            report.start_cut += tokenized.prompt_cut in ("message", "tokens") and config.prompt_truncation == "keep_end"
            untemplated += example.untemplated
            out.append(tokenized)
            progress.advance()
        if limit is not None and len(out) >= limit:
            try:
                more = next(rows, None) is not None
            except DataError:  # damage past the rows used does not matter, but there is more
                more = True
            report.stopped_at = limit if more else None
    report.kept = len(out)
    if report.skipped:
        log.warning("%s", report.summary())
    if untemplated and render is not None and config.chat_template == "auto" and not spec.startswith("builtin:"):
        warn_untemplated(stream.source, untemplated, len(out))
    if not out:
        raise DataError(f"no usable rows ({report.rows} read, {len(report.skipped)} skipped)", source=stream.source)
    return out, report


def arrange(examples: list[TokenizedExample], shape: str, max_length: int, where: str) -> list[TokenizedExample]:
    """The examples of one split as ``shape``'s batches hold them; only ``unpaired`` data changes
    (one labelled completion each, with a mismatched pair: :mod:`zoo.data.unpaired`).

    ``where`` names the split in error messages.
    """
    if shape == "unpaired":
        from zoo.data.unpaired import unpaired_examples

        return unpaired_examples(examples, max_length, where)
    return examples


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
