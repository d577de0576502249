"""The throughput counter of a run: real (non-padding) tokens the training loss was computed on.

A Lightning callback, so that the LightningModule keeps no bookkeeping that training does not
need. An offline algorithm's loss is computed on the training batch itself; an online
algorithm's on the minibatches of the experience it generates, whose token count its
``training_step`` returns as ``{"tokens": N}`` (:class:`zoo.module.AlignmentModule`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L


class TokenCounter(L.Callback):
    """``tokens``: the real tokens of every batch trained on in this session (``zoo bench``'s tokens/s)."""

    def __init__(self) -> None:
        self.tokens = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        reported = outputs.get("tokens") if isinstance(outputs, Mapping) else None
        self.tokens += int(reported) if reported is not None else int(batch.attention_mask.sum())
