"""SIGTERM / SIGINT during `zoo train`: a truthful exit status, the last checkpoint kept, how to resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from zoo import cli


def _start(tmp_path: Path, tiny_run, run: Path, **train) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_run("dpo", run, steps=400, train=train)))
    child = subprocess.Popen([sys.executable, "-m", "zoo.cli", "train", str(config)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    return child, config


def _wait_for(child: subprocess.Popen, path: Path) -> None:
    deadline = time.monotonic() + 600  # a guard against hanging, not a timing assertion
    while child.poll() is None and not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, child.stderr.read()[-2000:]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signalled_run_exits_non_zero_keeps_its_checkpoint_and_says_how_to_resume(tmp_path, tiny_run, signum,
                                                                                     status):
    run = tmp_path / "run"
    child, config = _start(tmp_path, tiny_run, run, checkpoint_every_n_steps=2)
    _wait_for(child, run / "checkpoints" / "last.ckpt")
    child.send_signal(signum)
    _, err = child.communicate(timeout=600)
    assert child.returncode == status, err[-2000:]
    assert "Traceback" not in err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert f"zoo train {config} --resume" in err
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "interrupted" and summary["interrupted_by"] == signal.Signals(signum).name
    assert summary["last_checkpoint_step"] >= 2 and not (run / "model").exists()
    if signum == signal.SIGTERM:  # the kept checkpoint really continues the run
        assert cli.main(["train", str(config), f"train.max_steps={summary['last_checkpoint_step'] + 2}", "--resume"]) == 0
        assert json.loads((run / "metrics.json").read_text())["status"] == "finished"


def test_a_signalled_run_without_checkpoints_says_there_is_nothing_to_resume(tmp_path, tiny_run):
    run = tmp_path / "run"
    child, _ = _start(tmp_path, tiny_run, run)
    _wait_for(child, run / "logs" / "metrics.csv")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=600)
    assert child.returncode == 143, err[-2000:]
    assert "nothing to continue from" in err and "--resume" not in err
