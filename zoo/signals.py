"""SIGINT and SIGTERM during a run: stop, keep the last checkpoint, exit with 130 / 143, say how to resume.

Inside :func:`stop_on_signals` either signal raises :class:`Stop` (a ``BaseException``, so that no
``except Exception`` swallows it, and not a ``KeyboardInterrupt``, which Lightning turns into
``sys.exit(1)``; Lightning's own SIGTERM handling would end ``trainer.fit`` as if the run had
finished). ``zoo train`` turns it into :class:`RunInterrupted`, whose exit status is
``128 + signal number`` as a shell reports a process ended by that signal. Checkpoints are written
atomically, so the newest one on disk is whole whenever the signal arrives.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from zoo.errors import ZooError

SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Signals that arrived inside :func:`deferred`, raised as :class:`Stop` when it ends.
_pending: list[int] = []
_depth = 0


class Stop(BaseException):
    """A run was asked to stop by a signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class RunInterrupted(ZooError):
    """A run stopped by SIGINT/SIGTERM; the CLI exits with ``exit_code`` (130, 143)."""

    def __init__(self, message: str, *, signum: int, resumable: bool):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
        self.resumable = resumable


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise :class:`Stop` on SIGINT/SIGTERM in the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if _depth:
            _pending.append(signum)
            return
        raise Stop(signum)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold back :class:`Stop` until the block ends: for writes that belong together (a checkpoint
    and its checksum file), so that a signal never leaves one without the other."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if not _depth and _pending:
        signum = _pending[0]
        _pending.clear()
        raise Stop(signum)
