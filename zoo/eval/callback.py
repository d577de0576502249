"""A Lightning callback that runs evaluation suites during training and logs their metrics.

    trainer = L.Trainer(callbacks=[SuiteEvalCallback(["mmlu"], every_n_steps=100, data_dir="data", limit=20)])

Every ``every_n_steps`` optimiser steps (and once at the end of training unless that step was
just evaluated) the suites run on the LightningModule's ``policy`` (the module itself when it has
none), with its ``tokenizer``, ``reference`` and ``reward`` when it has them, and each metric is
logged as ``PREFIX/SUITE/METRIC`` to every logger at the current step, and put in
``trainer.callback_metrics`` (so checkpointing and early stopping can monitor it). Suites read
their data once, at the start of training. By default only the headline metrics are logged
(MMLU's overall and per-category numbers, not its 57 subjects); ``all_metrics=True`` logs all.
Runs on global rank zero only.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from zoo.errors import ConfigError
from zoo.eval.runner import check_settings, make_suites, run_suites
from zoo.eval.suite import Suite


class SuiteEvalCallback(L.Callback):
    def __init__(self, suites: Sequence[str | Suite], *, every_n_steps: int, data_dir: str | Path | None = None,
                 limit: int | None = None, num_fewshot: int | None = None, batch_size: int = 16,
                 options: Mapping[str, Mapping[str, Any]] | None = None, at_end: bool = True,
                 all_metrics: bool = False, prefix: str = "eval"):
        if every_n_steps < 1:
            raise ConfigError(f"every_n_steps = {every_n_steps}: must be >= 1")
        self.suites = make_suites(suites, options)
        check_settings(self.suites, num_fewshot=num_fewshot, limit=limit, batch_size=batch_size)
        self.every_n_steps = every_n_steps
        self.data_dir, self.limit, self.num_fewshot, self.batch_size = data_dir, limit, num_fewshot, batch_size
        self.at_end, self.all_metrics, self.prefix = at_end, all_metrics, prefix
        self.history: list[tuple[int, dict[str, float]]] = []
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for suite in self.suites:
            if not suite.loaded:
                suite.load(self.data_dir, self.limit)
                suite.loaded = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        # With gradient accumulation several batches end on the same optimiser step.
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_end and trainer.global_step != self._last_step:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Run the suites now and log their metrics at the current step."""
        step = trainer.global_step
        self._last_step = step
        if not trainer.is_global_zero:
            return {}
        model = getattr(pl_module, "policy", pl_module)
        results = run_suites(model, getattr(pl_module, "tokenizer", None), self.suites, num_fewshot=self.num_fewshot,
                             batch_size=self.batch_size, reward=getattr(pl_module, "reward", None),
                             reference=getattr(pl_module, "reference", None))
        metrics = {}
        for suite in self.suites:
            for name, metric in results[suite.name].metrics.items():
                if self.all_metrics or suite.headline(name):
                    metrics[f"{self.prefix}/{suite.name}/{name}"] = float(metric.value)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        trainer.callback_metrics.update({key: torch.tensor(value) for key, value in metrics.items()})
        self.history.append((step, metrics))
        return metrics


def callback_from_config(evaluation: Any) -> SuiteEvalCallback | None:
    """The callback a run config's ``evaluation`` section asks for (None when it selects no suite).

    Built before any model loads, so an unknown suite or option fails the run at once.
    """
    if evaluation is None or not evaluation.suites:
        return None
    return SuiteEvalCallback(evaluation.suites, every_n_steps=evaluation.every_n_steps,
                             data_dir=evaluation.data_dir, limit=evaluation.limit,
                             num_fewshot=evaluation.num_fewshot, batch_size=evaluation.batch_size,
                             options=evaluation.options)
