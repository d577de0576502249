"""Keeping the libraries' chatter out of the command line's output.

What is silenced, and why each is noise rather than news:

* Lightning's start-up lines (GPU/TPU available, the litlogger tip on every run): info-level
  messages, silenced by keeping Lightning's loggers at WARNING. Lightning sets their level when
  it is imported, so ours is set just after that import (:func:`after_import`): importing
  Lightning here would cost every command seconds, ``zoo --help`` included.
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

import importlib.abc
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs an action right after a top-level package's ``__init__`` has executed."""

    def __init__(self) -> None:
        self.actions: dict[str, list[Callable[[], None]]] = {}

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.actions:
            return None
        for finder in sys.meta_path:  # the spec the other finders would give, with its loader wrapped
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader, actions = spec.loader, self.actions.pop(fullname)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            for action in actions:
                action()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_HOOK = _AfterImport()


def after_import(package: str, action: Callable[[], None]) -> None:
    """Run ``action`` now if ``package`` is imported, else right after its first import."""
    if package in sys.modules:
        action()
        return
    _HOOK.actions.setdefault(package, []).append(action)
    if _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _no_transformers_bars_in_log_files() -> None:
    if not _is_terminal(sys.stderr):
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def quiet_libraries() -> None:
    """Silence the chatter listed in the module docstring (called once by the CLI).

    Imports none of the libraries it quiets: each is quieted when (and if) a command imports it.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    logging.getLogger("transformers").setLevel(logging.WARNING)
    after_import("lightning", _quiet_lightning)
    after_import("transformers", _no_transformers_bars_in_log_files)
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
