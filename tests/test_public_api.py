"""Built-in plugins use the public API only: the front modules, nothing deeper, no other plugin.

A built-in plugin gets no back door a third-party plugin lacks (docs/architecture.md): it may
import ``zoo``, ``zoo.losses``, ``zoo.rollout``, ``zoo.data``, ``zoo.eval``, ``zoo.bench`` and
``zoo.testing``, and every name it imports from them must be one they export. Commands also import
``zoo.app``, the front of what driving runs takes (loading, planning and training configs, the
registry, the consoles), which an algorithm, suite, task or data set never needs. ``zoo`` itself
stays small (at most 20 names, each documented in docs/writing-plugins.md) and the core imports
the module that owns a name, never a front.
"""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import zoo
import zoo_plugins

#: What every plugin may import from.
PLUGIN_FRONTS = ("zoo", "zoo.losses", "zoo.rollout", "zoo.data", "zoo.eval", "zoo.bench", "zoo.testing")
#: What a command plugin may import from besides.
COMMAND_FRONTS = ("zoo.app",)
FRONT_MODULES = PLUGIN_FRONTS + COMMAND_FRONTS
MAX_ZOO_NAMES = 20
PLUGIN_ROOT = Path(zoo_plugins.__file__).parent
PLUGIN_FILES = sorted(PLUGIN_ROOT.rglob("*.py"))
ROOT = Path(__file__).resolve().parents[1]
ZOO_ROOT = Path(zoo.__file__).parent
#: What a third-party plugin's files look like: the worked example and the skeleton `zoo plugins new` writes.
THIRD_PARTY_FILES = [*sorted((ROOT / "examples").rglob("*.py")),
                     *sorted((ZOO_ROOT / "app" / "templates").rglob("*.py.tmpl"))]


def imports_of(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute import in ``path``, at any depth (lazy imports too)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".tmpl":  # a template's {{placeholders}} are not Python
        text = re.sub(r"\{\{(\w+)\}\}", r"\1", text)
    found = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or ""), [a.name for a in node.names]))
            else:
                found.append((node.lineno, node.module or "", [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
    return found


def _is_command(path: Path) -> bool:
    return path.is_relative_to(PLUGIN_ROOT / "commands")


def test_the_scan_sees_every_built_in_plugin():
    names = {path.stem for path in PLUGIN_FILES if not path.name.startswith("_")}
    assert {"dpo", "ppo", "mmlu", "fables", "tiny_reviews", "train", "plugins", "eval", "bench"} <= names


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(PLUGIN_ROOT)))
def test_plugin_imports_only_front_modules(path):
    allowed = FRONT_MODULES if _is_command(path) else PLUGIN_FRONTS
    wrong = []
    for line, module, names in imports_of(path):
        where = f"{path.relative_to(PLUGIN_ROOT)}:{line}"
        if module.startswith(".") or module == "zoo_plugins" or module.startswith("zoo_plugins."):
            wrong.append(f"{where} imports the plugin module {module!r}: plugins do not import each other")
        elif (module == "zoo" or module.startswith("zoo.")) and module not in allowed:
            wrong.append(f"{where} imports {module!r}; import from one of {', '.join(allowed)}")
        elif module in allowed:
            front = importlib.import_module(module)
            missing = [name for name in names if name not in front.__all__]
            if missing:
                wrong.append(f"{where} imports {', '.join(missing)} from {module!r}, which does not export them")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", THIRD_PARTY_FILES, ids=lambda p: p.name)
def test_third_party_examples_import_only_plugin_fronts(path):
    """The example distribution and the plugin skeleton show third-party authors the same rule."""
    wrong = [f"{path.name}:{line} imports {module!r}" for line, module, _ in imports_of(path)
             if (module == "zoo" or module.startswith("zoo.")) and module not in PLUGIN_FRONTS + COMMAND_FRONTS]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", FRONT_MODULES)
def test_every_exported_name_resolves(module):
    front = importlib.import_module(module)
    exported = getattr(front, "__all__", None)
    assert exported, f"{module} declares no __all__"
    unresolved = [name for name in exported if getattr(front, name, None) is None]
    assert not unresolved, f"{module}.__all__ names what it cannot provide: {unresolved}"
    assert len(set(exported)) == len(exported), f"{module}.__all__ names something twice"


def test_zoo_exports_only_what_plugins_need():
    """At most 20 names; none that only commands use (those are zoo.app's); each one used by a
    plugin that extends the core, the example or the skeleton (ZooError: the errors' base class)."""
    import zoo.app

    assert len(zoo.__all__) <= MAX_ZOO_NAMES, zoo.__all__
    assert not set(zoo.__all__) & set(zoo.app.__all__), "a name is exported by both zoo and zoo.app"
    used = {name for path in [*PLUGIN_FILES, *THIRD_PARTY_FILES] if not _is_command(path)
            for _, module, names in imports_of(path) if module == "zoo" for name in names}
    assert set(zoo.__all__) - used == {"ZooError"}


def test_writing_plugins_documents_each_zoo_name_on_one_line():
    page = (ROOT / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    section = re.split(r"^## .*The `zoo` API.*$", page, flags=re.M)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z_]+)` \|", section, flags=re.M)
    assert sorted(rows) == sorted(zoo.__all__), "docs/writing-plugins.md's table of the zoo API and zoo.__all__ differ"


def test_the_core_imports_owners_not_fronts():
    """A module of the package imports a name from the module that owns it, never from ``zoo`` or
    ``zoo.app`` (the fronts import the core: importing them back is how the core's cycle began)."""
    wrong = [f"{path.relative_to(ZOO_ROOT.parent)}:{line} imports {', '.join(names)} from {module!r}"
             for path in sorted(ZOO_ROOT.rglob("*.py")) for line, module, names in imports_of(path)
             if module in ("zoo", "zoo.app") and names]  # `import zoo` for zoo.__file__ imports no name
    assert not wrong, "\n".join(wrong)


def test_the_checker_catches_a_deep_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from zoo.models import load_causal_lm\n\ndef f():\n    from zoo_plugins.algorithms.dpo import DPO\n")
    assert [(module, names) for _, module, names in imports_of(bad)] == [
        ("zoo.models", ["load_causal_lm"]), ("zoo_plugins.algorithms.dpo", ["DPO"])]
