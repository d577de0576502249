"""The Lightning Trainer of a run, built from ``train.*`` by :func:`build_trainer`, and its parts:

* :mod:`zoo.trainer.settings`: the ``train.*`` checks that run before Lightning sees them, and the
  message of a setting it refuses;
* :mod:`zoo.trainer.token_counter`: the callback that counts the tokens trained on;
* :mod:`zoo.trainer.progress_bar`: the training progress bar (rich, or plain lines in a log);
* :mod:`zoo.trainer.memory`: the callback that returns freed heap memory while a CPU run trains;
* :mod:`zoo.trainer.lightning_private`: the one place that reads Lightning's private state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from zoo.algorithm import Algorithm
from zoo.checkpointing import AtomicCheckpointIO, RunCheckpoint
from zoo.config import RunConfig
from zoo.resume import TrainingPosition
from zoo.tracking import build_loggers
from zoo.trainer.memory import ReleaseFreedMemory
from zoo.trainer.progress_bar import training_progress_bar
from zoo.trainer.settings import check_trainer_names, trainer_settings_error


def build_trainer(config: RunConfig, algorithm: Algorithm, output_dir: Path, extra_callbacks: list | None = None, *,
                  logs_version: str = "") -> L.Trainer:
    """The Trainer for ``config`` training ``algorithm``, logging to ``output_dir/logs``; a setting
    Lightning refuses is a ConfigError."""
    t = config.train
    callbacks: list = [*(extra_callbacks or []), TrainingPosition(), ReleaseFreedMemory()]
    if t.checkpoint_every_n_steps:
        # No version counter: a new last.ckpt replaces (atomically) a damaged one, never a last-v1.ckpt beside it.
        callbacks.append(RunCheckpoint(dirpath=output_dir / "checkpoints", every_n_train_steps=t.checkpoint_every_n_steps,
                                       save_top_k=t.keep_last, monitor="step", mode="max", save_last=True,
                                       filename="step-{step}", enable_version_counter=False,
                                       auto_insert_metric_name=False))
    if t.progress_bar:
        callbacks.append(training_progress_bar())
    check_trainer_names(t)
    try:
        # An online algorithm optimises manually and clips its gradients in its own loop.
        clip = None if algorithm.generates_online else t.gradient_clip_val
        return _trainer(t, config, output_dir, callbacks, t.val_check_interval, logs_version, clip)
    except (ValueError, TypeError, RuntimeError, MisconfigurationException) as exc:
        raise trainer_settings_error(t, exc) from None


def _trainer(t: Any, config: RunConfig, output_dir: Path, callbacks: list, val_check: Any,
             logs_version: str, gradient_clip_val: float | None) -> L.Trainer:
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=t.max_steps, max_epochs=t.max_epochs if t.max_steps == -1 else None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=gradient_clip_val,
        val_check_interval=val_check, check_val_every_n_epoch=None if isinstance(val_check, int) else 1,
        log_every_n_steps=t.log_every_n_steps,
        logger=build_loggers(t.loggers, output_dir, version=logs_version, project=t.tracking_project,
                             flush_every=t.log_every_n_steps),
        callbacks=callbacks, enable_checkpointing=bool(t.checkpoint_every_n_steps), plugins=[AtomicCheckpointIO()],
        enable_progress_bar=t.progress_bar, deterministic=t.deterministic, num_sanity_val_steps=0,
        default_root_dir=output_dir, enable_model_summary=False,
        # A length-grouped run shards its batches by process itself (AlignmentDataModule): Lightning
        # would otherwise try to put a DistributedSampler into the batch sampler, which it cannot.
        use_distributed_sampler=not config.data.group_by_length,
    )
