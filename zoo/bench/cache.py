"""Stage caching: every stage's output lives in a folder named by a fingerprint of its inputs.

A fingerprint hashes the stage's kind, the config values it reads, the fingerprints of the
stages it starts from, a hash of the source that produces it (the ``zoo`` core and the plugin
modules the stage uses, :func:`zoo.bench.sources.source_hash`) and the versions of the
numerical packages (:func:`zoo.bench.versions.package_versions`). Code that could compute a
stage differently never reuses its folder. A stage whose folder holds a ``done.json`` with the
same fingerprint is reused as is; anything else (no folder, or one left by an interrupted run)
is rebuilt from scratch. So adding a seed or a contender to a config reuses pretraining,
SFT, the preference data and the reward model, and rerunning an unchanged config trains nothing.

Several ``zoo bench`` processes may share one cache (tiny.yaml and frontier.yaml do): a stage is
built under an exclusive lock on ``KIND-FINGERPRINT.lock``, so a second process asking for the
same stage waits and then reuses it rather than building it again or deleting it mid-build. A
cache with ``wait`` False (the parallel workers of ``zoo bench --workers``) raises
:class:`StageBusy` instead of waiting, so its process can build something else meanwhile.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DONE = "done.json"


class StageBusy(Exception):
    """Another process is building this stage (raised only by a cache with ``wait`` False)."""


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def package_version() -> str:
    from zoo.version import __version__

    return __version__


def fingerprint(kind: str, inputs: Any, upstream: list[str] | tuple[str, ...] = (), sources: Iterable[Any] = ()
                ) -> str:
    """A hex digest of ``kind``, ``inputs`` (JSON-serialisable), upstream fingerprints, the version,
    the package versions and the source hash of the core plus ``sources`` (modules or classes)."""
    from zoo.bench.sources import source_hash
    from zoo.bench.versions import package_versions

    payload = json.dumps({"kind": kind, "inputs": inputs, "upstream": list(upstream),
                          "version": package_version(), "packages": package_versions(),
                          "source": source_hash(sources)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Stage:
    """A cached stage's folder and what its ``done.json`` recorded."""

    kind: str
    key: str
    path: Path
    record: dict[str, Any]
    reused: bool


class StageCache:
    """Folders ``ROOT/KIND-FINGERPRINT`` built at most once per fingerprint.

    ``events`` lists ``(kind, key, "reused" | "built")`` in the order stages were asked for, so
    callers (and tests) can tell what a run actually trained.
    """

    def __init__(self, root: Path, wait: bool = True):
        self.root = Path(root)
        self.events: list[tuple[str, str, str]] = []
        #: False: a stage another process is building raises :class:`StageBusy` rather than being waited for.
        self.wait = wait

    def path(self, kind: str, key: str) -> Path:
        return self.root / f"{kind}-{key}"

    def lookup(self, kind: str, key: str) -> Stage | None:
        folder = self.path(kind, key)
        try:
            record = json.loads((folder / DONE).read_text())
        except (OSError, ValueError):
            return None
        if record.get("fingerprint") != key:
            return None
        return Stage(kind, key, folder, record, reused=True)

    def get_or_build(self, kind: str, key: str, build: Callable[[Path], dict[str, Any]],
                     on_build: Callable[[str], None] | None = None) -> Stage:
        """The cached stage, or ``build(folder)`` run in a fresh folder; ``build`` returns the record."""
        cached = self.lookup(kind, key)
        if cached is not None:
            self.events.append((kind, key, "reused"))
            return cached
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{kind}-{key}.lock", "w") as lock:
            try:  # released when the file closes, also if this process dies
                fcntl.flock(lock, fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StageBusy(f"{kind}-{key}") from None
            cached = self.lookup(kind, key)  # another process may have built it while this one waited
            if cached is not None:
                self.events.append((kind, key, "reused"))
                return cached
            return self._build(kind, key, build, on_build)

    def _build(self, kind: str, key: str, build: Callable[[Path], dict[str, Any]],
               on_build: Callable[[str], None] | None) -> Stage:
        folder = self.path(kind, key)
        if folder.exists():
            shutil.rmtree(folder)  # an interrupted build: nothing in it can be trusted
        folder.mkdir(parents=True)
        if on_build is not None:
            on_build(kind)
        start, cpu_start = time.perf_counter(), time.process_time()
        record = dict(build(folder))
        # CPU time of this process: with one torch thread, what the stage takes on an idle core.
        record.update(fingerprint=key, kind=kind, stage_seconds=time.perf_counter() - start,
                      stage_cpu_seconds=time.process_time() - cpu_start)
        (folder / DONE).write_text(json.dumps(record, indent=2, default=str))
        self.events.append((kind, key, "built"))
        return Stage(kind, key, folder, record, reused=False)
