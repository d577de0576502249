"""What one ``zoo bench`` run produced: :class:`BenchRun`, the record :func:`zoo.bench.runner.run_bench`
returns and :func:`zoo.bench.results.collect` reads (so the results never import the runner)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.bench.config import BenchConfig, Contender


@dataclass
class BenchRun:
    """What one ``zoo bench`` invocation produced."""

    config: BenchConfig
    output_dir: Path
    #: The first seed's shared stages (kind → record); every pipeline's are in ``pipelines``.
    shared: dict[str, dict[str, Any]]
    #: contender label → seed → test-split evaluation record (plus the training record under ``"training"``).
    records: dict[str, dict[int, dict[str, Any]]]
    #: The table's rows: plain runs, and for each selected sweep the setting it selected.
    contenders: list[Contender]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    #: contender label → seed → the folder of its training run (for training curves).
    run_dirs: dict[str, dict[int, Path]] = field(default_factory=dict)
    shared_dirs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    #: CPU time of this process (all threads), a load-independent measure of the work done.
    cpu_seconds: float = 0.0
    #: pipeline seed → kind → record of its shared stages.
    pipelines: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: selected sweep's label → its trials: setting, validation scores per tuning seed, the choice.
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``commit``, ``clean``, ``dirty``, ``source_hash`` (:func:`zoo.bench.provenance.run_source_hash`),
    #: ``packages``, ``code_hash`` (today's core), ``core_hash`` (the one stages were keyed by) and
    #: ``canary`` (the record that aliased them, :mod:`zoo.bench.canary`), as when the run started.
    provenance: dict[str, Any] = field(default_factory=dict)
    #: The matched budget (:mod:`zoo.bench.budget`): what is matched, the target, each row's fitted steps.
    budget: dict[str, Any] = field(default_factory=dict)
