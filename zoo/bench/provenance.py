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
* **The check.** :func:`check_results` (``zoo bench --check DIR``) recomputes every statistic of a
  result from its stored values (:func:`zoo.bench.results.derive`), compares its source hash with
  what today's code hashes to (:func:`run_source_hash`) and its numerical packages with today's,
  and re-renders ``results.md`` from the recomputed result; all must match.
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
                          "bench/claims.py", "bench/canary.py", "bench/perturb.py", "cli.py", "scaffold.py"})
#: The numerical stack whose versions are part of every fingerprint.
FINGERPRINT_PACKAGES = ("torch", "transformers", "tokenizers", "lightning", "numpy", "safetensors", "peft")

#: ``zoo bench --check`` exit statuses.
CHECK_OK, CHECK_STALE, CHECK_UNKNOWN = 0, 1, 2


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


# ----- the check ----------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The verdict on one ``results.json``: status (:data:`CHECK_OK` ...) and the reasons."""

    path: Path
    status: int
    reasons: list[str] = field(default_factory=list)


def _differences(recorded: object, recomputed: object, where: str = "") -> list[str]:
    """Where two JSON values differ (paths, first ones first); NaN equals NaN."""
    if isinstance(recorded, dict) and isinstance(recomputed, dict):
        out = [f"{where}.{key}".lstrip(".") for key in sorted(set(recorded) ^ set(recomputed))]
        for key in recorded:
            if key in recomputed:
                out += _differences(recorded[key], recomputed[key], f"{where}.{key}")
        return out
    if isinstance(recorded, list) and isinstance(recomputed, list) and len(recorded) == len(recomputed):
        out = []
        for index, (a, b) in enumerate(zip(recorded, recomputed)):
            label = a.get("label") if isinstance(a, dict) and "label" in a else index
            out += _differences(a, b, f"{where}[{label!r}]" if isinstance(label, str) else f"{where}[{index}]")
        return out
    same = json.dumps(recorded, sort_keys=True) == json.dumps(recomputed, sort_keys=True)
    return [] if same else [where.lstrip(".") or "(the whole file)"]


def _config_changed(results: dict) -> str | None:
    """Why the config file a result was run from no longer gives its config (None: it still does)."""
    from zoo.bench.config import load_bench_config
    from zoo.errors import ConfigError

    name = results.get("config_file")
    if not name:
        return None
    path = Path(name) if Path(name).is_absolute() or Path(name).exists() else repository_root() / name
    if not path.exists():
        return f"its config file {name} no longer exists"
    try:
        today = load_bench_config(path, results.get("overrides") or []).to_dict()
    except ConfigError as exc:
        return f"its config file {name} no longer loads: {exc}"
    if json.dumps(today, sort_keys=True, default=str) != json.dumps(results["config"], sort_keys=True, default=str):
        keys = sorted(k for k in today if json.dumps(today[k], sort_keys=True, default=str)
                      != json.dumps(results["config"].get(k), sort_keys=True, default=str))
        return f"its config file {name} changed since the run (keys: {', '.join(keys)})"
    return None


def check_result_file(path: Path) -> CheckResult:
    """Does ``path`` (a results.json) recompute from its stored values, hash to today's code and
    packages, and its results.md render from it with today's report code?"""
    from zoo.bench.report import markdown
    from zoo.bench.results import FORMAT, derive

    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return CheckResult(path, CHECK_UNKNOWN, [f"cannot read it: {exc}"])
    if results.get("format") != FORMAT:
        return CheckResult(path, CHECK_UNKNOWN, [f"it is in results format {results.get('format', 1)}, today's is "
                                                 f"{FORMAT}: regenerate it with zoo bench"])
    reasons: list[str] = []
    status = CHECK_OK
    try:
        recomputed = derive(results)
    except Exception as exc:  # a stored value edited into something the statistics cannot read
        return CheckResult(path, CHECK_STALE, [f"its statistics cannot be recomputed from its stored values "
                                               f"({type(exc).__name__}: {exc})"])
    differ = _differences(results, recomputed)
    if differ:
        status = CHECK_STALE
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        reasons.append(f"{len(differ)} recorded statistic(s) differ from what its stored values give: {shown}")
    canary = results.get("canary") or {}
    code = code_source_hash()
    # A canary vouches for one code hash: the one it compared; any other code is today's own hash.
    core = canary["from"] if canary.get("identical") and canary.get("to") == code else code
    try:
        today = run_source_hash(results["config"], core)
    except Exception as exc:  # a plugin the result used is no longer registered
        today = f"unknown ({type(exc).__name__}: {exc})"
    if results.get("source_hash") != today:
        status = CHECK_STALE
        reasons.append(f"its source hash {results.get('source_hash')} is not today's code's {today}: the code that "
                       f"produced it changed (comments and docstrings aside)")
    recorded_packages = results.get("packages") or {}
    moved = [f"{name} {recorded_packages.get(name)} → {version}" for name, version in package_versions().items()
             if recorded_packages.get(name) != version]
    if moved:
        status = CHECK_STALE
        reasons.append("the numerical packages differ from today's: " + ", ".join(moved))
    config_problem = _config_changed(results)
    if config_problem:
        status = CHECK_STALE
        reasons.append(config_problem)
    if results.get("clean") is not True:
        status = CHECK_STALE
        dirty = ", ".join(results.get("dirty") or []) or "unknown files"
        reasons.append(f"it was written from a tree with uncommitted changes ({dirty}), so no commit reproduces it")
    table = path.parent / "results.md"
    if not table.exists():
        status = CHECK_STALE
        reasons.append("results.md is missing next to it")
    else:
        try:
            rendered = markdown(recomputed)
        except Exception as exc:  # a result the report code no longer reads
            rendered = None
            status = CHECK_STALE
            reasons.append(f"today's report code cannot render it ({type(exc).__name__}: {exc})")
        if rendered is not None and rendered != table.read_text(encoding="utf-8"):
            status = CHECK_STALE
            reasons.append("results.md differs from what today's report code renders from the recomputed results")
    if status == CHECK_OK:
        commit = str(results.get("commit"))[:12]
        reasons.append(f"every statistic recomputes from the stored values; source hash {today} and the numerical "
                       f"packages are today's; results.md is what today's code renders (commit {commit})")
    return CheckResult(path, status, reasons)


def check_results(directory: Path) -> list[CheckResult]:
    """:func:`check_result_file` for ``directory/results.json`` or every ``results.json`` below it."""
    directory = Path(directory)
    if directory.is_file():
        return [check_result_file(directory)]
    files = sorted(directory.rglob("results.json"))
    return [check_result_file(path) for path in files]
