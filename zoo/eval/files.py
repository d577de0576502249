"""Reading evaluation data: the original release files with line numbers, or the Hugging Face Hub.

Every problem in a local file is a :class:`zoo.errors.DataError` that names the file and the line
(``FILE, line N, field F: message``), so a hand-edited or truncated file can be fixed at once.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, DataError


class Line:
    """One record of a local file and where it came from, for error messages."""

    def __init__(self, path: Path | str, line: int, value: Any):
        self.path, self.line, self.value = str(path), line, value

    def error(self, message: str, field: str | None = None) -> DataError:
        return DataError(message, source=f"{self.path}, line {self.line}", field=field)

    def get(self, field: str, kind: type | tuple[type, ...] = str, *, allow_empty: bool = False) -> Any:
        """The field's value, which must exist and be of ``kind`` (a non-empty string for ``str``
        unless ``allow_empty``)."""
        if not isinstance(self.value, dict):
            raise self.error(f"expected a JSON object, got {type(self.value).__name__}")
        if field not in self.value or self.value[field] is None:
            raise self.error("missing field", field)
        value = self.value[field]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(f"expected {names}, got {type(value).__name__}", field)
        if isinstance(value, str) and not value.strip() and not allow_empty:
            raise self.error("empty string", field)
        return value


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"data file {str(path)!r} does not exist")


def read_jsonl(path: Path) -> Iterator[Line]:
    """Each non-blank line parsed as JSON."""
    _check_exists(path)
    line_no = 0
    try:
        with _open_text(path) as handle:
            for line_no, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    yield Line(path, line_no, json.loads(text))
                except json.JSONDecodeError as exc:
                    raise DataError(f"invalid JSON ({exc.msg} at column {exc.colno})",
                                    source=f"{path}, line {line_no}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"invalid UTF-8 ({exc.reason})", source=f"{path}, line {line_no + 1}") from None


def read_json_list(path: Path) -> Iterator[Line]:
    """The elements of a top-level JSON list, each with the line it starts on."""
    _check_exists(path)
    try:
        with _open_text(path) as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"invalid UTF-8 ({exc.reason})", source=str(path)) from None
    decoder = json.JSONDecoder()

    def where(position: int) -> str:
        return f"{path}, line {text.count(chr(10), 0, position) + 1}"

    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise DataError("expected a JSON list of objects", source=where(position))
    position = _skip_space(text, position + 1)
    if position < len(text) and text[position] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON ({exc.msg})", source=where(exc.pos)) from None
        yield Line(path, text.count("\n", 0, position) + 1, value)
        position = _skip_space(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            return
        raise DataError("invalid JSON (expected ',' or ']' after a list element)", source=where(position))


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def read_csv_rows(path: Path, columns: int) -> Iterator[Line]:
    """Rows of a header-less CSV file that must have exactly ``columns`` fields each."""
    _check_exists(path)
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            start = 1
            for row in reader:
                line = Line(path, start, row)
                start = reader.line_num + 1  # a quoted field may span lines: report the first
                if not row:
                    continue
                if len(row) != columns:
                    raise line.error(f"has {len(row)} columns, expected {columns}")
                yield line
    except UnicodeDecodeError as exc:
        raise DataError(f"invalid UTF-8 ({exc.reason})", source=str(path)) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", source=str(path)) from None


def load_hub(path: str, name: str | None, split: str) -> list[dict[str, Any]]:
    """Rows of a Hugging Face Hub data set; failures become a ConfigError pointing at --data-dir."""
    import datasets

    try:
        dataset = datasets.load_dataset(path, name, split=split)
    except Exception as exc:  # network, missing split, unknown name: all user-facing
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"could not load {path}{'/' + name if name else ''} split {split!r} from the Hugging "
                          f"Face Hub ({type(exc).__name__}: {first}). Pass --data-dir with a local copy of the "
                          f"release files instead.") from None
    return [dict(row) for row in dataset]


def local_root(data_dir: str | Path | None, folder: str, marker: str) -> Path | None:
    """``DATA_DIR/FOLDER`` (or ``DATA_DIR`` itself) when it holds ``marker`` (a name or glob
    pattern); None without ``data_dir``."""
    if data_dir is None:
        return None
    root = Path(data_dir)
    if not root.is_dir():
        raise ConfigError(f"--data-dir {str(root)!r} is not a directory")
    for candidate in (root / folder, root):
        if candidate.is_dir() and any(candidate.glob(marker)):
            return candidate
    raise ConfigError(f"--data-dir {str(root)!r} has no {folder}/{marker} (nor {marker} at its top level)")


def local_file(data_dir: str | Path | None, folder: str, pattern: str) -> Path | None:
    """The first file matching ``pattern`` under :func:`local_root`; None without ``data_dir``."""
    root = local_root(data_dir, folder, pattern)
    return None if root is None else sorted(root.glob(pattern))[0]
