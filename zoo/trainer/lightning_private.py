"""The one module that reads Lightning's private state, so that an upgrade breaks one place.

Each read is pinned by ``tests/test_lightning_private.py``: when Lightning renames what is read
here, that test fails (rather than the fallback silently taking over).
"""
from __future__ import annotations

from typing import Any


def writes_logs_now(trainer: Any) -> bool:
    """Whether the logger writes this step's on-step metrics; Lightning drops them on other steps.

    Lightning's ``_LoggerConnector.should_update_logs`` (every ``log_every_n_steps`` batches that
    stepped, and at the end). True, i.e. log every step, without a trainer or if the flag is gone.
    """
    connector = getattr(trainer, "_logger_connector", None) if trainer is not None else None
    return bool(getattr(connector, "should_update_logs", True))
