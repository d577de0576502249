"""Where a benchmark result came from, and whether today's code would still produce it.

Three things tie a result to the code:

* **Source hashes in stage fingerprints.** Every stage's fingerprint (:func:`zoo.bench.cache.fingerprint`)
  includes :func:`source_hash` of the code that produces it: the ``zoo`` package minus the modules
  that only present results (:data:`PRESENTATION`), plus the plugin modules the stage uses (the
  task, the stage's algorithm, the evaluation suites), and :func:`package_versions` of the
  numerical stack. A file is hashed by its syntax tree with docstrings removed
  (:func:`code_digest`), so a comment or a docstring changes no fingerprint, while any change to
  what the code does rebuilds the stages it feeds. A numerics-neutral refactor can carry the
  cache across by a canary (:mod:`zoo.bench.canary`, which records an alias of source hashes).
* **The commit.** ``results.json`` records ``commit`` (``git rev-parse HEAD`` of the checkout the
  ``zoo`` package runs from, None outside a git checkout), ``clean`` (no uncommitted or untracked
  files under :data:`TRACKED`) and ``dirty`` (those files, when there are some).
* **The check.** :mod:`zoo.bench.check` (``zoo bench --check DIR``) recomputes a result from its
  stored values and compares its source hash (:func:`run_source_hash`) and packages with today's.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata as metadata
import inspect
import json
import platform
import subprocess
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import zoo

#: Folders (relative to the repository root) whose state a result depends on.
TRACKED = ("zoo", "plugins", "configs/bench")
#: Modules of the ``zoo`` package that read finished results and never change a stage's output.
PRESENTATION = frozenset({"bench/report.py", "bench/plots.py", "bench/results.py", "bench/stats.py",
                          "bench/provenance.py", "bench/check.py", "bench/comparisons.py", "bench/cells.py",
                          "bench/costs.py", "bench/claims.py", "bench/canary.py", "bench/perturb.py", "cli.py",
                          "app/scaffold.py"})
#: The numerical stack whose versions are part of every fingerprint.
FINGERPRINT_PACKAGES = ("torch", "transformers", "tokenizers", "lightning", "numpy", "safetensors", "peft")



def package_root() -> Path:
    return Path(zoo.__file__).resolve().parent


def repository_root() -> Path:
    """The folder holding ``zoo/`` (a git checkout in development, site-packages when installed)."""
    return package_root().parent


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_digest(source: bytes) -> str:
    """SHA-256 of Python source as the interpreter sees it: the syntax tree without docstrings or
    positions (comments and layout never reach the tree). Source that does not parse is hashed as bytes."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).hexdigest()
    return hashlib.sha256(ast.dump(_without_docstrings(tree), include_attributes=False).encode()).hexdigest()


@lru_cache(maxsize=None)
def _file_digest(path: Path) -> str:
    return code_digest(path.read_bytes()) if path.suffix == ".py" else hashlib.sha256(path.read_bytes()).hexdigest()


def _hash_files(files: Iterable[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(files):
        digest.update(f"{name}\0{_file_digest(path)}\n".encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_source_hash() -> str:
    """A hash of every ``.py`` file of the ``zoo`` package that can change a stage's output."""
    root = package_root()
    files = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        if relative not in PRESENTATION:
            files.append((f"zoo/{relative}", path))
    return _hash_files(files)


#: A file in a stage cache: today's code hash → the canary record that vouched for it (its ``from``
#: is the earlier code hash whose stages it reuses; :mod:`zoo.bench.canary`).
ALIASES = "source-aliases.json"
_aliases: dict[str, dict] = {}


def use_aliases(cache_root: Path | None) -> None:
    """Read the source aliases a canary recorded in ``cache_root`` (None: use none)."""
    _aliases.clear()
    if cache_root is not None:
        try:
            _aliases.update(json.loads((Path(cache_root) / ALIASES).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass


def applied_canary() -> dict | None:
    """The canary record behind the alias today's code hash goes by, if any."""
    return _aliases.get(code_source_hash())


def core_source_hash() -> str:
    """:func:`code_source_hash`, or the hash a canary showed it to be equivalent to (:mod:`zoo.bench.canary`)."""
    own = code_source_hash()
    return _aliases[own]["from"] if own in _aliases else own


def module_file(module: ModuleType | type | object) -> Path | None:
    """The source file of a module, or of the module that defines a class or an object's class."""
    target = module if isinstance(module, (ModuleType, type)) else type(module)
    try:
        source = inspect.getsourcefile(target)
    except TypeError:
        return None
    return Path(source).resolve() if source else None


def source_hash(modules: Iterable[ModuleType | type | object] = (), core: str | None = None) -> str:
    """``core`` (default :func:`core_source_hash`) combined with the source files of ``modules`` (plugins, tasks)."""
    files: set[tuple[str, Path]] = set()
    for module in modules:
        path = module_file(module)
        if path is not None:
            files.add((path.name, path))
    return hashlib.sha256(f"{core or core_source_hash()}:{_hash_files(files)}".encode()).hexdigest()[:16]


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


def run_source_hash(config_dict: dict, core: str | None = None) -> str:
    """:func:`source_hash` of the core (``core``, default :func:`core_source_hash`) and every plugin a
    bench config's stages use: its task, its stages' and contenders' algorithms and its suites."""
    from zoo.bench.stages import plugin_module
    from zoo.registry import get_registry

    registry = get_registry()
    algorithms = {config_dict[stage]["algorithm"] for stage in ("pretrain", "sft", "reward_model")}
    algorithms |= {run["algorithm"] for run in config_dict["runs"] if run.get("algorithm")}
    modules: list[object] = [registry.get("tasks", config_dict["task"]["name"])]
    modules += [plugin_module("algorithms", name) for name in sorted(algorithms)]
    modules += [plugin_module("suites", name) for name in ("preference", *config_dict["evaluation"]["suites"])]
    return source_hash((m for m in modules if m is not None), core)
