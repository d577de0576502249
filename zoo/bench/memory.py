"""Peak memory of a block of code: GPU memory allocated by torch, or the process's resident set.

On a GPU the number is ``torch.cuda.max_memory_allocated`` over the block (reset at its start).
On a CPU it is the largest resident set size sampled every 20 ms while the block runs, which
includes everything the process holds (other models, data), so compare it between runs of one
benchmark rather than across machines.
"""
from __future__ import annotations

import os
import threading

import torch

MIB = 1024 * 1024


def resident_bytes() -> int | None:
    """The process's current resident set size, or None where it cannot be read."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.mib`` (None when nothing could be measured)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.kind = "cuda" if torch.cuda.is_available() else "rss"
        self.mib: float | None = None
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            value = resident_bytes()
            if value is not None:
                self._peak = max(self._peak, value)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        if self.kind == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "cuda":
            self.mib = torch.cuda.max_memory_allocated() / MIB
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.mib = self._peak / MIB if self._peak else None
