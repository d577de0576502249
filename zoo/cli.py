"""The ``zoo`` command line: one sub-command per registered command.

Every sub-command comes from the ``zoo_register_commands`` hook; the built-in ones (``train``,
``plugins``, ``eval``, ``bench``, ``cache``, ``pairs``) are plugins in ``plugins/commands/``.
A :class:`zoo.errors.ZooError` is printed as one paragraph with exit status 2, no traceback.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from zoo.errors import PluginError, ZooError
from zoo.registry import get_registry
from zoo.terminal import err_console


def _quiet_libraries() -> None:
    from zoo.quiet import quiet_libraries

    quiet_libraries()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="Train and compare LLM alignment algorithms.")
    sub = parser.add_subparsers(dest="command", required=True)
    registry = get_registry()
    for name, entry in registry.entries("commands").items():
        _add_plugin_command(sub, name, entry.obj, registry.plugins[entry.plugin])
    return parser


def _add_plugin_command(sub: Any, name: str, registered: Any, plugin: Any) -> None:
    """Add a plugin's sub-command; a broken one is reported, and the other commands keep working."""
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
    from zoo.allocator import keep_large_allocations_mapped

    keep_large_allocations_mapped()  # or the resident size grows with every training step (zoo.allocator)
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
