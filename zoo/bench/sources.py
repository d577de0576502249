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


def _hash_files(files: Iterable[tuple[str, Path]], aliases: dict[str, str] | None = None) -> str:
    """A hash of the files' digests; ``aliases`` replaces a file digest by the one a canary showed it
    equivalent to (a plugin whose change is confined to where it imports core names from)."""
    digest = hashlib.sha256()
    for name, path in sorted(files):
        own = _file_digest(path)
        digest.update(f"{name}\0{(aliases or {}).get(own, own)}\n".encode())
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


def applied_plugin_aliases() -> dict[str, str]:
    """Plugin file digests the applied canary showed equivalent to earlier ones (today's → earlier)."""
    return dict((applied_canary() or {}).get("plugins") or {})


def source_hash(modules: Iterable[ModuleType | type | object] = (), core: str | None = None,
                plugins: dict[str, str] | None = None) -> str:
    """``core`` (default :func:`core_source_hash`) combined with the source files of ``modules``
    (plugins, tasks), each under the digest ``plugins`` (default :func:`applied_plugin_aliases`) maps it to."""
    files: set[tuple[str, Path]] = set()
    for module in modules:
        path = module_file(module)
        if path is not None:
            files.add((path.name, path))
    aliases = applied_plugin_aliases() if plugins is None else plugins
    return hashlib.sha256(f"{core or core_source_hash()}:{_hash_files(files, aliases)}".encode()).hexdigest()[:16]


# ----- plugin changes confined to their imports ----------------------------------------------------


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) with no else: code that never runs."""
    if not isinstance(node, ast.If) or node.orelse:
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_tree(tree: ast.AST, imports: bool) -> ast.AST:
    """``tree`` without ``if TYPE_CHECKING:`` blocks, and without import statements unless ``imports``."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list):
                setattr(node, field, [n for n in body if not _is_type_checking(n)
                                      and (imports or not isinstance(n, (ast.Import, ast.ImportFrom)))])
    return tree


def _imports(tree: ast.AST) -> set[tuple[str, str, str]]:
    """(bound name, module, imported name) of every import that runs, wherever it stands."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            out |= {(a.asname or a.name, module, a.name) for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {(a.asname or a.name.split(".")[0], a.name, "") for a in node.names}
    return out - {("TYPE_CHECKING", "typing", "TYPE_CHECKING")}


class _Loads(ast.NodeVisitor):
    """Names read at run time (annotations left out: under ``from __future__ import annotations``
    they are strings, and without it a missing name fails at import, loudly)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        self.names.add(node.id)

    def visit_arg(self, node: ast.arg) -> None:
        pass

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        for child in (node.target, node.value):
            if child is not None:
                self.visit(child)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in (*node.body, *node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if child is not None:
                self.visit(child)

    visit_FunctionDef = visit_AsyncFunctionDef = _function


def _is_core(module: str) -> bool:
    return module == "zoo" or module.startswith("zoo.")


def change_beyond_imports(earlier: bytes, today: bytes) -> str | None:
    """Why ``today``'s source differs from ``earlier``'s in more than its imports, or None when the
    imports are the whole difference.

    Allowed: an import moved (into a function, a lazy import, or under ``if TYPE_CHECKING:``),
    the same name bound from another ``zoo`` module (the core code it names is under the core hash
    the canary compares), and a name no longer imported that nothing reads at run time. Anything
    else (a changed statement, a name bound to something else, a new non-core import) is a real
    change.
    """
    try:
        old, new = _without_docstrings(ast.parse(earlier)), _without_docstrings(ast.parse(today))
    except (SyntaxError, ValueError):
        return "it does not parse"
    old_imports, new_imports = _imports(_runtime_tree(old, True)), _imports(_runtime_tree(new, True))
    if ast.dump(_runtime_tree(old, False)) != ast.dump(_runtime_tree(new, False)):
        return "statements other than imports changed"
    loads = _Loads()
    loads.visit(new)

    def bound(imports: set[tuple[str, str, str]]) -> set[tuple[str, str]]:
        """(name, what it is bound to): a core name by its own name, from whichever core module."""
        return {(name, f"zoo…{imported}" if _is_core(module) else f"{module}.{imported}".rstrip("."))
                for name, module, imported in imports}

    added, removed = bound(new_imports) - bound(old_imports), bound(old_imports) - bound(new_imports)
    if added:
        name, origin = sorted(added)[0]
        return f"it imports {name!r} ({origin}), which it did not"
    read = sorted(name for name, _ in removed if name in loads.names)
    if read:
        return f"it no longer imports {read[0]!r}, which it reads"
    return None
