"""The YAML dialect of configs: safe, no duplicated keys, and only ``true``/``false`` as booleans.

:class:`ConfigLoader` is ``yaml.SafeLoader`` (no Python tags, nothing executed) with two changes:

* a key given twice in one mapping is an error naming both lines, where PyYAML silently keeps
  the last value;
* booleans are YAML 1.2's ``true``/``false`` only. YAML 1.1 also reads ``yes``, ``no``, ``on``,
  ``off``, ``y``, ``n`` as booleans, which turned ``reference_cache: off`` or a prompt such as
  ``no`` into ``False``. Those words now stay strings; a key that takes a boolean still accepts
  them (:func:`yaml_1_1_bool`, used by :mod:`zoo.config`).
"""
from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.resolver import BaseResolver

_BOOL_TAG = "tag:yaml.org,2002:bool"
_YAML_1_1_WORDS = {"yes": True, "y": True, "on": True, "no": False, "n": False, "off": False}


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader refusing duplicated keys, with YAML 1.2 booleans."""


# Resolvers are class-level lists keyed by first character: copy them, then swap the bool rule.
ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def _mapping_without_duplicates(loader: ConfigLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    # Only the keys written in this mapping count: a key given here after a merge (`<<: *base`)
    # overrides the merged one, as YAML specifies; it is not a duplicate.
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # SafeConstructor reports an unhashable key itself
        line = key_node.start_mark.line + 1
        if key in first_line:
            raise ConstructorError(None, None, f"duplicated key {key!r} (first given on line {first_line[key]}); "
                                               f"give each key once", key_node.start_mark)
        first_line[key] = line
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


ConfigLoader.add_constructor(BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load(text: str) -> Any:
    """Parse one YAML document with :class:`ConfigLoader`."""
    loader = ConfigLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_1_1_bool(value: Any) -> Any:
    """``yes``/``no``/``on``/``off``/``y``/``n`` (any case) as the boolean YAML 1.1 made of them, else ``value``."""
    if isinstance(value, str):
        return _YAML_1_1_WORDS.get(value.strip().lower(), value)
    return value
