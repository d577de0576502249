"""How far a benchmark run has got: ``stage k of N, about M min left``.

A run is a known list of units (one contender and seed evaluated on one split, trained first if
it trains) plus the shared pipeline of each seed (data, pretraining, SFT, preferences, reward
model), built the first time a unit needs it. The time left is estimated from what this run has
done so far: the mean time of the units finished (pipeline time excluded) times the units left,
plus the mean time of a pipeline times the pipelines not yet built. Units reused from the cache
take no time and so pull the estimate down, as they should when the rest is cached too.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from zoo.progress import format_seconds


class Schedule:
    """Counts ``units`` as they start and times them; :meth:`prefix` says where the run is."""

    def __init__(self, units: list[Hashable], pipelines: int, clock: Callable[[], float] = time.monotonic):
        self.units = list(dict.fromkeys(units))
        self.pipelines = pipelines
        self.clock = clock
        self._started: set[Hashable] = set()
        self._unit_start: float | None = None
        self._unit_seconds = 0.0
        self._pipeline_seconds: list[float] = []
        self._in_pipeline = 0.0  # pipeline time spent inside the current unit

    @property
    def current(self) -> int:
        """The number of the unit under way (1-based), 0 before the first."""
        return len(self._started)

    def start(self, unit: Hashable) -> None:
        """Unit ``unit`` begins (a unit met again, such as a cached baseline, is not counted twice)."""
        if unit in self._started:
            return
        if unit not in self.units:  # counted late rather than shown as "stage 3 of 2"
            self.units.append(unit)
        now = self.clock()
        self._close(now)
        self._started.add(unit)
        self._unit_start, self._in_pipeline = now, 0.0

    def _close(self, now: float) -> None:
        if self._unit_start is not None:
            self._unit_seconds += now - self._unit_start - self._in_pipeline
            self._unit_start = None

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Times the building of one seed's shared pipeline (call only when it is built)."""
        begun = self.clock()
        try:
            yield
        finally:
            spent = self.clock() - begun
            self._pipeline_seconds.append(spent)
            self._in_pipeline += spent

    def seconds_left(self) -> float | None:
        """The estimate of the time left, or None before anything was timed."""
        now = self.clock()
        finished = max(self.current - 1, 0)
        current = 0.0 if self._unit_start is None else now - self._unit_start - self._in_pipeline
        if not finished:
            return None  # nothing to scale from yet
        left = max(self._unit_seconds / finished * (len(self.units) - finished) - current, 0.0)
        pipelines_left = max(self.pipelines - len(self._pipeline_seconds), 0)
        if pipelines_left and self._pipeline_seconds:
            left += pipelines_left * sum(self._pipeline_seconds) / len(self._pipeline_seconds)
        return left

    def prefix(self) -> str:
        """``stage 7 of 80, about 23 min left`` (no estimate before the first unit has finished)."""
        text = f"stage {max(self.current, 1)} of {len(self.units)}"
        left = self.seconds_left()
        if left is None:
            return text
        return text + (f", about {left / 60:.0f} min left" if left >= 90 else f", about {format_seconds(left)} left")
