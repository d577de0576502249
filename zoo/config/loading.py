"""Reading run configs: YAML files, ``key.sub=value`` overrides, and :func:`load_config`.

Configs are read with a ``yaml.SafeLoader`` that refuses duplicated keys and keeps ``off``/``yes``...
as words (:mod:`zoo.config.yaml_dialect`); :func:`load_config` builds the :class:`RunConfig` with
:func:`zoo.config.coerce.build_dataclass` and runs the sections' own checks. The checks that need the
selected algorithm come next, in :func:`zoo.planning.plan_run`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from zoo.config.coerce import build_dataclass
from zoo.config.schema import RunConfig
from zoo.config.yaml_dialect import load as load_yaml
from zoo.errors import ConfigError

def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a mapping")
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"config file {str(path)!r} is empty; a run config sets at least algorithm (e.g. "
                          f"algorithm: dpo) and output_dir. See configs/ for complete examples.")
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                raw: dict[str, Any] | None = None) -> RunConfig:
    """Load a run config and check every section (the algorithm's arguments are checked by
    :func:`zoo.planning.plan_run`)."""
    data = dict(raw or {}) if path is None else read_yaml(path)
    data = apply_overrides(data, list(overrides or []))
    if path is not None and "algorithm" not in data:
        raise ConfigError(f"config file {str(path)!r} does not set algorithm; add e.g. `algorithm: dpo` (or the "
                          f"override algorithm=NAME). Without it the defaults would train 'sft' on preference data.")
    config = build_dataclass(RunConfig, data)
    config.validate()
    return config
