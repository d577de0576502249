"""Tokenising examples with an explicit truncation policy.

Prompt and responses are tokenised separately (no BPE merge across the boundary, as in TRL) and
concatenated: ``[BOS] prompt response EOS``. A prompt longer than ``max_prompt_length`` loses its
beginning (``keep_end``, the default: the last turns matter most) or its end (``keep_start``);
then each response is cut to ``max_length - len(prompt)`` tokens.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from zoo.data.examples import Example
from zoo.errors import DataError


@dataclass
class TokenizedExample:
    prompt_ids: list[int]
    response_ids: list[list[int]]
    scores: list[float] | None
    prompt: str
    row: int
    source: str
    truncated: bool = False

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


class ExampleTokenizer:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, max_prompt_length: int,
                 prompt_truncation: str = "keep_end"):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_prompt_length = max_prompt_length
        self.prompt_truncation = prompt_truncation
        self.bos = _bos_prefix(tokenizer)
        self.eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def __call__(self, example: Example) -> TokenizedExample:
        prompt_ids = self.bos + self.encode(example.prompt)
        truncated = False
        if len(prompt_ids) > self.max_prompt_length:
            truncated = True
            if self.prompt_truncation == "keep_end":
                prompt_ids = prompt_ids[len(prompt_ids) - self.max_prompt_length:]
            else:
                prompt_ids = prompt_ids[: self.max_prompt_length]
        room = self.max_length - len(prompt_ids)
        responses = []
        for response in example.responses:
            ids = self.encode(response) + self.eos
            if len(ids) > room:
                truncated = True
                ids = ids[:room]
            responses.append(ids)
        return TokenizedExample(prompt_ids, responses, example.scores, example.prompt, example.row,
                                example.source, truncated)


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
