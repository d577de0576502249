"""Tokenising examples with an explicit truncation policy.

Prompt and responses are tokenised separately (no BPE merge across the boundary, as in TRL) and
concatenated: ``[BOS] prompt response END``. The prompt is fitted to ``max_prompt_length`` by the
one prompt truncation policy (:mod:`zoo.data.truncation`: ``keep_end``, ``keep_start`` or ``drop``;
a chat prompt loses whole turns or the start of one message's content, never its template); then
each response is cut to ``max_length - len(prompt)`` tokens. Sampling and reward models fit prompts
through the same policy, so all three see the same prompt ids.

END, the token a response ends with, is the chat template's end-of-turn token when the template
ends an assistant turn with a special token (``<|im_end|>`` for ChatML; the template's trailing
``\n`` is the separator before a next turn, not part of the reply), else the tokenizer's EOS.
Sampling stops at the same token (:func:`response_end_id` is among the sampler's stop ids), and
evaluation scores responses through this same tokenizer, so all three agree.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.data.examples import ChatPrompt, Example
from zoo.data.truncation import DroppedRow  # noqa: F401  (re-exported: the data loader catches it from here)
from zoo.data.truncation import PromptPolicy, RenderChat, bos_prefix
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

    def __post_init__(self) -> None:
        self.prompt = ChatPrompt.of(self.prompt, self.prompt_messages)

    @property
    def id(self) -> str:
        """A stable id of the token content (the reference cache keys on it)."""
        digest = hashlib.blake2b(digest_size=12)
        digest.update(repr((self.prompt_ids, self.response_ids)).encode())
        return digest.hexdigest()

    @property
    def num_tokens(self) -> int:
        return sum(len(self.prompt_ids) + len(r) for r in self.response_ids) or len(self.prompt_ids)


#: [BOS] if the tokenizer adds it by default, else [] (:func:`zoo.data.truncation.bos_prefix`).
_bos_prefix = bos_prefix


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


class ExampleTokenizer:
    """``[BOS] prompt`` and ``response END`` ids of an example: the prompt fitted by :class:`PromptPolicy`
    (``max_prompt_length``, ``prompt_truncation``; ``setting`` names the budget's config key in
    errors), then each response cut to the room ``max_length`` leaves."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, max_prompt_length: int,
                 prompt_truncation: str = "keep_end", render_chat: RenderChat | None = None, *,
                 setting: str = "data.max_prompt_length"):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.prompt_encoder = PromptPolicy(max_prompt_length, prompt_truncation, setting).encoder(tokenizer,
                                                                                                 render_chat)
        self.bos = self.prompt_encoder.bos
        end = response_end_id(tokenizer)
        self.eos = [end] if end is not None else []

    @property
    def max_prompt_length(self) -> int:
        return self.prompt_encoder.policy.max_prompt_length

    @property
    def prompt_truncation(self) -> str:
        return self.prompt_encoder.policy.truncation

    def encode(self, text: str) -> list[int]:
        return self.prompt_encoder.encode(text)

    def __call__(self, example: Example) -> TokenizedExample:
        prompt_ids, prompt_cut = self.prompt_encoder(example.prompt, example.prompt_messages, source=example.source,
                                                     row=example.row)
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
