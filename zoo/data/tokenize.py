"""Tokenising examples with an explicit truncation policy.

Prompt and responses are tokenised separately (no BPE merge across the boundary, as in TRL) and
concatenated: ``[BOS] prompt response END``. A prompt longer than ``max_prompt_length`` loses its
beginning (``keep_end``, the default: the last turns matter most) or its end (``keep_start``),
or its row is dropped (``drop``, as TRL does); then each response is cut to
``max_length - len(prompt)`` tokens.

A prompt rendered from messages with the chat template is never cut through the template: it
loses whole turns (the oldest first for ``keep_end``, keeping a system message; the newest first
for ``keep_start``), and only when one turn alone is too long is that turn's *content* cut, its
role header and the generation prompt kept, so every row still starts with the template's header.

END, the token a response ends with, is the chat template's end-of-turn token when the template
ends an assistant turn with a special token (``<|im_end|>`` for ChatML; the template's trailing
``\n`` is the separator before a next turn, not part of the reply), else the tokenizer's EOS.
Sampling stops at the same token (:func:`response_end_id` is among the sampler's stop ids), and
evaluation scores responses through this same tokenizer, so all three agree.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.data.examples import Example
from zoo.errors import DataError

if TYPE_CHECKING:  # transformers is imported by whoever passes a tokenizer
    from transformers import PreTrainedTokenizerBase


@dataclass
class TokenizedExample:
    prompt_ids: list[int]
    response_ids: list[list[int]]
    scores: list[float] | None
    prompt: str
    row: int
    source: str
    truncated: bool = False
    #: How the prompt was shortened: ``turns`` (whole chat turns dropped, template kept),
    #: ``message`` (the content of one chat message cut, template kept), ``tokens`` (tokens cut off
    #: one end of a plain prompt), or None.
    prompt_cut: str | None = None
    #: The chat messages the prompt was rendered from (None: a plain-text prompt).
    prompt_messages: list[dict[str, str]] | None = None

    @property
    def id(self) -> str:
        """A stable id of the token content (the reference cache keys on it)."""
        digest = hashlib.blake2b(digest_size=12)
        digest.update(repr((self.prompt_ids, self.response_ids)).encode())
        return digest.hexdigest()

    @property
    def num_tokens(self) -> int:
        return sum(len(self.prompt_ids) + len(r) for r in self.response_ids) or len(self.prompt_ids)


def _bos_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """[BOS] if the tokenizer adds it by default, else []."""
    with_special = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and len(with_special) > len(plain) and with_special[0] == bos:
        return [bos]
    return []


def response_end_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The token a response ends with: the chat template's end-of-turn special token, else EOS."""
    end = tokenizer.eos_token_id
    if getattr(tokenizer, "chat_template", None):
        marker = "Zq9xMarker"
        try:
            text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": marker}], tokenize=False)
        except Exception:  # a template with its own rules (roles, alternation): keep EOS
            text = ""
        tail = text[text.rfind(marker) + len(marker):].strip() if marker in text else ""
        ids = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
        if len(ids) == 1 and ids[0] in set(tokenizer.all_special_ids):
            end = ids[0]
    return end


class DroppedRow(DataError):
    """A row left out by ``prompt_truncation: drop`` (counted apart from malformed rows)."""


