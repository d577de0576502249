"""Experiment tracking: the Lightning loggers ``train.loggers`` selects, and the completions table.

    train:
      loggers: [csv, tensorboard, wandb, mlflow]   # any of them; default [csv]
      log_completions_every_n_steps: 10             # online algorithms: a table of samples

Every logger writes under the run directory, and none needs a network:

* ``csv``: ``logs/metrics.csv`` (what ``zoo bench`` and resuming read), Lightning's CSVLogger;
* ``tensorboard``: event files in ``logs/`` (``tensorboard --logdir runs/NAME/logs``);
* ``wandb``: Weights & Biases, files in ``logs/wandb``; ``WANDB_MODE=offline`` records without an
  account or network (``wandb sync`` uploads later); the project is ``train.tracking_project``;
* ``mlflow``: MLflow, in the ``MLFLOW_TRACKING_URI`` store, or else the file store ``logs/mlruns``
  (``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri runs/NAME/logs/mlruns``); the
  experiment is ``train.tracking_project``.

tensorboard, wandb and mlflow are optional installs (``pip install -e '.[tracking]'``); naming one
that is not installed is a config error that says what to install.

The completions table: on every N-th optimizer step of an online algorithm, the prompts, sampled
responses and their rewards of that step's rollout, as each logger shows tables (a W&B table, an
MLflow table artifact, TensorBoard text, ``logs/completions.csv`` for csv). The rollout's rewards are
recorded as the algorithm asks the reward source for them, so no sample is scored twice.
"""
from __future__ import annotations

import csv
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
#: The package each logger needs, and what to install for it.
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
COMPLETIONS_CSV = "completions.csv"
COLUMNS = ("step", "prompt", "completion", "reward")


def check_loggers_installed(names: Sequence[str]) -> None:
    """A ConfigError naming the install command for each selected logger whose package is missing."""
    missing = [name for name in names if name in PACKAGES and importlib.util.find_spec(PACKAGES[name]) is None]
    if missing:
        packages = " ".join(PACKAGES[name] for name in missing)
        raise ConfigError(f"train.loggers = {list(names)}: {', '.join(missing)} is not installed. Install it with "
                          f"`pip install {packages}` (or `pip install -e '.[tracking]'` for every logger), or remove "
                          f"it from train.loggers.")


def build_loggers(names: Sequence[str], output_dir: Path, *, version: str, project: str,
                  flush_every: int) -> list[Any]:
    """The Lightning loggers ``names`` select, each writing under ``output_dir/logs``.

    MLflow's is not among them: its client creates its store when built, and nothing may be written
    before the run starts; :func:`attach_mlflow` adds it then.
    """
    from lightning.pytorch import loggers

    check_loggers_installed(names)
    logs = output_dir / "logs"
    run_name = output_dir.resolve().name
    built: list[Any] = []
    for name in names:
        if name == "csv":
            # Flushed at every logging step, so that a crash loses no logged value.
            built.append(loggers.CSVLogger(output_dir, name="logs", version=version,
                                           flush_logs_every_n_steps=flush_every))
        elif name == "tensorboard":
            built.append(loggers.TensorBoardLogger(output_dir, name="logs", version=version or "tensorboard"))
        elif name == "wandb":
            built.append(loggers.WandbLogger(project=project, name=run_name, save_dir=str(logs)))
    return built


def attach_mlflow(trainer: Any, names: Sequence[str], output_dir: Path, *, project: str) -> None:
    """Add the MLflow logger to ``trainer`` when ``names`` select it (called once the run directory exists)."""
    if "mlflow" not in names:
        return
    from lightning.pytorch.loggers import MLFlowLogger

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        # A folder in the run directory needs no server or database; MLflow 3 asks for this
        # opt-in to its file store (a database store needs sqlalchemy, which mlflow-skinny lacks).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = (output_dir / "logs" / "mlruns").resolve().as_uri()
    logger = MLFlowLogger(experiment_name=project, run_name=output_dir.resolve().name, tracking_uri=uri)
    trainer.loggers = [*trainer.loggers, logger]


@dataclass
class RecordingReward:
    """A reward source that keeps every (prompt, response, reward) it scores, for the completions table."""

    source: Any
    rows: list[tuple[str, str, float]] = field(default_factory=list)

    def score(self, prompts: Sequence[str], responses: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        scores = self.source.score(prompts, responses, *args, **kwargs)
        values = scores.detach().float().flatten().tolist() if hasattr(scores, "detach") else list(scores)
        self.rows += [(str(p), str(r), float(s)) for p, r, s in zip(prompts, responses, values)]
        return scores

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


def log_completions(loggers: Sequence[Any], step: int, rows: Sequence[tuple[str, str, float]]) -> None:
    """Log one step's samples as a table to each logger, in the form it shows tables."""
    from lightning.pytorch import loggers as pl_loggers

    table = [[step, prompt, completion, reward] for prompt, completion, reward in rows]
    if not table:
        return
    for logger in loggers:
        if isinstance(logger, pl_loggers.CSVLogger):
            _append_csv(Path(logger.log_dir) / COMPLETIONS_CSV, table)
        elif isinstance(logger, pl_loggers.TensorBoardLogger):
            logger.experiment.add_text("completions", _markdown(table), global_step=step)
        elif isinstance(logger, pl_loggers.WandbLogger):
            logger.log_table(key="completions", columns=list(COLUMNS), data=table, step=step)
        elif isinstance(logger, pl_loggers.MLFlowLogger):
            logger.experiment.log_table(logger.run_id, {c: [row[i] for row in table] for i, c in enumerate(COLUMNS)},
                                        artifact_file=f"completions/step_{step:07d}.json")


def _append_csv(path: Path, table: list[list[Any]]) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(COLUMNS)
        writer.writerows(table)


def _markdown(table: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(v) if not isinstance(v, float) else f"{v:.4f}" for v in row) + " |"
              for row in table]
    return "\n".join(lines)
