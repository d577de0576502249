"""Lightning's private state is read in one module, :mod:`zoo.trainer.lightning_private`, and each read is pinned here.

When a Lightning upgrade renames what that module reads, these tests fail, instead of its
fallback (log on every step) silently taking over.
"""
from __future__ import annotations

import re
from pathlib import Path

import lightning as L

import zoo
from zoo.trainer.lightning_private import writes_logs_now

PRIVATE_READ = re.compile(r"\b(trainer|_trainer)\._[a-z]\w*|_logger_connector")


def test_lightning_still_has_the_logging_flag_read_here():
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, log_every_n_steps=3,
                        enable_model_summary=False)
    assert isinstance(trainer._logger_connector.should_update_logs, bool)
    assert writes_logs_now(trainer) == trainer._logger_connector.should_update_logs


def test_without_a_trainer_every_step_is_logged():
    assert writes_logs_now(None) is True


def test_no_other_module_reads_lightnings_private_state():
    root = Path(zoo.__file__).parent
    readers = [f"{path.relative_to(root)}:{number}" for path in sorted(root.rglob("*.py"))
               if path.name != "lightning_private.py"
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
               if PRIVATE_READ.search(line)]
    assert readers == []
