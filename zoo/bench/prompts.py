"""Helpers for tasks built on real text: content keys, content-disjoint splits, chat rendering.

A held-out prompt must be new to the policy in *content*, not only as a string: the same review
with other spacing or capitals, or the same question under another instruction, is the same
item. Tasks therefore split by a :func:`content_key` (lower case, letters and digits only) and
order items by a hash of that key and a seed (:func:`split_order`), so the split is fixed by the
data and the seed alone, not by the order the source lists its rows in.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from zoo.errors import ConfigError

T = TypeVar("T")
_NOT_ALNUM = re.compile(r"[\W_]+")


def content_key(text: str) -> str:
    """``text`` in lower case with every run of non-alphanumeric characters made one space."""
    return _NOT_ALNUM.sub(" ", text.lower()).strip()


def split_order(items: Iterable[T], key: Callable[[T], str], seed: int) -> list[T]:
    """``items`` with duplicate content keys dropped (the first kept), ordered by a hash of key and seed."""
    unique: dict[str, T] = {}
    for item in items:
        unique.setdefault(key(item), item)
    return [unique[k] for k in sorted(unique, key=lambda k: hashlib.sha256(f"{seed}\0{k}".encode()).hexdigest())]


def chat_renderer(template: str | None) -> Callable[[str], str] | None:
    """A function rendering one user message with the chat template of the model ``template``
    names (as ``model.name`` takes it), ending with the assistant header; None for ``template`` None."""
    if template is None:
        return None
    from zoo.config import ModelConfig
    from zoo.models import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig(name=template), key="task.args.template")
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"task.args.template = {template!r}: its tokenizer has no chat template; "
                          f"set task.args.template: null for plain text")

    def render(message: str) -> str:
        return tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                             add_generation_prompt=True)

    return render
