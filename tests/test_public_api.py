"""Built-in plugins use the public API only: the front modules, nothing deeper, no other plugin.

A built-in plugin gets no back door a third-party plugin lacks (docs/architecture.md): it may
import ``zoo``, ``zoo.losses``, ``zoo.eval``, ``zoo.bench``, ``zoo.app.pairs`` and ``zoo.testing``, and every name it
imports from them must be one they export.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import zoo_plugins

FRONT_MODULES = ("zoo", "zoo.losses", "zoo.eval", "zoo.bench", "zoo.app.pairs", "zoo.testing")
PLUGIN_ROOT = Path(zoo_plugins.__file__).parent
PLUGIN_FILES = sorted(PLUGIN_ROOT.rglob("*.py"))


def imports_of(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute import in ``path``, at any depth (lazy imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or ""), [a.name for a in node.names]))
            else:
                found.append((node.lineno, node.module or "", [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
    return found


def test_the_scan_sees_every_built_in_plugin():
    names = {path.stem for path in PLUGIN_FILES if not path.name.startswith("_")}
    assert {"dpo", "ppo", "mmlu", "fables", "tiny_reviews", "train", "plugins", "eval", "bench"} <= names


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(PLUGIN_ROOT)))
def test_plugin_imports_only_front_modules(path):
    wrong = []
    for line, module, names in imports_of(path):
        where = f"{path.relative_to(PLUGIN_ROOT)}:{line}"
        if module.startswith(".") or module == "zoo_plugins" or module.startswith("zoo_plugins."):
            wrong.append(f"{where} imports the plugin module {module!r}: plugins do not import each other")
        elif (module == "zoo" or module.startswith("zoo.")) and module not in FRONT_MODULES:
            wrong.append(f"{where} imports {module!r}; import from one of {', '.join(FRONT_MODULES)}")
        elif module in FRONT_MODULES:
            front = importlib.import_module(module)
            missing = [name for name in names if name not in front.__all__]
            if missing:
                wrong.append(f"{where} imports {', '.join(missing)} from {module!r}, which does not export them")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", FRONT_MODULES)
def test_every_exported_name_resolves(module):
    front = importlib.import_module(module)
    exported = getattr(front, "__all__", None)
    assert exported, f"{module} declares no __all__"
    unresolved = [name for name in exported if getattr(front, name, None) is None]
    assert not unresolved, f"{module}.__all__ names what it cannot provide: {unresolved}"


def test_the_checker_catches_a_deep_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from zoo.models import load_causal_lm\n\ndef f():\n    from zoo_plugins.algorithms.dpo import DPO\n")
    assert [(module, names) for _, module, names in imports_of(bad)] == [
        ("zoo.models", ["load_causal_lm"]), ("zoo_plugins.algorithms.dpo", ["DPO"])]
