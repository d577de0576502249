"""User-facing errors.

A :class:`ZooError` is a mistake the user can fix (a bad config key, a malformed data row, an
unknown algorithm). The CLI prints its message as one paragraph and exits with status 2, without
a traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """An error caused by user input, reported without a traceback."""


class ConfigError(ZooError):
    """A config key is unknown, of the wrong type, or out of range."""


class DataError(ZooError):
    """A data file or row is malformed. The message names the file, the row and the field."""

    def __init__(self, message: str, *, source: str | None = None, row: int | None = None,
                 field: str | None = None):
        where = []
        if source is not None:
            where.append(str(source))
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.source, self.row, self.field = source, row, field


class PluginError(ZooError):
    """A plugin failed to load or registered something invalid."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean ...?)' hint for a misspelt name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
