"""Training metrics reach the logger on its logging steps only, once per step, and PPO's are step means."""
from __future__ import annotations

import csv

import pytest

from zoo.config import load_config
from zoo.module import AlignmentModule


def _rows(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "logs" / "metrics.csv", encoding="utf-8") as handle:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]


@pytest.mark.parametrize("progress_bar", [False, True])
def test_metrics_are_logged_on_logging_steps_only(tiny_run, tmp_path, monkeypatch, progress_bar):
    from zoo.training_guard import train

    calls: list[str] = []
    original = AlignmentModule.log

    def counting(self, name, *args, **kwargs):
        if name.startswith("train/"):
            calls.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(AlignmentModule, "log", counting)
    raw = tiny_run("dpo", tmp_path / "run", steps=6, train={"log_every_n_steps": 3, "progress_bar": progress_bar})
    train(load_config(raw=raw))
    rows = [row for row in _rows(tmp_path / "run") if "train/loss" in row]
    assert [row["step"] for row in rows] == ["2", "5"]  # Lightning writes every third step
    metrics = sorted(name for name in rows[0] if name.startswith("train/"))
    assert len(metrics) > 3
    # every metric once per written step; the loss also on the other steps when the progress bar shows it
    assert len(calls) == 2 * len(metrics) + (4 if progress_bar else 0)


def test_ppo_logs_the_mean_over_a_steps_minibatches(tiny_run, tmp_path, monkeypatch):
    from zoo.training_guard import train

    losses: list[float] = []
    original = AlignmentModule.compute_loss

    def recording(self, batch):
        out = original(self, batch)
        if self.training:
            losses.append(out.losses.mean().item())  # .item(): no warning for a tensor that needs grad
        return out

    monkeypatch.setattr(AlignmentModule, "compute_loss", recording)
    raw = tiny_run("ppo", tmp_path / "run", steps=4,
                   algorithm_args={"max_new_tokens": 8, "ppo_epochs": 2, "num_minibatches": 2})
    train(load_config(raw=raw))
    first = next(row for row in _rows(tmp_path / "run") if "train/loss" in row)
    assert first["step"] == "0" and len(losses) == 4  # one batch: 2 epochs x 2 minibatches, 4 optimiser steps
    assert float(first["train/loss"]) == pytest.approx(sum(losses) / 4, rel=1e-5, abs=1e-7)
    assert float(first["train/loss"]) != pytest.approx(losses[-1], rel=1e-3)  # not the last minibatch's
