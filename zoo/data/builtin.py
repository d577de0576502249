"""Built-in data sets: deterministic generators registered by plugins, needing no download."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BuiltinDataset:
    """A named generator of rows in the usual column conventions.

    ``build(size, seed)`` returns ``size`` rows (dicts) and must be deterministic in ``seed``.
    ``shape`` says which columns the rows carry (``sft``, ``pairwise``, ``ranked``, ``unpaired`` or
    ``prompt``).
    """

    name: str
    shape: str
    build: Callable[[int, int], list[dict[str, Any]]]
    description: str = ""
