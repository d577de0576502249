"""``zoo plugins new NAME``: write a ready-to-install algorithm plugin distribution.

The skeleton is a working plugin, not a stub: a small real algorithm registered under NAME
through the ``zoo`` entry point, its tests (a hand-computed loss and
:func:`zoo.testing.assert_algorithm_conforms`), a config selecting it by name and a README. Its
tests pass as generated, so an author starts from green and sees the moment a change breaks the
contract. The files are rendered from ``zoo/app/templates/plugin/``.
"""
from __future__ import annotations

import argparse
import re
from importlib import metadata
from pathlib import Path

from rich.console import Console

from zoo.errors import ConfigError

TEMPLATES = Path(__file__).parent / "templates" / "plugin"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

#: template file → path in the skeleton (formatted with the same fields as the templates).
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "{package}/__init__.py",
    "algorithm.py.tmpl": "{package}/{name}.py",
    "test_algorithm.py.tmpl": "tests/test_{name}.py",
    "config.yaml.tmpl": "configs/{name}.yaml",
    "gitignore.tmpl": ".gitignore",
}


def _suggest(name: str) -> str:
    """The closest valid name: lowercase, other characters turned into underscores."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")
    if cleaned and not cleaned[0].isalpha():
        cleaned = "algo_" + cleaned
    return cleaned or "my_algorithm"


def check_name(name: str) -> None:
    """NAME becomes the algorithm's name, its module and part of the package name."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"plugin name {name!r} must start with a lowercase letter and contain only lowercase "
                          f"letters, digits and underscores (it names the algorithm and its Python module); "
                          f"try {_suggest(name)!r}")
    from zoo.registry import get_registry

    entries = get_registry().entries("algorithms")
    if name in entries:
        raise ConfigError(f"plugin name {name!r}: an algorithm of that name is already registered by plugin "
                          f"{entries[name].plugin!r}, so the two would clash when installed; try 'my_{name}'")


def fields_for(name: str) -> dict[str, str]:
    try:
        zoo_version = metadata.version("alignment-zoo")
    except metadata.PackageNotFoundError:
        zoo_version = "0.1.0"
    return {
        "name": name,
        "package": f"zoo_{name}",
        "distribution": "zoo-" + name.replace("_", "-"),
        "class_name": "".join(part.capitalize() for part in name.split("_") if part),
        "zoo_version": zoo_version,
    }


def render(text: str, fields: dict[str, str], template: str) -> str:
    def substitute(match: re.Match) -> str:
        key = match.group(1)
        if key not in fields:
            raise KeyError(f"template {template} uses unknown placeholder {{{{{key}}}}}")
        return fields[key]

    return PLACEHOLDER.sub(substitute, text)


def write_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write the skeleton of plugin ``name`` into ``directory/zoo-NAME`` and return that folder."""
    check_name(name)
    fields = fields_for(name)
    root = Path(directory) / fields["distribution"]
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{str(root)!r} already exists and is not empty; choose another --dir or NAME, "
                          f"or remove it first")
    for template, target in LAYOUT.items():
        path = root / target.format(**fields)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render((TEMPLATES / template).read_text(encoding="utf-8"), fields, template), encoding="utf-8")
    return root


# ----- the CLI sub-command -------------------------------------------------------------------


def add_new_command(plugins_parser: argparse.ArgumentParser) -> None:
    """Add ``new NAME [--dir DIR]`` under ``zoo plugins`` (which keeps working without it)."""
    actions = plugins_parser.add_subparsers(dest="plugins_action", metavar="{new}")
    new = actions.add_parser("new", help="write a ready-to-install algorithm plugin skeleton",
                             description="Write a plugin distribution zoo-NAME: a small real algorithm "
                                         "registered as NAME, its tests, a config and a README.")
    new.add_argument("name", help="the algorithm's name: lowercase letters, digits and underscores")
    new.add_argument("--dir", default=".", help="folder in which to create zoo-NAME/ (default: .)")
    new.set_defaults(_run=run_new)


def run_new(args: argparse.Namespace) -> int:
    root = write_plugin(args.name, args.dir)
    console = Console()
    console.print(f"[bold]wrote the plugin skeleton[/] {root}")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        console.print(f"  {path.relative_to(root)}")
    console.print(f"next: cd {root} && pip install -e '.[test]' && python -m pytest && zoo plugins",
                  markup=False, highlight=False, soft_wrap=True)
    return 0
