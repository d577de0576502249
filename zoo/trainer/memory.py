"""The callback that hands the C heap's free pages back to the system between steps (:mod:`zoo.allocator`)."""
from __future__ import annotations

from typing import Any

import lightning as L

from zoo.allocator import release_free_memory


class ReleaseFreedMemory(L.Callback):
    """``malloc_trim(0)`` after every training step and every validation, on CPU runs: the resident
    size then follows what the step holds instead of the heap's high-water mark. A GPU run's
    tensors are not on the C heap, so it does nothing there."""

    def __init__(self) -> None:
        self.released = 0

    def _release(self, trainer: L.Trainer) -> None:
        if trainer.strategy.root_device.type == "cpu" and release_free_memory():
            self.released += 1

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._release(trainer)

    def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._release(trainer)
