"""Continuing a run: which checkpoint, what may change, and the state Lightning does not keep.

Lightning's checkpoint restores the weights, optimizer, LR scheduler and loop counters.
:class:`TrainingPosition` adds where the training data stood (epoch, batches done) and the RNG
states, so a resumed run trains on exactly the batches the uninterrupted run would have.
:func:`plan_resume` picks the checkpoint and refuses a config that would compute something else.
"""
from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml

from zoo.checkpointing import CHECKPOINT_DIR, LAST, load_checkpoint, remove_stale_temporaries, step_of
from zoo.errors import ConfigError, ZooError

log = logging.getLogger(__name__)


# ----- data position and RNG ----------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """The global RNG states as tensors and plain values (``weights_only``-loadable)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TrainingPosition(L.Callback):
    """Saves, in every checkpoint, the data position and the RNG states; restores them on resume.

    The position is ``(epoch, batches of it already trained on)``; a checkpoint written after an
    epoch's last batch records the start of the next epoch. The RNG states are put back just
    before the first resumed batch, so that whatever ran in between (data set-up, loader start)
    does not shift the stream the training step sees.
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.batches_done = 0
        self._rng_to_restore: Mapping[str, Any] | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.epoch, self.batches_done = trainer.current_epoch, batch_idx + 1
        if self.batches_done >= trainer.num_training_batches:
            self.epoch, self.batches_done = trainer.current_epoch + 1, 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._rng_to_restore is not None:
            restore_rng(self._rng_to_restore)
            self._rng_to_restore = None

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches_done": self.batches_done, "rng": capture_rng()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch, self.batches_done = state_dict["epoch"], state_dict["batches_done"]
        self._rng_to_restore = state_dict.get("rng")


# ----- where to resume ----------------------------------------------------------------------------


@dataclass
class ResumePoint:
    path: Path
    global_step: int
    epoch: int
    #: (epoch, batches done in it), or None for a checkpoint without a :class:`TrainingPosition`.
    position: tuple[int, int] | None


def read_resume_point(path: Path) -> ResumePoint:
    checkpoint = load_checkpoint(path, mmap=True)
    state = checkpoint.get("callbacks", {}).get(TrainingPosition.__qualname__)
    position = (int(state["epoch"]), int(state["batches_done"])) if state else None
    return ResumePoint(path, int(checkpoint.get("global_step", 0)), int(checkpoint.get("epoch", 0)), position)


def find_resume_point(output_dir: str | Path) -> ResumePoint | None:
    """The newest readable checkpoint of a run directory, or None if it has none.

    ``last.ckpt`` is tried first, then the ``step-N.ckpt`` files from the highest step down; an
    unreadable one is reported and passed over. Leftover temporary files are removed.
    """
    directory = Path(output_dir) / CHECKPOINT_DIR
    remove_stale_temporaries(directory)
    if not directory.is_dir():
        return None
    candidates = sorted(directory.glob("*.ckpt"), key=lambda p: (p.name == LAST, step_of(p)), reverse=True)
    failures = []
    for path in candidates:
        try:
            return read_resume_point(path)
        except ZooError as exc:
            failures.append(str(exc))
            log.warning("%s; trying an older checkpoint", exc)
    if failures:
        raise ConfigError(f"no readable checkpoint in {str(directory)!r}: {'; '.join(failures)}. Pass --overwrite "
                          f"to start the run again from scratch.")
    return None


# ----- the run directory across sessions ----------------------------------------------------------

#: Keys that may change between a run and its resumption: they do not change what is computed.
RESUMABLE_CHANGES = frozenset({
    "resume", "train.max_steps", "train.max_epochs", "train.progress_bar", "train.log_every_n_steps",
    "train.checkpoint_every_n_steps", "train.keep_last", "train.val_check_interval", "train.max_nonfinite_steps",
    "train.eval_batch_size", "train.accelerator", "train.devices", "data.num_workers",
    "train.loggers", "train.tracking_project", "train.log_completions_every_n_steps",
    # A moved or copied run directory resumes: its checkpoints and data are compared by content.
    "output_dir",
})


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def changed_keys(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two config mappings."""
    a, b = _flatten(saved), _flatten(current)
    return sorted(key for key in set(a) | set(b) if a.get(key) != b.get(key))


def plan_resume(output_dir: Path, config: dict[str, Any]) -> ResumePoint | None:
    """The checkpoint to continue from, after checking that the run can be continued as configured.

    Returns None when there is nothing to continue (a new or empty directory, or a run stopped
    before its first checkpoint): the run then starts from the beginning. Raises a ConfigError
    when the directory holds a finished run without checkpoints, or when ``config`` differs from
    the run's ``config.yaml`` in a key that changes what is computed.
    """
    point = find_resume_point(output_dir)
    if point is None:
        if (output_dir / "model").exists() or read_summary(output_dir).get("status") == "finished":
            raise ConfigError(f"output_dir {str(output_dir)!r} holds a finished run without checkpoints, so there is "
                              f"nothing to resume; pass --overwrite to train it again or choose another output_dir.")
        if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / "config.yaml").exists():
            raise ConfigError(f"output_dir {str(output_dir)!r} is not empty and holds no run to resume; pass "
                              f"--overwrite to write into it or choose another output_dir.")
        return None
    saved_path = output_dir / "config.yaml"
    if saved_path.exists():
        try:
            saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {str(saved_path)!r} to check the resumed config ({exc})") from None
        current = yaml.safe_load(yaml.safe_dump(config))  # the same plain form as the saved file
        changed = [key for key in changed_keys(saved, current) if key not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(
                f"cannot resume {str(output_dir)!r} with a different config: {', '.join(changed)} "
                f"differ from its config.yaml. Only {', '.join(sorted(RESUMABLE_CHANGES))} may change on resume; "
                f"use another output_dir (or --overwrite) to start a new run.")
    for name, what in (("config.yaml", "config"), ("metrics.json", "data")):
        if not (output_dir / name).exists():
            raise ConfigError(f"cannot resume {str(output_dir)!r}: its {name} is missing, so the resumed run's "
                              f"{what} cannot be checked against the one it started with. Restore {name}, or "
                              f"start a new run with --overwrite or another output_dir.")
    max_steps = config.get("train", {}).get("max_steps", -1)
    if max_steps is not None and 0 <= max_steps < point.global_step:
        raise ConfigError(f"cannot resume {str(output_dir)!r} with train.max_steps = {max_steps}: its checkpoint "
                          f"({point.path.name}) is at step {point.global_step} already, so nothing would be trained. "
                          f"Set train.max_steps above {point.global_step} to continue it.")
    return point


def log_version(output_dir: Path) -> str:
    """The CSV log folder of this session: ``logs/`` first, then ``logs/resume-N/`` so none is overwritten."""
    logs = output_dir / "logs"
    if not (logs / "metrics.csv").exists():
        return ""
    n = 1
    while (logs / f"resume-{n}").exists():
        n += 1
    return f"resume-{n}"


def read_summary(output_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json`` so far (empty if there is none or it is unreadable)."""
    try:
        summary = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}
