"""The ``zoo`` command line.

Built-in sub-commands: ``train`` and ``plugins``. Plugins add more through the
``zoo_register_commands`` hook (``eval``, ``bench``, ``cache``, ``pairs`` are such plugins).
A :class:`zoo.errors.ZooError` is printed as one paragraph with exit status 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from zoo.errors import PluginError, ZooError
from zoo.registry import get_registry

console = Console()
# Errors are not hard-wrapped: a path or key split by an inserted newline could not be copied.
err_console = Console(stderr=True, soft_wrap=True)


def _quiet_libraries() -> None:
    from zoo.quiet import quiet_libraries

    quiet_libraries()


# ----- zoo train ---------------------------------------------------------------------------------


def _add_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML run config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.max_steps=10")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output_dir")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in output_dir from its newest checkpoint (as resume: auto)")


def _run_train(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from zoo.config import load_config
    from zoo.train import train

    from zoo.signals import RunInterrupted

    config = load_config(args.config, args.overrides)
    try:
        result = train(config, overwrite=args.overwrite, resume=args.resume)
    except RunInterrupted as exc:
        if exc.resumable:
            command = shlex.join(["zoo", "train", args.config, *args.overrides, "--resume"])
            exc.args = (f"{exc} Continue it with: {command}",)
        raise
    if rank_zero_only.rank != 0:  # with several processes, every one runs this command: report once
        return 0
    table = Table(title=f"{config.algorithm}: held-out metrics", show_lines=False)
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for key in sorted(set(result.metrics_before) | set(result.metrics_after)):
        before, after = result.metrics_before.get(key), result.metrics_after.get(key)
        table.add_row(key, "" if before is None else f"{before:.4f}", "" if after is None else f"{after:.4f}")
    if table.row_count:
        console.print(table)
    for line in result.data:
        console.print(f"data: {line}", highlight=False)
    if result.resumed_from is not None:
        console.print(f"resumed from step {result.resumed_from}")
    if result.nonfinite_steps:
        console.print(f"[yellow]{result.nonfinite_steps} step(s) skipped: their loss or gradient was NaN/inf[/]")
    console.print(f"[bold]model, config and metrics written to[/] {result.output_dir}")
    return 0


# ----- zoo plugins --------------------------------------------------------------------------------


def _add_plugins(parser: argparse.ArgumentParser) -> None:
    from zoo.scaffold import add_new_command

    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_new_command(parser)  # `zoo plugins new NAME`


def plugins_payload() -> list[dict]:
    registry = get_registry()
    algorithms = registry.entries("algorithms")
    return [{"name": p.name, "distribution": p.distribution, "version": p.version, "builtin": p.builtin,
             "registers": p.registers, "error": p.error,
             "descriptions": {name: algorithms[name].obj.description
                              for name in p.registers.get("algorithms", []) if name in algorithms}}
            for p in registry.plugins.values()]


def _run_plugins(args: argparse.Namespace) -> int:
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


BUILTIN_COMMANDS = {
    "train": (_add_train, _run_train, "train one algorithm from a YAML config"),
    "plugins": (_add_plugins, _run_plugins, "list loaded plugins and what they register"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="Train and compare LLM alignment algorithms.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, run, help_text) in BUILTIN_COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command_parser)
        command_parser.set_defaults(_run=run)
    registry = get_registry()
    for name, entry in registry.entries("commands").items():
        _add_plugin_command(sub, name, entry.obj, registry.plugins[entry.plugin])
    return parser


def _add_plugin_command(sub: Any, name: str, registered: Any, plugin: Any) -> None:
    """Add a plugin's sub-command; a broken one is reported, and the other commands keep working."""
    if name in BUILTIN_COMMANDS:
        plugin.fail(f"command {name!r} is built in and cannot be replaced")
        return
    if not (isinstance(registered, tuple) and len(registered) == 4 and callable(registered[1])
            and callable(registered[2])):
        plugin.fail(f"command {name!r} must be registered as register(name, add_arguments, run, help)")
        return
    _, add_arguments, run, help_text = registered
    command_parser = sub.add_parser(name, help=help_text, description=help_text)
    try:
        add_arguments(command_parser)
    except (Exception, SystemExit) as exc:  # a plugin bug must not take the whole CLI down
        plugin.fail(f"adding the arguments of command {name!r} raised {type(exc).__name__}: {exc}")

        def run(args: argparse.Namespace, _plugin: Any = plugin) -> int:
            raise PluginError(f"command {name!r} comes from the plugin {_plugin.describe()}")
    command_parser.set_defaults(_run=run)


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_libraries()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args._run(args) or 0)
    except ZooError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
