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
from zoo.progress import check_environment
from zoo.registry import get_registry
from zoo.signals import RunInterrupted, Stop, signal_name, stop_on_signals
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


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, taking KEY=VALUE overrides given after a flag (``CFG --overwrite a.b=1``) as overrides."""
    args, extra = parser.parse_known_args(argv)
    late = [item for item in extra if "=" in item and not item.startswith("-")]
    if extra and (len(late) != len(extra) or not isinstance(getattr(args, "overrides", None), list)):
        parser.parse_args(argv)  # argparse's own message and exit status for what is left
    if late:
        args.overrides = [*args.overrides, *late]
    return args


def _warn_failed_plugins() -> None:
    """Name every plugin that failed to load, once per command: not only when its algorithm is chosen."""
    for plugin in get_registry().plugins.values():
        if plugin.error:
            err_console.print(f"[yellow]warning:[/] plugin {plugin.describe()} (ignored; see zoo plugins)",
                              highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    from zoo.allocator import keep_large_allocations_mapped

    keep_large_allocations_mapped()  # or the resident size grows with every training step (zoo.allocator)
    _quiet_libraries()
    try:
        parser = build_parser()
        args = _parse(parser, argv)
        _warn_failed_plugins()
        check_environment()
        # Every command stops on SIGINT/SIGTERM with 130/143 and a message, even when started in the
        # background by a script (the shell then ignores SIGINT for it, and Python would too).
        with stop_on_signals():
            try:
                return int(args._run(args) or 0)
            except Stop as stop:
                raise RunInterrupted(f"zoo {args.command} was stopped by {signal_name(stop.signum)} before it "
                                     f"finished; what it had not written yet is lost, files written before are "
                                     f"intact.", signum=stop.signum, resumable=False) from None
    except ZooError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
