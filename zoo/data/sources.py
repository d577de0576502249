"""Reading raw rows from built-in generators, local files or the Hugging Face Hub.

Local files keep their row numbers (1-based data rows; for JSON Lines the line number) so that a
malformed row can be reported as ``FILE, row N, field F``.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, DataError

BUILTIN_PREFIX = "builtin:"
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".parquet")


@dataclass
class Rows:
    """Rows read from one source, each with its 1-based row number."""

    source: str
    rows: list[tuple[int, dict[str, Any]]]
    shape: str | None = None  # known for built-in generators
    #: Messages of unreadable rows dropped by ``skip_bad`` (invalid JSON or UTF-8, not an object).
    skipped: list[str] = field(default_factory=list)


#: What a missing, truncated or corrupt (gzip) file raises while it is read.
_READ_ERRORS = (OSError, EOFError, zlib.error)


def _unreadable(path: Path, exc: BaseException, lines_read: int = 0) -> DataError:
    # No row is named: the file itself is damaged, so skipping rows (on_bad_rows: skip) cannot help.
    kind = "corrupt compressed data" if isinstance(exc, zlib.error) else type(exc).__name__
    where = f" after line {lines_read}" if lines_read else ""
    return DataError(f"cannot read the file{where} ({kind}: {exc})", source=str(path))


def _read_text(path: Path) -> str:
    """The whole file as text; bytes that are not UTF-8 become lone surrogates (see :func:`_bad_utf8`).

    Decoding this way lets the row and field holding a bad byte be named, instead of failing the
    whole file at an offset.
    """
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as handle:
            data = handle.read()
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    text = data.decode("utf-8", errors="surrogateescape")
    return text[1:] if text.startswith("\ufeff") else text  # a byte-order mark (Excel's CSVs) is not data


def _bad_utf8(value: Any, name: str) -> str | None:
    """The (nested) field of ``value`` holding text that was not valid UTF-8, or None."""
    if isinstance(value, str):
        return name if any("\udc80" <= c <= "\udcff" for c in value) else None
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in children:
        child = f"{name}[{key}]" if isinstance(key, int) else (f"{name}.{key}" if name else str(key))
        found = _bad_utf8(item, child)
        if found is not None:
            return found
    return None


def _utf8_checked(path: Path, row_no: int, row: Any) -> Any:
    field = _bad_utf8(row, "")
    if field is None:
        return row
    return DataError("invalid UTF-8", source=str(path), row=row_no, field=field or None)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
    """Rows of a JSON Lines file; a line that is not UTF-8 or not JSON is yielded as its DataError.

    Lines are decoded one at a time: a text wrapper decodes ahead in chunks and would blame an
    earlier line for a bad byte.
    """
    line_no = 0
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield line_no, DataError(f"invalid UTF-8 ({exc.reason} at byte {exc.start} of the line)",
                                             source=str(path), row=line_no)
                    continue
                if not line.strip():
                    continue
                try:
                    yield line_no, json.loads(line.rstrip("\r\n"))  # columns counted on this line
                except json.JSONDecodeError as exc:
                    yield line_no, DataError(f"invalid JSON ({exc.msg} at column {exc.colno})",
                                             source=str(path), row=line_no)
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc, line_no) from None


def _read_json(path: Path) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                        source=str(path)) from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError("expected a JSON list of objects (or {\"data\": [...]})", source=str(path))
    for row_no, row in enumerate(data, start=1):
        yield row_no, _utf8_checked(path, row_no, row)


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
    try:
        reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
        if _bad_utf8(list(reader.fieldnames or []), "header"):
            raise DataError("invalid UTF-8 in the header line", source=str(path))
        for row_no, row in enumerate(reader, start=1):
            if None in row:
                yield row_no, DataError(f"has {len(reader.fieldnames or []) + len(row[None])} columns, the "
                                        f"header has {len(reader.fieldnames or [])}", source=str(path),
                                        row=row_no)
                continue
            yield row_no, _utf8_checked(path, row_no, dict(row))
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", source=str(path)) from None


def _read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"cannot read the Parquet file ({type(exc).__name__}: {exc})", source=str(path)) from None
    yield from enumerate(table.to_pylist(), start=1)


@dataclass
class RowStream:
    """Rows of one source as they are read: ``(row number, row or its DataError)``.

    ``total`` is the number of rows when it is known without reading them all (None otherwise);
    a JSON Lines or CSV file is read line by line, so a consumer that stops early (``data.max_examples``)
    never reads the rest of the file.
    """

    source: str
    items: Iterator[tuple[int, dict[str, Any] | DataError]]
    shape: str | None = None
    total: int | None = None

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
        path = self.source
        for row_no, row in self.items:
            if not isinstance(row, (dict, DataError)):
                row = DataError(f"expected an object with named fields, got {type(row).__name__}",
                                source=path, row=row_no)
            yield row_no, row


def _count_lines(path: Path) -> int | None:
    """Non-empty lines of an uncompressed text file (a cheap byte scan), else None."""
    if path.name.endswith(".gz"):
        return None
    try:
        count, last = 0, b"\n"
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
        return count + (last != b"\n")
    except OSError:
        return None


def stream_file(path: Path) -> RowStream:
    """The rows of a local file, read lazily where the format allows (JSON Lines, CSV)."""
    name = path.name
    total = None
    if name.endswith((".jsonl", ".jsonl.gz")):
        rows, total = _read_jsonl(path), _count_lines(path)
    elif name.endswith((".json", ".json.gz")):
        rows = _read_json(path)
    elif name.endswith(".csv"):
        rows = _read_csv(path)
    elif name.endswith(".parquet"):
        rows = _read_parquet(path)
    else:
        raise DataError(f"unsupported file type; use one of {', '.join(SUFFIXES)}", source=str(path))
    return RowStream(str(path), rows, total=total)


def collect(stream: RowStream, *, skip_bad: bool = False) -> Rows:
    """All rows of ``stream``; ``skip_bad`` drops (and records) unreadable rows instead of raising."""
    collected, skipped = [], []
    for row_no, row in stream:
        if isinstance(row, DataError):
            if not skip_bad:
                raise row
            skipped.append(str(row))
            continue
        collected.append((row_no, row))
    return Rows(stream.source, collected, shape=stream.shape, skipped=skipped)


def read_file(path: Path, *, skip_bad: bool = False) -> Rows:
    """Rows of a local file; ``skip_bad`` drops (and records) unreadable rows instead of raising."""
    return collect(stream_file(path), skip_bad=skip_bad)


def _find_split_file(directory: Path, split: str) -> Path:
    candidates = [p for p in sorted(directory.iterdir()) if p.name.startswith(split) and p.name.endswith(SUFFIXES)]
    if not candidates:
        raise ConfigError(f"data directory {str(directory)!r} has no file for split {split!r} "
                          f"(looked for {split}*{{{', '.join(SUFFIXES)}}})")
    if len(candidates) > 1:  # a stale copy beside the real file, or shards: picking one would be a guess
        names = ", ".join(p.name for p in candidates)
        raise ConfigError(f"data directory {str(directory)!r} has {len(candidates)} files for split {split!r} "
                          f"({names}); name the file itself, e.g. {str(candidates[0])!r}, or move the others "
                          f"out of the folder.")
    return candidates[0]


def stream_rows(spec: str, *, split: str = "train", builtin_size: int = 512, seed: int = 0,
                limit: int | None = None) -> RowStream:
    """Rows from ``builtin:NAME``, a local file or directory, or a hub data set name, read lazily.

    ``limit`` tells a hub data set that at most about this many rows will be used, so that it is
    streamed instead of downloaded whole.
    """
    if spec.startswith(BUILTIN_PREFIX):
        from zoo.registry import get_registry

        dataset = get_registry().get("datasets", spec[len(BUILTIN_PREFIX):])
        offset = {"train": 0, "test": 1, "validation": 2}.get(split, 3)
        generated = dataset.build(builtin_size, seed * 1000 + offset)
        return RowStream(spec, iter(enumerate(generated, start=1)), shape=dataset.shape, total=len(generated))
    path = Path(spec).expanduser()
    if path.is_dir():
        return stream_file(_find_split_file(path, split))
    if path.exists():
        return stream_file(path)
    if spec.endswith(SUFFIXES) or spec.startswith((".", "/", "~")):
        raise ConfigError(f"data file {spec!r} does not exist")
    return _stream_hub(spec, split, streaming=limit is not None)


def read_rows(spec: str, *, split: str = "train", builtin_size: int = 512, seed: int = 0,
              skip_bad: bool = False) -> Rows:
    """Rows from ``builtin:NAME``, a local file or directory, or a hub data set name.

    ``skip_bad``: drop unreadable rows of a local file (recorded in ``Rows.skipped``) instead of
    raising their DataError.
    """
    return collect(stream_rows(spec, split=split, builtin_size=builtin_size, seed=seed), skip_bad=skip_bad)


def _stream_hub(name: str, split: str, streaming: bool = False) -> RowStream:
    """A hub data set ``OWNER/NAME``, or ``OWNER/NAME/DIR`` for the files under ``DIR`` of the
    repository (``load_dataset``'s ``data_dir``, e.g. ``Anthropic/hh-rlhf/harmless-base``)."""
    import datasets

    parts = name.split("/")
    repo, data_dir = ("/".join(parts[:2]), "/".join(parts[2:])) if len(parts) > 2 else (name, None)
    try:
        dataset = datasets.load_dataset(repo, split=split, **({"data_dir": data_dir} if data_dir else {}),
                                        **({"streaming": True} if streaming else {}))
    except Exception as exc:  # network, missing split, unknown name: all user-facing
        raise ConfigError(f"could not load data set {name!r} split {split!r} from the Hugging Face Hub "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                          f"Use a local file or directory, or builtin:NAME.") from None
    total = None if streaming else len(dataset)
    return RowStream(f"{name}[{split}]", iter(enumerate(dataset, start=1)), total=total)
