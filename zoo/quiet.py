"""Keeping the libraries' chatter out of the command line's output.

What is silenced, and why each is noise rather than news:

* Lightning's start-up lines (GPU/TPU available, the litlogger tip on every run): info-level
  messages, silenced by keeping Lightning's loggers at WARNING. Lightning sets their level when
  it is imported, so it is imported first.
* transformers' ``LOAD REPORT`` table (raw terminal escape codes in a log file) when a reward
  model starts from a language model: the missing ``score`` head and the unused ``lm_head`` are
  what that load means. :class:`LoadReportSummary` turns the report into one plain line, and
  leaves any other warning alone.
* peft's use of a transformers name deprecated in v5 (a FutureWarning on every LoRA run).
* transformers' "Writing model shards" bar, drawn twice (0 % and 100 %) for a save that takes
  no time: :func:`no_transformers_bars` around saves.
* transformers' "Loading weights" bar when standard error is not a terminal: tqdm redraws it with
  carriage returns, which a log file keeps as one long line of partial updates. Loading a model
  directory takes about a second; the phases that take long report through :mod:`zoo.progress`.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")
_ROW = re.compile(r"^\s*(\S+)\s*\|\s*(MISSING|UNEXPECTED|MISMATCH\w*|CONVERSION\w*)\s*\|", re.MULTILINE)


class LoadReportSummary(logging.Filter):
    """Rewrites transformers' LOAD REPORT warning as one line naming the new and the unused weights."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        text = _ESCAPES.sub("", message)
        head = text.splitlines()[0].replace("[transformers] ", "").strip()
        statuses: dict[str, list[str]] = {}
        for key, status in _ROW.findall(text):
            statuses.setdefault(status, []).append(key)
        if set(statuses) - {"MISSING", "UNEXPECTED"}:
            return True  # mismatched or converted weights: transformers' full report says what happened
        parts = []
        if statuses.get("MISSING"):
            parts.append(f"newly initialised (not in the checkpoint): {', '.join(statuses['MISSING'])}")
        if statuses.get("UNEXPECTED"):
            parts.append(f"in the checkpoint but unused: {', '.join(statuses['UNEXPECTED'])}")
        expected = " (expected when a reward model starts from a language model)" \
            if all(k.startswith(("score.", "lm_head.")) for keys in statuses.values() for k in keys) else ""
        record.msg, record.args = f"{head.replace(' LOAD REPORT', '')}: {'; '.join(parts)}{expected}", ()
        return True


def _is_terminal(stream: object) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def quiet_libraries() -> None:
    """Silence the chatter listed in the module docstring (called once by the CLI)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    import lightning  # noqa: F401  # sets its loggers' levels on import: set ours after it
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not _is_terminal(sys.stderr):
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    report_logger = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, LoadReportSummary) for f in report_logger.filters):
        report_logger.addFilter(LoadReportSummary())


@contextmanager
def no_transformers_bars() -> Iterator[None]:
    """transformers' tqdm bars off inside the block (back on after, if they were on)."""
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()
