"""Building typed dataclasses from plain mappings (YAML, overrides), with the key and type in every error.

:func:`build_dataclass` checks every key against the dataclass (an unknown key names the closest
known one, an old spelling says the new one) and coerces every value to its annotated type (a
wrong type names the key and the expected type). It serves run configs, bench and pairs
configs, algorithm ``Args``, suite options and task arguments alike.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from typing import Any, Literal, Union

from zoo.config.yaml_dialect import yaml_1_1_bool
from zoo.errors import ConfigError, did_you_mean

#: Integers beyond a C ``int64`` (e.g. ``batch_size=99999999999999999999``) would fail deep in torch.
_INT_LIMIT = 2 ** 63
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{key} = {value!r}: expected {_type_name(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            # YAML 1.1 reads a bare off/on/no/yes as a boolean.
            quote = (f"; YAML reads a bare {'off' if value is False else 'on'} as {str(value).lower()}: "
                     f"write it in quotes, e.g. {key.rsplit('.', 1)[-1]}: \"{'off' if value is False else 'on'}\"")\
                if isinstance(value, bool) and ("off" if value is False else "on") in choices else ""
            raise ConfigError(f"{key} = {value!r}: expected one of {', '.join(map(repr, choices))}"
                              f"{did_you_mean(str(value), map(str, choices))}{quote}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {value!r}: expected a list")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: expected a mapping")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: expected a mapping of {tp.__name__} fields")
        return build_dataclass(tp, value, prefix=key)
    if tp is bool:
        # `yes`/`off`... stay words in YAML (zoo.config.yaml_dialect) but mean a boolean here
        value = yaml_1_1_bool(value)
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} = {value!r}: expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -_INT_LIMIT <= value < _INT_LIMIT:
                raise ConfigError(f"{key} = {value!r}: too large (at most {_INT_LIMIT - 1})")
            return value
        raise ConfigError(f"{key} = {value!r}: expected an integer")
    if tp is float:
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            # YAML 1.1 reads `3e-4` (no dot) as a string; it is plainly meant as a number.
            value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key} = {value!r}: expected a finite number")
            return float(value)
        raise ConfigError(f"{key} = {value!r}: expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} = {value!r}: expected a string")
    return value


def _home(value: Any) -> Any:
    """``~/...`` expanded, in every path key (data files, models, output folders) and lists of them."""
    if isinstance(value, str) and (value == "~" or value.startswith("~/")):
        return os.path.expanduser(value)
    if isinstance(value, list):
        return [_home(item) for item in value]
    return value


def build_dataclass(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``values``, checking every key and type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    renamed = getattr(cls, "renamed_keys", {})  # old spelling -> today's, for a helpful error
    kwargs = {}
    for key, value in values.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key in renamed and key not in fields:
            new = f"{prefix}.{renamed[key]}" if prefix else renamed[key]
            raise ConfigError(f"config key {full!r} is now spelled {new!r}: write {renamed[key]}: {value!r}")
        if key not in fields:
            raise ConfigError(f"unknown config key {full!r}{did_you_mean(str(key), fields)}. "
                              f"Known keys{' under ' + prefix if prefix else ''}: {', '.join(fields)}.")
        kwargs[key] = _coerce(_home(value), hints[key], full)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a missing required field
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None
