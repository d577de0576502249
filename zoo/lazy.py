"""Front modules that import their heavier exports on first use.

A front module (:mod:`zoo`, :mod:`zoo.rollout`, :mod:`zoo.data`, :mod:`zoo.app`) lists what it
exports by owning module; :func:`lazy_exports` gives it the module-level ``__getattr__`` and
``__dir__`` that import an owner when one of its names is first read. So ``import zoo`` (which
every plugin does when the registry loads it) costs only the light modules it imports eagerly.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(namespace: dict[str, Any],
                 owners: Mapping[str, tuple[str, ...]]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module whose globals are ``namespace``: each name in
    ``owners[module]`` is read from ``module`` on first use, then kept in ``namespace``."""
    owner = {name: module for module, names in owners.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in owner:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(owner[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(owner))

    return __getattr__, __dir__