class ExampleTokenizer:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, max_prompt_length: int,
                 prompt_truncation: str = "keep_end", render_chat: Callable[..., str] | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_prompt_length = max_prompt_length
        self.prompt_truncation = prompt_truncation
        self.render_chat = render_chat
        self.bos = _bos_prefix(tokenizer)
        end = response_end_id(tokenizer)
        self.eos = [end] if end is not None else []

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _prompt_ids(self, example: Example) -> tuple[list[int], str | None]:
        prompt_ids = self.bos + self.encode(example.prompt)
        if len(prompt_ids) <= self.max_prompt_length:
            return prompt_ids, None
        if self.prompt_truncation == "drop":
            raise DroppedRow(f"prompt of {len(prompt_ids)} tokens is longer than data.max_prompt_length = "
                             f"{self.max_prompt_length} (data.prompt_truncation: drop)",
                             source=example.source, row=example.row)
        if example.prompt_messages is not None and self.render_chat is not None:
            fitted = self._fit_turns(example.prompt_messages, keep_end=self.prompt_truncation == "keep_end")
            if fitted is not None:
                return fitted
            raise DataError(f"the chat template's own text takes more than data.max_prompt_length = "
                            f"{self.max_prompt_length} tokens; raise data.max_prompt_length",
                            source=example.source, row=example.row, field="prompt")
        if self.prompt_truncation == "keep_end":
            return prompt_ids[len(prompt_ids) - self.max_prompt_length:], "tokens"
        return prompt_ids[: self.max_prompt_length], "tokens"

    def _rendered(self, messages: list[dict[str, str]]) -> list[int]:
        return self.bos + self.encode(self.render_chat(messages, True))

    def _fit_turns(self, messages: list[dict[str, str]], keep_end: bool) -> tuple[list[int], str] | None:
        """The prompt with whole turns dropped (``turns``), else one turn's content cut (``message``), to
        fit; None if impossible."""
        system = messages[:1] if messages and messages[0]["role"] == "system" else []
        turns = list(messages[len(system):])
        while len(turns) > 1:
            turns = turns[1:] if keep_end else turns[:-1]
            if keep_end:
                while len(turns) > 1 and turns[0]["role"] != "user":  # a kept exchange starts with the user
                    turns = turns[1:]
            ids = self._rendered(system + turns)
            if len(ids) <= self.max_prompt_length:
                return ids, "turns"
        if not turns:
            return None
        # One turn is left and too long: cut its content (from its start for keep_end), keep its header.
        content = self.encode(turns[0]["content"])

        def render_with(k: int) -> list[int]:
            kept = content[len(content) - k:] if keep_end else content[:k]
            text = self.tokenizer.decode(kept) if k else ""
            # A cut through a multi-byte character decodes to U+FFFD at the cut: not part of the message.
            text = text.lstrip("\ufffd") if keep_end else text.rstrip("\ufffd")
            return self._rendered(system + [{**turns[0], "content": text}])

        low, high = 0, len(content)  # the most content tokens that fit, by bisection
        if len(render_with(0)) > self.max_prompt_length:
            return None
        while low < high:
            middle = (low + high + 1) // 2
            if len(render_with(middle)) <= self.max_prompt_length:
                low = middle
            else:
                high = middle - 1
        return render_with(low), "message"

    def __call__(self, example: Example) -> TokenizedExample:
        prompt_ids, prompt_cut = self._prompt_ids(example)
        truncated = prompt_cut is not None
        room = self.max_length - len(prompt_ids)
        responses = []
        for response in example.responses:
            ids = self.encode(response) + self.eos
            if len(ids) > room:
                truncated = True
                ids = ids[:room]
            responses.append(ids)
        return TokenizedExample(prompt_ids, responses, example.scores, example.prompt, example.row,
                                example.source, truncated, prompt_cut, example.prompt_messages)


def check_tokenized(tokenized: TokenizedExample, example: Example, max_length: int) -> None:
    """Reject a training example that truncation left without a usable response.

    Raises a DataError naming the row and field when a response has no scored token left, or when
    two responses with different scores became identical token sequences (a pair that states a
    preference between the same text teaches nothing, whatever the loss).
    """
    def error(index: int, message: str) -> DataError:
        return DataError(message, source=example.source, row=example.row, field=example.field_of(index))

    prompt_length = len(tokenized.prompt_ids)
    for i, ids in enumerate(tokenized.response_ids):
        # Without a prompt the first token has nothing before it and is never scored.
        if len(ids) - (0 if prompt_length else 1) < 1:
            raise error(i, f"no response token is left after truncation to data.max_length = {max_length} "
                           f"(the prompt takes {prompt_length}); raise data.max_length")
    if tokenized.scores is None:
        return
    first_seen: dict[tuple[int, ...], int] = {}
    for i, ids in enumerate(tokenized.response_ids):
        j = first_seen.setdefault(tuple(ids), i)
        if j != i and tokenized.scores[j] != tokenized.scores[i]:
            where = f" after truncation to data.max_length = {max_length}" if tokenized.truncated else ""
            raise error(i, f"identical to {example.field_of(j)}{where} though scored differently, so the pair "
                           f"states no preference" + ("; raise data.max_length" if where else ""))
