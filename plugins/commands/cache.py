"""``zoo cache``: inspect and clear the reference log-prob cache.

    zoo cache ls              # one row per cache file: key, reference, examples, size, settings
    zoo cache ls --json
    zoo cache clear KEY ...   # delete the named files (a key prefix is enough when unambiguous)
    zoo cache clear --all

The cache lives in ``$ZOO_CACHE_DIR/refcache`` (default ``~/.cache/alignment-zoo/refcache``); see
:mod:`zoo.refcache` for what a file holds and when it is recomputed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from zoo import ConfigError, hookimpl


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("ls", help="list cache files")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    clearing = actions.add_parser("clear", help="delete cache files")
    clearing.add_argument("keys", nargs="*", help="keys (or unique key prefixes) shown by `zoo cache ls`")
    clearing.add_argument("--all", action="store_true", help="delete every cache file")


def _size(num_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return ""


def _list(as_json: bool) -> int:
    """One block per file: the key and its numbers on one line, the reference path whole on the next.

    A table would cut paths and dates to its column widths in an 80-column terminal.
    """
    from zoo.app import cache_root, describe_cache_files

    entries = describe_cache_files()
    if as_json:
        print(json.dumps(entries, indent=2))
        return 0
    console = Console(soft_wrap=True)  # long paths run on rather than being folded or cut
    console.print(f"[bold]reference log-prob cache:[/] {cache_root()} ({len(entries)} file(s))", highlight=False)
    for entry in entries:
        key = entry["key"][:12]  # a prefix: `zoo cache clear` accepts any unique one
        if "error" in entry:
            console.print(f"[bold]{key}[/]  [red]{entry['error']}[/], {_size(entry['bytes'])}", highlight=False)
            console.print(f"    file: {entry['path']}", highlight=False)
            continue
        console.print(f"[bold]{key}[/]  {entry['examples']} examples, {_size(entry['bytes'])}, max_length "
                      f"{entry['max_length']}, precision {entry['precision']}", highlight=False)
        console.print(f"    reference: {entry['reference']}", highlight=False)
        console.print(f"    created: {entry['created']}", highlight=False)
    return 0


def _clear(keys: list[str], everything: bool) -> int:
    from zoo.app import cache_root

    root = cache_root()
    files = sorted(root.glob("*.safetensors")) if root.exists() else []
    if everything == bool(keys):
        raise ConfigError("zoo cache clear: name the keys to delete (see `zoo cache ls`) or pass --all, not both")
    chosen: list[Path] = []
    if everything:
        chosen = files
    for key in keys:
        matches = [f for f in files if f.stem.startswith(key)]
        if len(matches) != 1:
            found = "no cache file" if not matches else f"{len(matches)} cache files"
            raise ConfigError(f"zoo cache clear: {found} under {root} has a key starting with {key!r}; "
                              f"`zoo cache ls` shows the keys.")
        chosen += matches
    for path in chosen:
        path.unlink(missing_ok=True)
    Console().print(f"deleted {len(chosen)} cache file(s) from {root}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.action == "ls":
        return _list(args.json)
    return _clear(args.keys, args.all)


@hookimpl
def zoo_register_commands(register):
    register("cache", _add_arguments, _run, "list or clear the reference log-prob cache")
