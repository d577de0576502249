"""The list of files a run wrote into its output directory (``.zoo-files``), so that ``--overwrite``
removes those and nothing else.

A path is appended, and the list fsynced, *before* the file it names is created: a run killed at
any point leaves no file of its own unlisted. A file a user puts into the run's folders
(``checkpoints/mine.pt``, ``model/extra/notes.txt``) is never listed, so never removed.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

MARKER = ".zoo-run"
FILES = ".zoo-files"


def _relative(output_dir: Path, path: str | Path) -> str:
    """``path`` relative to ``output_dir``; a relative ``path`` that does not start there is taken as inside it."""
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    base = Path(os.path.abspath(output_dir))
    if absolute.is_relative_to(base):
        path = absolute.relative_to(base)
    return PurePosixPath(*path.parts).as_posix()


def record(output_dir: str | Path, paths: Iterable[str | Path]) -> None:
    """Add ``paths`` (inside ``output_dir``) to its list of run files; a folder without a marker is left alone."""
    output_dir = Path(output_dir)
    if not (output_dir / MARKER).is_file():
        return  # not a run directory (a test's or a tool's own folder): nothing to keep a list for
    known = recorded(output_dir)
    lines = [name for name in dict.fromkeys(_relative(output_dir, p) for p in paths) if name not in known]
    if not lines:
        return
    fd = os.open(output_dir / FILES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in lines))
        handle.flush()
        os.fsync(handle.fileno())


def recorded(output_dir: str | Path) -> set[str]:
    """The relative paths listed for ``output_dir`` (empty if it has no list)."""
    try:
        text = (Path(output_dir) / FILES).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return {line for line in text.splitlines() if line and not line.startswith("/") and ".." not in line.split("/")}


def has_list(output_dir: str | Path) -> bool:
    return (Path(output_dir) / FILES).is_file()


def remove_recorded(output_dir: Path, folders: Iterable[str]) -> None:
    """Delete every listed file, then the run's ``folders`` (and folders in them) left empty; empty the list.

    Raises OSError (with its filename) when a listed file cannot be removed.
    """
    for name in sorted(recorded(output_dir)):
        entry = output_dir / name
        if entry.is_symlink() or entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    for folder in folders:
        top = output_dir / folder
        if not top.is_dir() or top.is_symlink():
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda item: -len(Path(item[0]).parts)):
            with contextlib.suppress(OSError):  # not empty: something the user put there stays
                os.rmdir(directory)
    with open(output_dir / FILES, "w", encoding="utf-8") as handle:
        handle.flush()
        os.fsync(handle.fileno())
