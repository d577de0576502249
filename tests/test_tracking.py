"""Experiment tracking: ``train.loggers`` picks Lightning's CSV, TensorBoard, W&B (offline) and MLflow
loggers, and online algorithms log a table of their samples every N steps. Everything offline."""
from __future__ import annotations

import csv
import importlib.util
import os

import pytest

from zoo.config import RewardConfig, load_config
from zoo.errors import ConfigError

INSTALLED = {name: importlib.util.find_spec(name) is not None for name in ("tensorboard", "wandb", "mlflow")}


def _config(tiny_run, tmp_path, algorithm="grpo", **train):
    return load_config(raw=tiny_run(algorithm, tmp_path / "run", steps=2, train=train))


@pytest.mark.parametrize("loggers, message", [
    (["csv", "tensorbord"], "'tensorbord' is not a logger; expected any of csv, tensorboard, wandb, mlflow "
                            "(did you mean 'tensorboard'?)"),
    ([], "must list at least one of csv, tensorboard, wandb, mlflow"),
    (["csv", "csv"], "names a logger twice"),
])
def test_bad_logger_lists_are_config_errors(tiny_run, tmp_path, loggers, message):
    with pytest.raises(ConfigError) as caught:
        _config(tiny_run, tmp_path, "dpo", loggers=loggers)
    assert str(caught.value).startswith("train.loggers = ") and message in str(caught.value)


def test_a_completions_table_needs_an_online_algorithm(tiny_run, tmp_path):
    from zoo.planning import plan_run

    with pytest.raises(ConfigError, match=r"algorithm 'dpo' samples no completions"):
        plan_run(_config(tiny_run, tmp_path, "dpo", log_completions_every_n_steps=1))


def test_a_logger_that_is_not_installed_says_what_to_install(monkeypatch):
    from zoo import tracking

    real = importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    with pytest.raises(ConfigError) as caught:
        tracking.check_loggers_installed(["csv", "wandb"])
    assert "wandb is not installed. Install it with `pip install wandb` (or `pip install -e '.[tracking]'`" \
        in str(caught.value)
    tracking.check_loggers_installed(["csv"])


@pytest.mark.skipif(not all(INSTALLED.values()),
                    reason=f"needs the tracking extras (pip install -e '.[tracking]'); installed: {INSTALLED}")
def test_every_logger_records_the_run_and_the_completions_table(tiny_run, tmp_path, monkeypatch):
    """GRPO, 2 steps of 4 prompts x 4 samples, a table every step: 32 rows whose rewards are the
    tiny_sentiment scores of their own (prompt, completion), recomputed here."""
    from zoo.rewards.loading import load_reward_source
    from zoo.training_guard import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = _config(tiny_run, tmp_path, loggers=["csv", "tensorboard", "wandb", "mlflow"],
                     log_completions_every_n_steps=1, tracking_project="zoo-test")
    train(config)
    logs = tmp_path / "run" / "logs"

    assert "train/loss" in (logs / "metrics.csv").read_text().splitlines()[0]
    with open(logs / "completions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 4 * 4 and {r["step"] for r in rows} == {"0", "1"}
    reward = load_reward_source(RewardConfig(function="tiny_sentiment"))
    again = reward.score([r["prompt"] for r in rows], [r["completion"] for r in rows]).tolist()
    assert [float(r["reward"]) for r in rows] == pytest.approx(again, abs=1e-6)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logs / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    assert "train/loss" in events.Tags()["scalars"] or "train/loss" in events.Tags()["tensors"]
    assert any("completions" in tag for tag in events.Tags()["tensors"])

    (run_dir,) = (logs / "wandb").glob("offline-run-*")
    tables = list((run_dir / "files" / "media" / "table").glob("completions_*.table.json"))
    assert len(tables) == 2

    from mlflow.tracking import MlflowClient

    client = MlflowClient((logs / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("zoo-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert "train/loss" in run.data.metrics and run.info.run_name == "run"
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "completions")]
    assert artifacts == ["completions/step_0000000.json", "completions/step_0000001.json"]
    assert os.environ.get("WANDB_MODE") == "offline"
