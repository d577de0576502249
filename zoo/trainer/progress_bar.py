"""The training progress bar: rich on a terminal, plain lines (:mod:`zoo.progress`) in a log file.

Lightning's rich bar draws nothing useful when standard output is a file, and it labels a run
bounded by ``train.max_steps`` "Epoch 0/-2", and a 3-epoch run "Epoch 0/2" (the index of the
last epoch); :class:`StepProgressBar` counts epochs from 1 (``Epoch 1/3``) and names a step limit.
"""
from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

from zoo.progress import Progress


def _bounded_by_epochs(trainer: Any) -> bool:
    return trainer.max_epochs is not None and trainer.max_epochs >= 1


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, described as ``Epoch E/N`` (E from 1, N epochs in all) or, under
    ``train.max_steps``, ``Epoch E (step limit S)``."""

    def _get_train_description(self, current_epoch: int) -> str:
        if _bounded_by_epochs(self.trainer):
            text = f"Epoch {current_epoch + 1}/{self.trainer.max_epochs}"
        else:
            text = f"Epoch {current_epoch + 1} (step limit {self.trainer.max_steps})"
        if len(self.validation_description) > len(text):
            text = f"{text:{len(self.validation_description)}}"  # keeps the bars from shifting
        return text


class PlainProgressBar(ProgressBar):
    """One line every few seconds with the optimizer step, the rate, the time left and the loss."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._progress: Progress | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        total = trainer.estimated_stepping_batches
        total = int(total) if total not in (None, float("inf")) else None
        self._progress = Progress("training", total, "steps").__enter__()
        self._progress.advance(trainer.global_step)  # a resumed run starts where it stopped

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is None:
            return
        loss = trainer.callback_metrics.get("train/loss")
        self._progress.description = "training" if loss is None else f"training (loss {float(loss):.4f})"
        self._progress.advance(trainer.global_step - self._progress.count)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._progress is not None:
            self._progress.description = "training"
            self._progress.__exit__(None, None, None)
            self._progress = None

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._progress is not None:
            self._progress.__exit__(type(exception), exception, None)
            self._progress = None


def training_progress_bar() -> ProgressBar:
    """The rich bar on a terminal, plain lines otherwise."""
    if sys.stdout.isatty():
        return StepProgressBar(leave=True)
    return PlainProgressBar()
