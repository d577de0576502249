"""Normalising rows in the TRL column conventions to one :class:`Example` type.

Accepted columns, by data shape:

* ``sft``: ``prompt`` + ``completion`` (strings or message lists), ``text``, or ``messages``
  (a chat whose last message is the assistant's).
* ``pairwise``: ``prompt`` + ``chosen`` + ``rejected`` (strings or message lists), or the
  Anthropic HH style: ``chosen`` and ``rejected`` hold whole dialogues and the prompt is their
  shared prefix up to the last ``\\n\\nAssistant:``.
* ``ranked``: ``prompt`` + ``responses`` (k ≥ 2) + ``scores`` (k numbers); pairwise rows are
  accepted as k = 2 with scores (1, 0).
* ``unpaired``: ``prompt`` + ``completion`` (strings or message lists) + ``label`` (true for a
  desirable completion, false for an undesirable one; 1 and 0, and those words in a CSV file, are
  read as true and false), TRL's unpaired preference format; pairwise rows are accepted as a
  desirable chosen and an undesirable rejected completion (one example with two responses scored
  (1, 0), split in two by :mod:`zoo.data.unpaired` once the rows are read).
* ``prompt``: ``prompt`` (string or messages), or any pairwise or ``messages`` row, whose prompt is used.

A response given as a message list must be a single assistant message: a longer exchange
(assistant, user, assistant) would train the user's turn as response text, so it is refused and
the earlier turns belong in the prompt. With ``template_strings`` (``data.chat_template: on``) a
string prompt is rendered as one user turn of the tokenizer's chat template.

Every problem raises :class:`zoo.errors.DataError` naming the source, the row and the field.
Columns other than the ones a shape reads (ids, metadata, a ``source`` column...) are ignored, so
data sets with extra columns load unchanged; a misspelt column therefore shows up as the missing
field it was meant to be.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from zoo.data.truncation import RenderChat
from zoo.errors import DataError

HH_ASSISTANT = "\n\nAssistant:"


class ChatPrompt(str):
    """A prompt rendered from chat messages, carrying them.

    It is the rendered text to every reader (reward functions, logs, JSON), and gives whoever fits
    it to a token budget (a sampler, a reward model: :mod:`zoo.data.truncation`) the messages, so a
    long chat prompt is cut in whole turns, as training cuts it, not through its template.
    :class:`Example` and the tokenised example hold their prompt as one whenever they know its
    messages, so ``batch.prompts`` and the prompts a suite reads carry them.
    """

    messages: list[dict[str, str]]

    def __new__(cls, text: str, messages: list[dict[str, str]]) -> "ChatPrompt":
        prompt = super().__new__(cls, text)
        prompt.messages = messages
        return prompt

    def __reduce__(self):  # pickled (data loader workers, deep copies) with its messages
        return ChatPrompt, (str(self), self.messages)

    @staticmethod
    def of(text: str, messages: list[dict[str, str]] | None) -> str:
        """``text`` as a ChatPrompt of ``messages``, or as a plain string when there are none."""
        if messages is None:
            return str(text) if isinstance(text, ChatPrompt) else text
        return text if isinstance(text, ChatPrompt) and text.messages is messages else ChatPrompt(text, messages)


def prompt_messages(prompt: str) -> list[dict[str, str]] | None:
    """The messages a prompt was rendered from (a :class:`ChatPrompt`'s), else None."""
    return prompt.messages if isinstance(prompt, ChatPrompt) else None


@dataclass
class Example:
    """One normalised example: a prompt and its responses (none for prompt-only data)."""

    prompt: str
    responses: list[str]
    scores: list[float] | None
    row: int
    source: str
    #: The row field each response came from (``chosen``, ``responses[2]``...), for error messages.
    fields: list[str] | None = None
    #: The messages ``prompt`` was rendered from with the chat template (None: a plain string),
    #: so that truncation can drop whole turns and keep the template's structure.
    prompt_messages: list[dict[str, str]] | None = None
    #: A non-empty string prompt used as it is, without the chat template.
    untemplated: bool = False

    def __post_init__(self) -> None:
        self.prompt = ChatPrompt.of(self.prompt, self.prompt_messages)

    def field_of(self, index: int) -> str:
        return self.fields[index] if self.fields else f"responses[{index}]"


class _Row:
    """A row plus where it came from, for error messages."""

    def __init__(self, row: dict[str, Any], row_no: int, source: str, render_chat: RenderChat | None,
                 template_strings: bool = False):
        self.row, self.row_no, self.source, self.render_chat = row, row_no, source, render_chat
        self.template_strings = template_strings
        self.prompt_messages: list[dict[str, str]] | None = None
        self.untemplated = False

    def error(self, field: str | None, message: str) -> DataError:
        return DataError(message, source=self.source, row=self.row_no, field=field)

    def has(self, field: str) -> bool:
        return field in self.row and self.row[field] is not None

    def text(self, field: str) -> str:
        if not self.has(field):
            raise self.error(field, "missing field")
        value = self.row[field]
        if not isinstance(value, str):
            raise self.error(field, f"expected a string, got {type(value).__name__}")
        if not value.strip():
            raise self.error(field, "empty or whitespace-only string")
        _require_unicode(self, field, value)
        return value

    def messages(self, field: str) -> list[dict[str, str]]:
        value = self.row[field]
        if not isinstance(value, list) or not value:
            raise self.error(field, "expected a non-empty list of messages")
        for i, message in enumerate(value):
            if (not isinstance(message, dict) or not isinstance(message.get("role"), str)
                    or not isinstance(message.get("content"), str)):
                raise self.error(f"{field}[{i}]", "expected a message {\"role\": str, \"content\": str}")
            if not message["content"].strip():
                raise self.error(f"{field}[{i}].content", "empty or whitespace-only string")
            _require_unicode(self, f"{field}[{i}].content", message["content"])
        return value

    def render(self, messages: list[dict[str, str]], field: str, generation_prompt: bool) -> str:
        if self.render_chat is None:
            raise self.error(field, "message lists need a tokenizer with a chat template")
        if generation_prompt:  # the prompt: kept so that truncation can work in whole turns
            self.prompt_messages = [dict(m) for m in messages]
        return self.render_chat(messages, generation_prompt)

    def prompt_or_chat(self, field: str) -> str:
        """A prompt column that may be a string or a list of messages."""
        if isinstance(self.row.get(field), list):
            return self.render(self.messages(field), field, True)
        text = self.text(field)
        if self.template_strings:
            return self.render([{"role": "user", "content": text}], field, True)
        self.untemplated = True
        return text

    def response(self, field: str) -> str:
        """A response column: a string, or one assistant message."""
        if isinstance(self.row.get(field), list):
            messages = self.messages(field)
            if len(messages) != 1 or messages[0]["role"] != "assistant":
                roles = ", ".join(m["role"] for m in messages)
                raise self.error(field, f"a response must be one assistant message, got {len(messages)} ({roles}); "
                                        f"a multi-turn exchange would train the other turns as response text: "
                                        f"put the earlier turns in the prompt")
            return messages[0]["content"]
        return self.text(field)


def _split_hh(r: _Row) -> tuple[str, str, str]:
    chosen, rejected = r.text("chosen"), r.text("rejected")
    cut = chosen.rfind(HH_ASSISTANT)
    if cut < 0:
        raise r.error("chosen", f"no prompt column and no {HH_ASSISTANT!r} turn to split the dialogue at")
    cut += len(HH_ASSISTANT)
    prompt = chosen[:cut]
    if not rejected.startswith(prompt):
        raise r.error("rejected", "does not share the chosen dialogue's prompt (the text up to the last "
                                  "'\\n\\nAssistant:')")
    prompt = _hh_prompt(r, prompt)
    if r.template_strings:  # the template puts the reply on its own line: no leading space
        return prompt, chosen[cut:].lstrip(), rejected[cut:].lstrip()
    return prompt, chosen[cut:], rejected[cut:]


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def _hh_prompt(r: _Row, prompt: str) -> str:
    """An HH dialogue prefix as it is, or (``template_strings``) rendered as chat turns."""
    if not r.template_strings:
        r.untemplated = True
        return prompt
    parts = _HH_TURN.split(prompt)  # [before, role, text, role, text, ...]
    messages = [{"role": "user" if role == "Human" else "assistant", "content": text.strip()}
                for role, text in zip(parts[1::2], parts[2::2]) if text.strip()]
    if parts[0].strip():
        messages.insert(0, {"role": "user", "content": parts[0].strip()})
    if not messages:
        raise r.error("chosen", "no turn before the last '\\n\\nAssistant:' to use as the prompt")
    return r.render(messages, "chosen", True)


def _split_conversations(r: _Row) -> tuple[str, str, str]:
    chosen, rejected = r.messages("chosen"), r.messages("rejected")
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise r.error("chosen", "the last message of chosen and rejected must be the assistant's")
    prefix = chosen[:-1]
    if rejected[:-1] != prefix:
        raise r.error("rejected", "chosen and rejected conversations must differ only in the last message")
    return r.render(prefix, "chosen", True), chosen[-1]["content"], rejected[-1]["content"]


def _pair(r: _Row) -> tuple[str, str, str]:
    if r.has("prompt"):
        prompt, chosen, rejected = r.prompt_or_chat("prompt"), r.response("chosen"), r.response("rejected")
    elif isinstance(r.row.get("chosen"), list):
        prompt, chosen, rejected = _split_conversations(r)
    elif r.has("chosen") or r.has("rejected"):
        prompt, chosen, rejected = _split_hh(r)
    else:
        raise r.error("prompt", "missing fields: pairwise rows need prompt, chosen and rejected")
    if not chosen.strip():
        raise r.error("chosen", "empty response after the prompt")
    if not rejected.strip():
        raise r.error("rejected", "empty response after the prompt")
    if chosen == rejected:
        raise r.error("rejected", "identical to chosen: the pair carries no preference")
    return prompt, chosen, rejected


def _sft(r: _Row) -> tuple[str, str]:
    if r.has("completion"):
        prompt = r.prompt_or_chat("prompt") if r.has("prompt") else ""
        return prompt, r.response("completion")
    if r.has("text"):
        return "", r.text("text")
    if r.has("messages"):
        messages = r.messages("messages")
        if messages[-1]["role"] != "assistant":
            raise r.error("messages", "the last message must be the assistant's")
        return r.render(messages[:-1], "messages", True), messages[-1]["content"]
    raise r.error("completion", "missing fields: SFT rows need prompt + completion, text, or messages")


def _ranked(r: _Row) -> tuple[str, list[str], list[float]]:
    if not r.has("responses"):
        if r.has("chosen"):
            prompt, chosen, rejected = _pair(r)
            return prompt, [chosen, rejected], [1.0, 0.0]
        raise r.error("responses", "missing field: ranked rows need prompt, responses and scores")
    prompt = r.prompt_or_chat("prompt")
    responses, scores = r.row["responses"], r.row.get("scores")
    if not isinstance(responses, list) or len(responses) < 2:
        raise r.error("responses", "expected a list of at least 2 responses")
    if not isinstance(scores, list):
        raise r.error("scores", "missing or not a list: ranked rows need one score per response")
    if len(scores) != len(responses):
        raise r.error("scores", f"has {len(scores)} values for {len(responses)} responses")
    texts = []
    for i, response in enumerate(responses):
        if not isinstance(response, str) or not response.strip():
            raise r.error(f"responses[{i}]", "expected a non-empty string")
        _require_unicode(r, f"responses[{i}]", response)
        texts.append(response)
    values = []
    for i, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise r.error(f"scores[{i}]", f"expected a finite number, got {score!r}")
        values.append(float(score))
    return prompt, texts, values


def _unpaired(r: _Row) -> tuple[str, list[str], list[float], list[str]]:
    if not r.has("completion") and (r.has("chosen") or r.has("rejected")):
        prompt, chosen, rejected = _pair(r)
        return prompt, [chosen, rejected], [1.0, 0.0], ["chosen", "rejected"]
    if not r.has("prompt"):
        raise r.error("prompt", "missing field: unpaired rows need prompt, completion and label (or prompt, chosen "
                                "and rejected)")
    prompt, completion = r.prompt_or_chat("prompt"), r.response("completion")
    if "label" not in r.row:
        raise r.error("label", "missing field: true for a desirable completion, false for an undesirable one")
    return prompt, [completion], [_label(r)], ["completion"]


#: Spellings of a label in a file without types (CSV), lower-cased.
_LABEL_TEXT = {"true": 1.0, "1": 1.0, "false": 0.0, "0": 0.0}


def _label(r: _Row) -> float:
    label = r.row["label"]
    if isinstance(label, bool) or (isinstance(label, int) and label in (0, 1)):
        return float(label)
    if isinstance(label, str) and label.strip().lower() in _LABEL_TEXT:
        return _LABEL_TEXT[label.strip().lower()]
    raise r.error("label", f"expected true (desirable) or false (undesirable), got {label!r}")


def _prompt(r: _Row) -> str:
    """The prompt alone: the responses of a pairwise or chat row are not read, let alone checked."""
    if r.has("prompt"):
        return r.prompt_or_chat("prompt")
    for field in ("chosen", "messages"):
        if isinstance(r.row.get(field), list):
            messages = r.messages(field)
            if messages[-1]["role"] == "assistant":
                messages = messages[:-1]
            if not messages:
                raise r.error(field, "no message before the assistant's reply to use as the prompt")
            return r.render(messages, field, True)
    if r.has("chosen"):
        chosen = r.text("chosen")
        cut = chosen.rfind(HH_ASSISTANT)
        if cut < 0:
            raise r.error("chosen", f"no prompt column and no {HH_ASSISTANT!r} turn to split the dialogue at")
        return _hh_prompt(r, chosen[: cut + len(HH_ASSISTANT)])
    raise r.error("prompt", "missing field (prompt data needs a prompt column, HH-style chosen dialogues "
                            "or messages)")


def sft_target(example: Example, how: str) -> Example:
    """The SFT example of a pairwise (``how = "chosen"``) or ranked (``"best"``) example."""
    index = 0 if how == "chosen" else max(range(len(example.responses)), key=lambda i: (example.scores[i], -i))
    fields = [example.field_of(index)]
    return Example(example.prompt, [example.responses[index]], None, example.row, example.source, fields,
                   example.prompt_messages, example.untemplated)


def normalise(row: dict[str, Any], row_no: int, source: str, shape: str,
              render_chat: RenderChat | None = None, template_strings: bool = False) -> Example:
    """Turn one raw row into an :class:`Example` for the given data shape.

    ``template_strings``: render a string prompt as a user turn of the chat template (``render_chat``).
    """
    r = _Row(row, row_no, source, render_chat, template_strings and render_chat is not None)
    example = _normalise(r, shape)
    example.prompt_messages, example.untemplated = r.prompt_messages, r.untemplated and bool(example.prompt)
    example.prompt = ChatPrompt.of(example.prompt, example.prompt_messages)
    return example


def _normalise(r: _Row, shape: str) -> Example:
    row_no, source = r.row_no, r.source
    if shape == "sft":
        prompt, completion = _sft(r)
        field = next((f for f in ("completion", "text", "messages") if r.has(f)), "completion")
        return Example(prompt, [completion], None, row_no, source, [field])
    if shape == "pairwise":
        prompt, chosen, rejected = _pair(r)
        return Example(prompt, [chosen, rejected], [1.0, 0.0], row_no, source, ["chosen", "rejected"])
    if shape == "ranked":
        prompt, responses, scores = _ranked(r)
        fields = None if r.has("responses") else ["chosen", "rejected"]
        return Example(prompt, responses, scores, row_no, source, fields)
    if shape == "unpaired":
        prompt, responses, labels, fields = _unpaired(r)
        return Example(prompt, responses, labels, row_no, source, fields)
    if shape == "prompt":
        return Example(_prompt(r), [], None, row_no, source)
    raise ValueError(f"unknown data shape {shape!r}")


def _require_unicode(row: _Row, field: str, value: str) -> None:
    """A JSON escape such as ``"\\udc80"`` (a lone surrogate) is no character a tokenizer can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise row.error(field, f"holds {ascii(bad)} at character {exc.start}, a lone surrogate (not a Unicode "
                               f"character; often a JSON \\u escape of half an emoji)") from None
