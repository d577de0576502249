"""``zoo plugins [--json]``: the loaded plugins and what each registers; ``zoo plugins new NAME``
writes a plugin skeleton."""
from __future__ import annotations

import argparse
import json

from zoo import hookimpl


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from zoo.app import add_new_command

    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_new_command(parser)  # `zoo plugins new NAME`


def plugins_payload() -> list[dict]:
    """One entry per plugin (loaded or failed): its distribution, what it registers, its error."""
    from zoo.app import get_registry

    registry = get_registry()
    algorithms = registry.entries("algorithms")
    return [{"name": p.name, "distribution": p.distribution, "version": p.version, "builtin": p.builtin,
             "registers": p.registers, "error": p.error,
             "descriptions": {name: algorithms[name].obj.description
                              for name in p.registers.get("algorithms", []) if name in algorithms}}
            for p in registry.plugins.values()]


def _run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from zoo.app import console

    payload = plugins_payload()
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    table = Table(title="zoo plugins")
    for column in ("plugin", "distribution", "version", "registers", "status"):
        table.add_column(column)
    for p in payload:
        registers = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in p["registers"].items())
        status = "[red]failed[/]" if p["error"] else "[green]ok[/]"
        table.add_row(p["name"], p["distribution"], p["version"], registers, status)
    console.print(table)
    algorithms = Table(title="algorithms")
    for column in ("algorithm", "plugin", "description"):
        algorithms.add_column(column)
    for p in payload:
        for name, description in p["descriptions"].items():
            algorithms.add_row(name, p["name"], description)
    console.print(algorithms)
    for p in payload:  # in full below the table: a reason cut to a column's width would not help
        if p["error"]:
            console.print(f"[red]failed:[/] {p['name']} ({p['distribution']} {p['version']}): {p['error']}",
                          highlight=False, soft_wrap=True)
    return 0


@hookimpl
def zoo_register_commands(register):
    register("plugins", _add_arguments, _run, "list loaded plugins and what they register")
