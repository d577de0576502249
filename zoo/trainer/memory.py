"""The callback that hands the C heap's free pages back to the system while a CPU run trains (:mod:`zoo.allocator`)."""
from __future__ import annotations

import threading
from typing import Any

import lightning as L

from zoo.allocator import release_free_memory, resident_bytes


class ReleaseFreedMemory(L.Callback):
    """Keeps a CPU run's resident size near what it holds, not the C heap's high-water mark.

    Within one training step the heap fragments: the forward pass, the recomputation of a
    checkpointed layer and its backward pass free and request tensors of shifting sizes, and the
    holes left behind are not returned to the system. Releasing them at the end of each step is
    not enough (the SmolLM2 DPO recipe still grew from 2.0 to 3.8 GB over four steps), so, as
    jemalloc's background thread purges dirty pages, a daemon thread looks at the resident size
    every ``interval`` seconds while the run fits and calls :func:`zoo.allocator.release_free_memory`
    when it has grown by more than ``slack`` bytes since the last release (at every look where it
    cannot be read); each training step and validation also ends with a release. A page given
    back costs a page fault when it is used again, so a resident size that holds steady is left
    alone. A GPU run's tensors are not on the C heap, so it does nothing there.
    """

    def __init__(self, interval: float = 0.25, slack: int = 256 << 20) -> None:
        self.interval, self.slack = interval, slack
        self.released = 0
        self._stop = threading.Event()
        self._after_release: int | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _on_cpu(trainer: L.Trainer) -> bool:
        return trainer.strategy.root_device.type == "cpu"

    def _release(self) -> None:
        if release_free_memory():
            self.released += 1
        self._after_release = resident_bytes()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            resident, floor = resident_bytes(), self._after_release
            if resident is None or floor is None or resident > floor + self.slack:
                self._release()

    def on_fit_start(self, trainer: L.Trainer, *args: Any) -> None:
        if not self._on_cpu(trainer) or self._thread is not None:
            return
        released = self.released
        self._release()
        if self.released > released:  # glibc: worth a thread
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="zoo-release-freed-memory", daemon=True)
            self._thread.start()

    def on_fit_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.stop()

    def on_exception(self, trainer: L.Trainer, *args: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """End the background thread (the run is over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._on_cpu(trainer):
            self._release()

    def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._on_cpu(trainer):
            self._release()
