"""The output of a run is free of library noise: Lightning's banners and tips, transformers' load
report tables and duplicate save bars, peft's FutureWarning, "Epoch 0/-2"."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from zoo.quiet import LoadReportSummary
from zoo.trainer.progress_bar import StepProgressBar

ROOT = Path(__file__).resolve().parents[1]

REPORT = ("\x1b[1mLlamaForSequenceClassification LOAD REPORT\x1b[0m from: runs/sft/model\n"
          "Key            | Status     | \n---------------+------------+-\n"
          "lm_head.weight | UNEXPECTED | \nscore.weight   | MISSING    | \n\nNotes:\n- UNEXPECTED:\tcan be ignored\n")


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("transformers.modeling_utils", logging.WARNING, __file__, 1, message, (), None)


def test_load_report_becomes_one_plain_line():
    record = _record(REPORT)
    assert LoadReportSummary().filter(record)
    assert record.getMessage() == (
        "LlamaForSequenceClassification from: runs/sft/model: newly initialised (not in the checkpoint): "
        "score.weight; in the checkpoint but unused: lm_head.weight (expected when a reward model starts from a "
        "language model)")
    other = _record("some other warning")
    assert LoadReportSummary().filter(other) and other.getMessage() == "some other warning"
    mismatch = _record(REPORT.replace("MISSING   ", "MISMATCH  "))
    LoadReportSummary().filter(mismatch)
    assert "LOAD REPORT" in mismatch.getMessage()  # anything unusual keeps transformers' full report


def test_progress_bar_names_a_step_limit_instead_of_epoch_minus_two():
    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=20)
    assert bar._get_train_description(0).strip() == "Epoch 1 (step limit 20)"
    bar._trainer = SimpleNamespace(max_epochs=3, max_steps=-1)
    # Lightning's epoch index 1 of a 3-epoch run is the second epoch of three (Lightning says "1/2").
    assert bar._get_train_description(1).strip() == "Epoch 2/3"


def test_a_lora_reward_run_prints_none_of_the_noise(tmp_path):
    env = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path / "cache")}
    sft = subprocess.run([sys.executable, "-m", "zoo.cli", "train", str(ROOT / "configs/tiny/sft.yaml"),
                          "train.max_steps=1", "data.builtin_size=16", f"output_dir={tmp_path / 'sft'}"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert sft.returncode == 0, sft.stderr
    reward = subprocess.run([sys.executable, "-m", "zoo.cli", "train", str(ROOT / "configs/tiny/reward.yaml"),
                             "train.max_steps=2", "data.builtin_size=16", f"model.name={tmp_path / 'sft' / 'model'}",
                             "data.train=builtin:tiny_prefs", "model.lora={r: 4}", f"output_dir={tmp_path / 'rm'}"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert reward.returncode == 0, reward.stderr
    printed = sft.stdout + sft.stderr + reward.stdout + reward.stderr
    for noise in ("litlogger", "GPU available", "LOAD REPORT", "\x1b[", "FutureWarning", "Writing model shards",
                  "Epoch 0/-2", "step=", "UNEXPECTED"):
        assert noise not in printed, noise
    assert "newly initialised (not in the checkpoint): score.weight" in printed


def test_transformers_bars_are_off_when_stderr_is_a_log_file(monkeypatch):
    """tqdm's carriage-return redraws ("Loading weights") stay out of log files, not off a terminal."""
    import io

    from transformers.utils import logging as transformers_logging

    from zoo.quiet import quiet_libraries

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    transformers_logging.enable_progress_bar()
    try:
        monkeypatch.setattr(sys, "stderr", Terminal())
        quiet_libraries()
        assert transformers_logging.is_progress_bar_enabled()
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        quiet_libraries()
        assert not transformers_logging.is_progress_bar_enabled()
    finally:
        transformers_logging.enable_progress_bar()
