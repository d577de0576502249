"""The decoding loop's key/value cache: transformers' ``DynamicCache`` without a copy per token.

``DynamicCache`` appends each step's keys and values with ``torch.cat``, which copies the whole
cache of every layer on every decoding step: for SmolLM2 at 8 rows and 100 cached positions,
37 MB per step, a tenth of a step's time on CPU, growing with the length. :class:`RoomyLayer`
keeps each layer's keys and values in a buffer with room for the positions still to come,
writes a step's new keys into it in place, and hands attention views of the filled part: the
same numbers in the same shapes, so attention computes the same results bit for bit (the tests
compare every step's logits with ``DynamicCache``'s). A buffer that fills up grows by doubling.

:func:`roomy_cache` builds a ``DynamicCache`` for a model whose full-attention layers are
``RoomyLayer``\\ s with room for ``length`` positions; other layer kinds (sliding windows, linear
attention) keep transformers' own classes.
"""
from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class RoomyLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of buffers with room to grow (see the module docstring)."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = max(int(room), 1)
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self._keys is None:
            self._keys = self._buffer(key_states, max(self.room, new))
            self._values = self._buffer(value_states, max(self.room, new))
        elif self.length + new > self._keys.shape[-2]:
            size = max(2 * self._keys.shape[-2], self.length + new)
            self._keys = self._grown(self._keys, size)
            self._values = self._grown(self._values, size)
        self._keys[..., self.length:self.length + new, :] = key_states
        self._values[..., self.length:self.length + new, :] = value_states
        self.length += new
        self._expose()
        return self.keys, self.values

    @staticmethod
    def _buffer(like: torch.Tensor, size: int) -> torch.Tensor:
        return like.new_empty((*like.shape[:-2], size, like.shape[-1]))

    def _grown(self, buffer: torch.Tensor, size: int) -> torch.Tensor:
        grown = self._buffer(buffer, size)
        grown[..., :self.length, :] = buffer[..., :self.length, :]
        return grown

    def _expose(self) -> None:
        self.keys = self._keys[..., :self.length, :]
        self.values = self._values[..., :self.length, :]

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.length:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length:
            self._keys = self._keys[indices, ...]
            self._values = self._values[indices, ...]
            self._expose()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx.to(self._keys.device) if self._keys is not None else beam_idx)

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of tokens to remove, not {tokens_to_remove}")
        if tokens_to_remove and self.length:
            self.length = max(self.length + tokens_to_remove, 0)
            self._expose()

    def reset(self) -> None:
        self.length = 0
        self._keys = self._values = None
        super().reset()


def roomy_cache(config: Any, length: int) -> DynamicCache:
    """A ``DynamicCache`` for ``config`` whose full-attention layers have room for ``length`` positions."""
    cache = DynamicCache(config=config)
    cache.layers = [RoomyLayer(length) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
