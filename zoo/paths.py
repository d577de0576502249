"""Keeping files where they belong: names that are safe as file names, paths that stay inside a root.

Registered names (algorithms, suites, rewards, ...) end up in file names, e.g. an evaluation's
``samples_<suite>.jsonl``; :func:`require_safe_name` keeps them to one harmless path component.
:func:`contained_path` joins parts that come from data or configs onto an output directory and
refuses any result outside it (``..``, absolute parts, symlinks pointing out).
"""
from __future__ import annotations

import re
from pathlib import Path

from zoo.errors import ConfigError

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")


def is_safe_name(name: object) -> bool:
    """True for a non-empty name of letters, digits, ``_``, ``.`` and ``-`` that does not start with a dot."""
    return isinstance(name, str) and len(name) <= 128 and bool(_SAFE_NAME.match(name))


def require_safe_name(name: object, what: str) -> str:
    if not is_safe_name(name):
        raise ConfigError(f"{what} {name!r} is not a safe name: use letters, digits, '_', '.' and '-', "
                          f"starting with a letter or digit (at most 128 characters).")
    return name  # type: ignore[return-value]


def contained_path(root: str | Path, *parts: str | Path) -> Path:
    """``root / parts``, refusing a result that resolves outside ``root``."""
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if not target.is_relative_to(base):
        joined = "/".join(str(p) for p in parts)
        raise ConfigError(f"the path {joined!r} would leave the output directory {str(base)!r}; "
                          f"names used in file names may not contain '..' or start at '/'.")
    return target
