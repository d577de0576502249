"""No import cycle among the package's modules, function-local imports included.

Every ``.py`` file under ``zoo/`` and ``plugins/`` (installed as ``zoo_plugins``) is read with
``ast``, and every ``import`` and ``from ... import`` in it, at any depth (inside functions, under
``if TYPE_CHECKING``), becomes an edge to a module of the tree: a relative import is resolved
against the importing module's package; ``from pkg import name`` is an import of the submodule
``pkg.name`` when there is one, else of ``pkg``; any other name, of the longest enclosing module of
the tree (imports from other distributions are dropped). A strongly connected component of more
than one module is a cycle: none of its modules can be understood, imported or tested alone.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder → the package it is installed as (pyproject's ``package-dir``).
SOURCES = {"zoo": "zoo", "plugins": "zoo_plugins"}
#: Packages that must have no cycle among their own modules today (edges leaving the package are not
#: followed). The whole tree is :func:`test_the_whole_tree_has_no_import_cycle`.
SCOPES = ("zoo.bench",)

Graph = dict[str, dict[str, int]]  # module → imported module → line of the first such import


def module_files(root: Path, sources: dict[str, str] = SOURCES) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` under the source folders."""
    out = {}
    for folder, package in sources.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = [package, *path.relative_to(root / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _enclosing(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The modules of the tree that ``module`` imports, each with the line of its first import."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _enclosing(target, modules)
            if resolved is not None and resolved != module:
                found.setdefault(resolved, node.lineno)
    return dict(sorted(found.items(), key=lambda item: item[1]))


def import_graph(root: Path = ROOT, sources: dict[str, str] = SOURCES) -> Graph:
    modules = module_files(root, sources)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def within(graph: Graph, scope: str) -> Graph:
    """The modules of package ``scope`` and the imports among them only."""
    inside = {m for m in graph if m == scope or m.startswith(scope + ".")}
    return {m: {t: line for t, line in graph[m].items() if t in inside} for m in sorted(inside)}


def cycles(graph: Graph) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found, key=lambda c: (-len(c), c))


def describe(graph: Graph, found: list[list[str]]) -> str:
    """Each cycle with the imports that close it (``module:line → module``), for the failure message."""
    lines = []
    for component in found:
        members = set(component)
        lines.append(f"{len(component)} modules: {', '.join(component)}")
        lines += [f"    {m}:{line} → {t}" for m in component for t, line in graph[m].items() if t in members]
    return "\n".join(lines)


def test_the_scan_resolves_every_kind_of_import(tmp_path):
    files = {
        "zoo/__init__.py": "",
        "zoo/a.py": "from zoo.b import thing\nimport os\n",  # a name from a module: that module
        "zoo/b.py": "def f():\n    from . import c\n",  # function-local, relative, a submodule by name
        "zoo/c.py": "import zoo.sub.d\nfrom zoo import nothing\n",  # a name from a package: the package
        "zoo/sub/__init__.py": "from .d import x\n",
        "zoo/sub/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n",
        "plugins/__init__.py": "",
        "plugins/p.py": "from zoo_plugins import q\nfrom zoo.sub import d\n",
        "plugins/q.py": "import zoo\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph == {"zoo": {}, "zoo.a": {"zoo.b": 1}, "zoo.b": {"zoo.c": 2}, "zoo.c": {"zoo.sub.d": 1, "zoo": 2},
                     "zoo.sub": {"zoo.sub.d": 1}, "zoo.sub.d": {"zoo.a": 3}, "zoo_plugins": {},
                     "zoo_plugins.p": {"zoo_plugins.q": 1, "zoo.sub.d": 2}, "zoo_plugins.q": {"zoo": 1}}
    assert cycles(graph) == [["zoo.a", "zoo.b", "zoo.c", "zoo.sub.d"]]
    assert cycles(within(graph, "zoo.sub")) == []  # the cycle leaves zoo.sub
    assert "zoo.sub.d:3 → zoo.a" in describe(graph, cycles(graph))
    (tmp_path / "zoo/sub/__init__.py").write_text("def f():\n    from zoo.sub.d import x\n")
    (tmp_path / "zoo/sub/d.py").write_text("import zoo.sub\n")
    assert cycles(within(import_graph(tmp_path), "zoo.sub")) == [["zoo.sub", "zoo.sub.d"]]


@pytest.mark.parametrize("scope", SCOPES)
def test_no_import_cycle_within(scope):
    graph = within(import_graph(), scope)
    assert len(graph) > 1, f"no modules found in {scope!r}"
    found = cycles(graph)
    assert not found, f"import cycles among the modules of {scope}:\n{describe(graph, found)}"


def test_the_whole_tree_has_no_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    assert not found, f"import cycles among the modules of zoo and zoo_plugins:\n{describe(graph, found)}"
