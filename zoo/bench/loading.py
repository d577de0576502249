"""Reading a bench config: YAML and overrides into :class:`zoo.bench.config.BenchConfig`, then every check.

The dataclasses live in :mod:`zoo.bench.config`, the checks that need the registry in
:mod:`zoo.bench.checks` (which builds run configs from those dataclasses); this module puts the
two together, so neither imports the other's user.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from zoo.bench.checks import validate_bench
from zoo.bench.config import BenchConfig
from zoo.config import apply_overrides, build_dataclass, read_yaml


def load_bench_config(path: str | Path | None = None, overrides: list[str] | None = None,
                      raw: dict[str, Any] | None = None) -> BenchConfig:
    """Read, validate and cross-check a bench config (nothing is trained or downloaded)."""
    data = copy.deepcopy(raw or {}) if path is None else read_yaml(path)
    data = apply_overrides(data, list(overrides or []))
    config = build_dataclass(BenchConfig, data)
    validate_bench(config)
    return config
