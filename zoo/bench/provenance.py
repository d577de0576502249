"""Where a benchmark result came from, and whether today's code would still produce it.

Three things tie a result to the code:

* **Source hashes in stage fingerprints.** Every stage's fingerprint (:func:`zoo.bench.cache.fingerprint`)
  includes :func:`source_hash` of the code that produces it: the ``zoo`` package minus the modules
  that only present results (:data:`PRESENTATION`), plus the plugin modules the stage uses (the
  task, the stage's algorithm, the evaluation suites), and :func:`package_versions` of the
  numerical stack. A cache written by other code is therefore rebuilt, never silently reused.
* **The commit.** ``results.json`` records ``commit`` (``git rev-parse HEAD`` of the checkout the
  ``zoo`` package runs from, None outside a git checkout), ``clean`` (no uncommitted or untracked
  files under :data:`TRACKED`) and ``dirty`` (those files, when there are some).
* **The check.** :func:`check_results` (``zoo bench --check DIR``) compares a result's commit
  with today's ``zoo/``, ``plugins/`` and ``configs/bench/`` and re-renders ``results.md`` from
  ``results.json`` with today's report code; both must match.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import inspect
import json
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import zoo

#: Folders (relative to the repository root) whose state a result depends on.
TRACKED = ("zoo", "plugins", "configs/bench")
#: Modules of the ``zoo`` package that read finished results and never change a stage's output.
PRESENTATION = frozenset({"bench/report.py", "bench/plots.py", "bench/results.py", "bench/stats.py",
                          "bench/provenance.py", "bench/comparisons.py", "bench/cells.py", "bench/costs.py",
                          "bench/claims.py", "cli.py", "scaffold.py"})
#: The numerical stack whose versions are part of every fingerprint.
FINGERPRINT_PACKAGES = ("torch", "transformers", "tokenizers", "lightning", "numpy", "safetensors", "peft")

#: ``zoo bench --check`` exit statuses.
CHECK_OK, CHECK_STALE, CHECK_UNKNOWN = 0, 1, 2


def package_root() -> Path:
    return Path(zoo.__file__).resolve().parent


def repository_root() -> Path:
    """The folder holding ``zoo/`` (a git checkout in development, site-packages when installed)."""
    return package_root().parent


@lru_cache(maxsize=None)
def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hash_files(files: Iterable[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(files):
        digest.update(f"{name}\0{_file_digest(path)}\n".encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def core_source_hash() -> str:
    """A hash of every ``.py`` file of the ``zoo`` package that can change a stage's output."""
    root = package_root()
    files = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        if relative not in PRESENTATION:
            files.append((f"zoo/{relative}", path))
    return _hash_files(files)


def module_file(module: ModuleType | type | object) -> Path | None:
    """The source file of a module, or of the module that defines a class or an object's class."""
    target = module if isinstance(module, (ModuleType, type)) else type(module)
    try:
        source = inspect.getsourcefile(target)
    except TypeError:
        return None
    return Path(source).resolve() if source else None


def source_hash(modules: Iterable[ModuleType | type | object] = ()) -> str:
    """:func:`core_source_hash` combined with the source files of ``modules`` (plugins, tasks)."""
    files: set[tuple[str, Path]] = set()
    for module in modules:
        path = module_file(module)
        if path is not None:
            files.add((path.name, path))
    return hashlib.sha256(f"{core_source_hash()}:{_hash_files(files)}".encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in FINGERPRINT_PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


# ----- git ----------------------------------------------------------------------------------------


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


def changed_since(commit: str, root: Path | None = None) -> list[str] | None:
    """Files under :data:`TRACKED` that differ between ``commit`` and the working tree (None: unknown commit)."""
    root = root or repository_root()
    if _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        return None
    diff = _git(root, "diff", "--name-only", commit, "--", *TRACKED)
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", *TRACKED)
    return sorted(set(diff.stdout.split()) | set(untracked.stdout.split()))


# ----- the check ----------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The verdict on one ``results.json``: status (:data:`CHECK_OK` ...) and the reasons."""

    path: Path
    status: int
    reasons: list[str] = field(default_factory=list)


def check_result_file(path: Path, root: Path | None = None) -> CheckResult:
    """Does ``path`` (a results.json) still match today's code, and its results.md the report code?"""
    from zoo.bench.report import markdown

    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return CheckResult(path, CHECK_UNKNOWN, [f"cannot read it: {exc}"])
    commit = results.get("commit")
    if not commit:
        return CheckResult(path, CHECK_UNKNOWN, ["it records no commit (written outside a git checkout or by an "
                                                 "older version)"])
    reasons: list[str] = []
    status = CHECK_OK
    if results.get("clean") is not True:
        status = CHECK_STALE
        dirty = ", ".join(results.get("dirty") or []) or "unknown files"
        reasons.append(f"it was written from a tree with uncommitted changes ({dirty}), so no commit reproduces it")
    changed = changed_since(commit, root)
    if changed is None:
        return CheckResult(path, CHECK_UNKNOWN, reasons + [f"commit {commit[:12]} is not in this repository"])
    if changed:
        status = CHECK_STALE
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        reasons.append(f"{len(changed)} file(s) under {', '.join(TRACKED)} changed since commit {commit[:12]}: {shown}")
    table = path.parent / "results.md"
    if not table.exists():
        status = CHECK_STALE
        reasons.append("results.md is missing next to it")
    else:
        try:
            rendered = markdown(results)
        except Exception as exc:  # an old results.json the report code no longer reads
            rendered = None
            reasons.append(f"today's report code cannot render it ({type(exc).__name__}: {exc})")
        if rendered is None or rendered != table.read_text(encoding="utf-8"):
            status = CHECK_STALE
            if rendered is not None:
                reasons.append("results.md differs from what today's report code renders from results.json")
    if status == CHECK_OK:
        reasons.append(f"commit {commit[:12]}; nothing under {', '.join(TRACKED)} changed since; results.md is "
                       f"what today's code renders")
    return CheckResult(path, status, reasons)


def check_results(directory: Path, root: Path | None = None) -> list[CheckResult]:
    """:func:`check_result_file` for ``directory/results.json`` or every ``results.json`` below it."""
    directory = Path(directory)
    if directory.is_file():
        return [check_result_file(directory, root)]
    files = sorted(directory.rglob("results.json"))
    return [check_result_file(path, root) for path in files]
