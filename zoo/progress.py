"""Progress of the phases that can take more than a few seconds.

Reading and tokenising data, filling the reference cache, sampling, scoring, each evaluation
suite and each benchmark stage report through :class:`Progress`:

* on a terminal, a rich progress bar with the count, the rate and the time left;
* otherwise (output redirected to a file or a pipe), nothing for a phase that ends within
  ``ZOO_PROGRESS_INTERVAL`` seconds (default 5): work that short needs no report, and a log of
  ``0/1 batches`` / ``done in 0s`` pairs buries the lines that matter. A phase still running after
  the interval gets a line then (from a timer, so a phase stuck in one long step shows too), one
  every interval after with the count, the rate and the time left, and one when it ends, so that a
  log file shows where a run is and no phase looks like a hang. An interval of 0 reports at once.

On a terminal, the bar of a phase that ended within the interval is cleared when it ends.

Progress goes to standard output, next to the training progress bar; a command that prints
machine-readable output there (``--json``) sends it to standard error with :func:`to_stderr`.
``ZOO_PROGRESS=off`` silences it; in a multi-process run only rank 0 reports.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")

_use_stderr = False


def to_stderr(enabled: bool = True) -> None:
    """Send progress to standard error (for commands whose standard output is data)."""
    global _use_stderr
    _use_stderr = enabled


def _stream() -> IO[str]:
    return sys.stderr if _use_stderr else sys.stdout


def _interval() -> float:
    text = os.environ.get("ZOO_PROGRESS_INTERVAL", "5")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        from zoo.errors import ConfigError

        raise ConfigError(f"ZOO_PROGRESS_INTERVAL = {text!r}: must be a number of seconds >= 0 (e.g. "
                          f"ZOO_PROGRESS_INTERVAL=10), or unset for the default of 5.")
    return value


def check_environment() -> None:
    """Refuse a malformed progress setting when a command starts, not when its first bar does."""
    _interval()


def _rank() -> int:
    """This process's rank among the processes of a multi-process run (0 alone); set by the launchers."""
    for name in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """A counted phase: ``with Progress("reading data", total=n, unit="rows") as p: p.advance()``.

    ``total`` may be None (unknown): then the count and rate are shown without a time left.
    ``announce=False`` is for phases that repeat and are usually short (the sampling inside each
    online training step): in a log file no timer announces them, so only an advance after the
    interval writes a line.
    """

    def __init__(self, description: str, total: int | None = None, unit: str = "items", *,
                 stream: IO[str] | None = None, interval: float | None = None, announce: bool = True):
        self.description, self.total, self.unit = description, total, unit
        self.announce = announce
        self._printed = False
        self.stream = stream if stream is not None else _stream()
        self.interval = _interval() if interval is None else interval
        self.enabled = os.environ.get("ZOO_PROGRESS", "on").lower() not in ("off", "0", "false", "no") and \
            _rank() == 0  # with several processes, one reports
        self.count = 0
        self._bar = None
        self._task = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._started = self._last_line = 0.0

    # ----- lifecycle

    def __enter__(self) -> Progress:
        self._started = self._last_line = time.monotonic()
        if not self.enabled:
            return self
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.errors import LiveError
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn(self.unit), TimeElapsedColumn(), TextColumn("eta"),
                                     TimeRemainingColumn(), console=Console(file=self.stream), transient=False)
            try:
                self._bar.start()
            except LiveError:  # inside another live display (the training bar): it shows the run already
                self._bar, self.enabled = None, False
                return self
            self._task = self._bar.add_task(self.description, total=self.total)
        elif self.announce and self.interval == 0:
            self._line(self._status())
        elif self.announce:
            self._timer = threading.Timer(self.interval, self._still_running)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _still_running(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_line < self.interval and self._printed:
                return
            self._last_line = now
        self._line(self._status(now))

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        if self._bar is not None:
            if elapsed < self.interval:
                self._bar.live.transient = True  # too short to be worth a line on the screen
            self._bar.stop()
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        if not self._printed:
            return
        if exc_type is None:
            self._line(f"{self.description}: done, {self.count} {self.unit} in {format_seconds(elapsed)}")
        else:
            self._line(f"{self.description}: stopped after {self.count} {self.unit}")

    # ----- updates

    def advance(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled or n == 0:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last_line < self.interval:
                return
            self._last_line = now
        self._line(self._status(now))

    def _status(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self._started
        count = f"{self.count}/{self.total}" if self.total is not None else str(self.count)
        text = f"{self.description}: {count} {self.unit}"
        if self.count and elapsed > 0:
            rate = self.count / elapsed
            text += f", {rate:.3g} {self.unit}/s"
            if self.total is not None:
                text += f", eta {format_seconds((self.total - self.count) / rate)}"
        return text

    def _line(self, text: str) -> None:
        with self._lock:  # the timer's thread and this one must not interleave their lines
            self._printed = True
            print(text, file=self.stream, flush=True)


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "items") -> Iterator[T]:
    """Iterate ``items`` inside a :class:`Progress`, advancing once per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(description, total, unit) as progress:
        for item in items:
            yield item
            progress.advance()
