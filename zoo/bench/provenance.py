"""Where a benchmark result came from, and whether today's code would still produce it.

Three things tie a result to the code:

* **Source hashes.** Every stage's fingerprint (:func:`zoo.bench.cache.fingerprint`) includes the
  source hash of the code that produces it and the versions of the numerical stack
  (:mod:`zoo.bench.sources`, :mod:`zoo.bench.versions`). A result records :func:`run_source_hash`:
  the core and every plugin its stages use.
* **The commit.** ``results.json`` records ``commit`` (``git rev-parse HEAD`` of the checkout the
  ``zoo`` package runs from, None outside a git checkout), ``clean`` (no uncommitted or untracked
  files under :data:`TRACKED`) and ``dirty`` (those files, when there are some).
* **The check.** :mod:`zoo.bench.check` (``zoo bench --check DIR``) recomputes a result from its
  stored values and compares its source hash (:func:`run_source_hash`) and packages with today's.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from zoo.bench.sources import package_root, source_hash

#: Folders (relative to the repository root) whose state a result depends on.
TRACKED = ("zoo", "plugins", "configs/bench")


def repository_root() -> Path:
    """The folder holding ``zoo/`` (a git checkout in development, site-packages when installed)."""
    return package_root().parent



def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def git_state(root: Path | None = None) -> dict[str, object]:
    """``commit``, ``clean`` and ``dirty`` (changed or untracked files under :data:`TRACKED`)."""
    root = root or repository_root()
    try:
        head = _git(root, "rev-parse", "HEAD")
    except OSError:  # no git on this machine
        return {"commit": None, "clean": None, "dirty": []}
    if head.returncode != 0 or not (root / "zoo").is_dir():
        return {"commit": None, "clean": None, "dirty": []}
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *TRACKED)
    dirty = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return {"commit": head.stdout.strip(), "clean": not dirty, "dirty": dirty}


def run_plugin_modules(config_dict: dict) -> list[object]:
    """Every plugin a bench config's stages use: its task, its stages' and contenders' algorithms
    and its suites."""
    from zoo.bench.stages import plugin_module
    from zoo.registry import get_registry

    registry = get_registry()
    algorithms = {config_dict[stage]["algorithm"] for stage in ("pretrain", "sft", "reward_model")}
    algorithms |= {run["algorithm"] for run in config_dict["runs"] if run.get("algorithm")}
    modules: list[object] = [registry.get("tasks", config_dict["task"]["name"])]
    modules += [plugin_module("algorithms", name) for name in sorted(algorithms)]
    modules += [plugin_module("suites", name) for name in ("preference", *config_dict["evaluation"]["suites"])]
    return [m for m in modules if m is not None]


def run_source_hash(config_dict: dict, core: str | None = None, plugins: dict[str, str] | None = None) -> str:
    """:func:`zoo.bench.sources.source_hash` of the core (``core``, default
    :func:`zoo.bench.sources.core_source_hash`) and every plugin of :func:`run_plugin_modules`
    (under the digests ``plugins`` maps them to; default: the applied canary's)."""
    return source_hash(run_plugin_modules(config_dict), core, plugins)


def git_source(commit: str):
    """A reader of a file's source as it was at ``commit`` (None where git has no such file)."""
    def read(path: Path) -> bytes | None:
        # ``REV:./NAME`` is resolved against the directory git runs in: one call, no path arithmetic.
        shown = subprocess.run(["git", "-C", str(path.parent), "show", f"{commit}:./{path.name}"], capture_output=True)
        return shown.stdout if shown.returncode == 0 else None
    return read
