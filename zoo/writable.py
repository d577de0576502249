"""Checks, made before any work starts, that an output location can be written.

A command that computes for minutes and then fails to write its result loses that work: every
output (``zoo eval --output``, ``zoo pairs`` ``output``, a bench ``cache_dir``, ``$ZOO_CACHE_DIR``)
is checked first. Nothing is created: only the nearest existing folder is looked at.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from zoo.errors import ConfigError


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it goes through a symbolic-link loop"
    if exc.errno == errno.ENAMETOOLONG:
        return "a name in it is too long for the file system"
    return exc.strerror or str(exc)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def check_name_lengths(path: Path, what: str) -> None:
    """Refuse a path with a component longer than the file system allows (found before anything is written)."""
    existing = _nearest_existing(path.absolute())
    try:
        limit = os.pathconf(existing if existing.is_dir() else existing.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise ConfigError(f"{what} = {str(path)!r}: the name {part[:40]!r}... is longer than the {limit} bytes "
                              f"the file system allows; choose a shorter path.")


def check_writable_dir(path: str | Path, what: str) -> Path:
    """Refuse a folder that is a file, lies under a file, or cannot be created or written."""
    path = Path(path).expanduser()
    shown = f"{what} = {str(path)!r}"
    check_name_lengths(path, what)
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{shown} is a file, not a folder; choose another location.")
        existing = _nearest_existing(path)
        if existing.is_symlink() and not existing.exists():
            raise ConfigError(f"{shown} cannot be created: {str(existing)!r} is a broken symbolic link.")
        if not existing.is_dir():
            raise ConfigError(f"{shown} cannot be created: {str(existing)!r} is a file, not a folder; choose another "
                              f"location.")
        path.resolve(strict=False)
    except OSError as exc:
        raise ConfigError(f"{shown} cannot be used: {_reason(exc)}; choose another location.") from None
    except RuntimeError:  # pathlib's report of a symlink loop
        raise ConfigError(f"{shown} cannot be used: it goes through a symbolic-link loop.") from None
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == path else f"cannot be created ({str(existing)!r} is not writable)"
        raise ConfigError(f"{shown} {where}; choose another location.")
    return path


def check_writable_file(path: str | Path, what: str) -> Path:
    """Refuse a file path that is a folder, lies under a file, or whose folder cannot be written."""
    path = Path(path).expanduser()
    try:
        is_dir = path.is_dir()
    except OSError as exc:
        raise ConfigError(f"{what} = {str(path)!r} cannot be used: {_reason(exc)}.") from None
    if is_dir:
        raise ConfigError(f"{what} = {str(path)!r} is a folder; name a file inside it.")
    check_writable_dir(path.parent, f"the folder of {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} = {str(path)!r} exists and is not writable; choose another file.")
    return path
