"""Source hashes: what of the code goes into every stage fingerprint (:func:`zoo.bench.cache.fingerprint`).

A stage's fingerprint includes :func:`source_hash` of the code that produces it: the ``zoo``
package minus the modules that only present results (:data:`PRESENTATION`), plus the plugin
modules the stage uses (the task, the stage's algorithm, the evaluation suites). A file is hashed
by its syntax tree with docstrings removed (:func:`code_digest`), so a comment or a docstring
changes no fingerprint, while any change to what the code does rebuilds the stages it feeds. A
numerics-neutral refactor can carry the cache across by a canary (:mod:`zoo.bench.canary`), which
records an alias of source hashes (:data:`ALIASES`). The numerical packages' versions, the
fingerprint's other half of "what computed it", are :func:`zoo.bench.versions.package_versions`.

Nothing here reads a result: checking one is :mod:`zoo.bench.provenance` and :mod:`zoo.bench.check`.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import zoo

#: Modules of the ``zoo`` package that read finished results and never change a stage's output.
#: ``bench/report/terminal.py``, ``plot_labels.py`` and ``judges.py`` (the judges' section of
#: results.md) are hashed, as they were before the report was gathered into ``bench/report/``.
PRESENTATION = frozenset({"bench/report/__init__.py", "bench/report/files.py", "bench/report/plots.py",
                          "bench/report/comparisons.py", "bench/report/cells.py", "bench/report/costs.py",
                          "bench/report/findings.py", "bench/results.py", "bench/stats.py", "bench/provenance.py",
                          "bench/sources.py", "bench/versions.py", "bench/check.py", "bench/claims.py",
                          "bench/canary.py", "bench/perturb.py", "cli.py", "app/scaffold.py"})


def package_root() -> Path:
    return Path(zoo.__file__).resolve().parent


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
