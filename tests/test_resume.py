"""Crash and resume: atomic checkpoints, resume discovery, and a resumed run equal to an uninterrupted one."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from zoo import cli
from zoo.checkpointing import (AtomicCheckpointIO, NonFiniteWeightsError, WriteError, atomic_torch_save,
                               atomic_write_text)
from zoo.config import load_config
from zoo.data.order import EpochSampler, LengthGroupedBatchSampler
from zoo.errors import ConfigError, PluginError
from zoo.resume import TrainingPosition, changed_keys, find_resume_point, log_version, plan_resume
from zoo.training_guard import train

STEPS = 16
EVERY = 3


def _config(tiny_run, output_dir: Path, **sections) -> dict:
    # 28 training rows in batches of 4: 7 batches an epoch, so the run crosses epoch boundaries.
    raw = tiny_run("dpo", output_dir, steps=STEPS, data={"builtin_size": 32, "eval_fraction": 0.125},
                   train={"checkpoint_every_n_steps": EVERY, "keep_last": 2})
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return raw


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, tiny_run):
    """SIGKILL ``zoo train`` once a checkpoint exists, resume it, and get the uninterrupted run's weights.

    Equality needs every piece of state back: weights, AdamW moments, the LR schedule position,
    the data order and position inside the epoch, and the RNG.
    """
    reference_dir, crashed_dir = tmp_path / "reference", tmp_path / "crashed"
    train(load_config(raw=_config(tiny_run, reference_dir)))

    config_path = _write(tmp_path / "crash.yaml", _config(tiny_run, crashed_dir))
    child = subprocess.Popen([sys.executable, "-m", "zoo.cli", "train", str(config_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    last = crashed_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600  # a guard against hanging, not a timing assertion
    while child.poll() is None and not last.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    assert not (crashed_dir / "model").exists(), "the run finished before it could be killed"
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < STEPS
    logged_before = (crashed_dir / "logs" / "metrics.csv").read_text()

    assert cli.main(["train", str(config_path), "--resume"]) == 0

    reference, resumed = _weights(reference_dir), _weights(crashed_dir)
    assert reference.keys() == resumed.keys()
    worst = max((reference[k] - resumed[k]).abs().max().item() for k in reference)
    assert worst <= 1e-6
    summary = json.loads((crashed_dir / "metrics.json").read_text())
    reference_summary = json.loads((reference_dir / "metrics.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == STEPS
    assert summary["resumed_from_steps"] and summary["resumed_from_steps"][0] >= killed_at
    assert summary["before"] == reference_summary["before"]  # measured by the killed session, kept
    for key, value in reference_summary["after"].items():
        assert summary["after"][key] == pytest.approx(value, abs=1e-5)
    # The killed session's logs are kept untouched; the resumed session logs beside them.
    assert (crashed_dir / "logs" / "metrics.csv").read_text() == logged_before
    resumed_rows = list(csv.DictReader((crashed_dir / "logs" / "resume-1" / "metrics.csv").open()))
    assert resumed_rows and max(int(r["step"]) for r in resumed_rows) >= STEPS - 1
    assert not list((crashed_dir / "checkpoints").glob(".*.tmp"))


def test_resume_auto_in_config_continues_a_run_and_survives_a_second_resume(tmp_path, tiny_run):
    """``resume: auto`` on a fresh directory trains; on a finished run it resumes from last.ckpt."""
    raw = _config(tiny_run, tmp_path / "run", resume="auto", train={"max_steps": 6})
    first = train(load_config(raw=raw))
    assert first.resumed_from is None
    raw["train"]["max_steps"] = 9  # extending a run is an allowed change
    second = train(load_config(raw=raw))
    assert second.resumed_from == 6
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["steps"] == 9 and summary["resumed_from_steps"] == [6]


def test_resume_refuses_a_changed_config_before_touching_anything(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    saved = {"algorithm": "dpo", "algorithm_args": {"beta": 0.1}, "train": {"max_steps": 10, "learning_rate": 0.001}}
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    (run / "metrics.json").write_text('{"status": "interrupted"}')
    atomic_torch_save({"global_step": 3, "epoch": 0, "callbacks": {}}, run / "checkpoints" / "last.ckpt")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    changed = {**saved, "algorithm_args": {"beta": 0.5}, "train": {"max_steps": 20, "learning_rate": 0.001}}
    with pytest.raises(ConfigError, match=r"algorithm_args\.beta") as error:
        plan_resume(run, changed)
    assert "train.max_steps" not in str(error.value).split("differ")[0]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert plan_resume(run, {**saved, "train": {"max_steps": 20, "learning_rate": 0.001}}).global_step == 3


def test_changed_keys_compares_nested_values():
    assert changed_keys({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": None}) == ["a.c"]
    assert changed_keys({"a": {"b": 1}}, {"a": {"b": 1, "e": 0}}) == ["a.e"]


def test_resume_of_a_finished_run_without_checkpoints_is_refused(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text("algorithm: dpo\n")
    with pytest.raises(ConfigError, match="nothing to resume"):
        plan_resume(run, {"algorithm": "dpo"})


def test_resume_into_a_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        plan_resume(tmp_path, {"algorithm": "dpo"})
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_skips_a_corrupt_last_checkpoint_and_removes_temporaries(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    position = {TrainingPosition.__qualname__: {"epoch": 1, "batches_done": 2, "rng": {}}}
    atomic_torch_save({"global_step": 6, "epoch": 1, "callbacks": position}, directory / "step-step=6.ckpt")
    atomic_torch_save({"global_step": 3, "epoch": 0, "callbacks": {}}, directory / "step-step=3.ckpt")
    (directory / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    (directory / ".last.ckpt.abc123.tmp").write_bytes(b"half a checkpoint")

    point = find_resume_point(tmp_path)
    assert point.path.name == "step-step=6.ckpt"
    assert point.global_step == 6 and point.position == (1, 2)
    assert not (directory / ".last.ckpt.abc123.tmp").exists()

    for path in directory.glob("*.ckpt"):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="no readable checkpoint"):
        find_resume_point(tmp_path)


def test_checkpoint_holding_code_is_not_loaded(tmp_path):
    """weights_only=True: a checkpoint that would unpickle arbitrary objects is refused."""

    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    torch.save({"global_step": 1, "payload": Payload()}, path)
    with pytest.raises(ConfigError, match="holds objects other than tensors and plain values"):
        find_resume_point(tmp_path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(WriteError, match=f"cannot write '{target}': disk full.*intact"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_checkpoint_io_refuses_non_finite_weights(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 1}, path)
    with pytest.raises(NonFiniteWeightsError, match="NaN or inf"):
        io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan")])}, "global_step": 2}, path)
    assert io.load_checkpoint(path)["global_step"] == 1
    assert sorted(tmp_path.iterdir()) == [path, path.with_name("last.ckpt.sha256")]  # no temporary left


def test_checkpoint_io_refuses_state_that_would_not_load_back(tmp_path):
    """An algorithm state holding a NumPy float would save fine and then refuse to load on resume."""
    path = tmp_path / "last.ckpt"
    with pytest.raises(PluginError, match=r"algorithm_state\.kl\[1\] is a numpy\.float64"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "algorithm_state": {"kl": [1.0, np.float64(2)]}},
                                             path)
    assert not path.exists()


def test_log_version_never_reuses_a_log_folder(tmp_path):
    assert log_version(tmp_path) == ""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_text("step\n")
    assert log_version(tmp_path) == "resume-1"
    (tmp_path / "logs" / "resume-1").mkdir()
    assert log_version(tmp_path) == "resume-2"


def test_epoch_order_depends_only_on_seed_and_epoch_and_resumes_mid_epoch():
    sampler = EpochSampler(10, seed=3)
    first, second = list(sampler), list(sampler)
    assert first == second and sorted(first) == list(range(10))
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(EpochSampler(10, seed=4)) != first

    resumed = EpochSampler(10, seed=3)
    resumed.resume_at(1, 4)
    sampler.set_epoch(1)
    assert list(resumed) == list(sampler)[4:]
    assert len(resumed) == 10  # Lightning counts the skipped part of the epoch as done
    assert list(resumed) == list(sampler)  # the skip applies once


def test_length_grouped_batches_resume_mid_epoch():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=3, seed=1)
    sampler.set_epoch(2)
    full = list(sampler)
    assert sorted(i for batch in full for i in batch) == list(range(11))
    resumed = LengthGroupedBatchSampler(lengths, batch_size=3, seed=1)
    resumed.resume_at(2, 1)
    assert list(resumed) == full[1:]
    assert len(resumed) == len(full) == 4
