"""Typed sections that check their own fields: the base of config sections and algorithm ``Args``.

A subclass names its place in the config with ``key_prefix`` (``train``, ``algorithm_args``...)
and checks its fields in :meth:`Validated.validate` through :meth:`Validated.require`, so every
range error reads ``PREFIX.KEY = VALUE: what is wrong`` and names the key to fix.
"""
from __future__ import annotations

import math
from typing import ClassVar

from zoo.errors import ConfigError


class Validated:
    """Mixin of a dataclass section whose :meth:`validate` raises a :class:`ConfigError` naming the key."""

    key_prefix: ClassVar[str] = ""

    def validate(self) -> None:
        """Check field ranges."""

    def require(self, condition: bool, key: str, message: str) -> None:
        """Raise a ConfigError naming ``PREFIX.KEY`` and its value unless ``condition`` holds."""
        if not condition:
            value = getattr(self, key, None)
            raise ConfigError(f"{self.key_prefix}.{key} = {value!r}: {message}" if self.key_prefix
                              else f"{key} = {value!r}: {message}")

    def require_positive(self, *keys: str) -> None:
        for key in keys:
            value = getattr(self, key)
            self.require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                         key, "must be a finite number > 0")

    def require_fraction(self, key: str, *, inclusive_high: bool = False) -> None:
        value = getattr(self, key)
        ok = isinstance(value, (int, float)) and 0 <= value and (value <= 1 if inclusive_high else value < 1)
        self.require(ok, key, f"must be in [0, 1{']' if inclusive_high else ')'}")
