"""The config reference (``docs/config-reference.md``), generated from the config dataclasses.

    python -m zoo.app.config_reference > docs/config-reference.md

One row per key: its type, its default, its allowed range and what it means. Everything comes
from the code, so the page cannot drift from it (``tests/test_config_reference.py`` regenerates it
and compares):

* the meaning is the field's ``#:`` comment in its class;
* the range is what the class's ``validate`` requires of the field: the message of each
  ``self.require(condition, "KEY", "MESSAGE")`` call (a ``for KEY in (...)`` loop around it
  included), and the fixed messages of ``require_positive`` and ``require_fraction``;
* ``Literal`` types list their choices.

The run config's sections come first, then each registered algorithm's ``algorithm_args``.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

from zoo.config.schema import RunConfig

HEADER = """# Config reference

Every key of a run config (`zoo train CONFIG`), with its type, default and allowed range. Generated
from the config dataclasses by `python -m zoo.app.config_reference > docs/config-reference.md`; a test
fails when this page and the code disagree. A key given on the command line (`zoo train CONFIG
train.learning_rate=1e-4`) takes the same values. An unknown key is an error that suggests the
nearest known one.
"""


@dataclasses.dataclass
class KeyDoc:
    key: str
    type: str
    default: str
    range: str
    meaning: str


def _comments(cls: type) -> dict[str, str]:
    """``{field: its #: comment joined into one line}`` for the fields ``cls`` itself declares."""
    try:
        lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        name = text.split(":", 1)[0].strip()
        if pending and ":" in text and name.isidentifier():
            found[name] = " ".join(pending)
        pending = []
    return found


def _message(node: ast.expr, module: Any) -> str | None:
    """A message argument as text: a string, or an f-string with module constants filled in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    namespace = vars(module)
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
            continue
        source = ast.unparse(value.value)
        try:
            parts.append(format(eval(compile(ast.Expression(value.value), "<range>", "eval"), dict(namespace))))
        except Exception:  # depends on the value: another field is named as written, a suggestion is left out
            if not any(isinstance(n, ast.Call) for n in ast.walk(value.value)):
                parts.append("{" + source.replace("self.", "") + "}")
    return "".join(parts)


def _ranges(cls: type) -> dict[str, list[str]]:
    """``{field: [what validate requires of it]}`` from the ``validate`` of ``cls`` and its bases."""
    ranges: dict[str, list[str]] = {}
    checks = [method for klass in reversed(cls.__mro__) for name, method in vars(klass).items()
              if name == "validate" or name.startswith("check_")]
    for validate in checks:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(validate)))
        except (OSError, TypeError, SyntaxError):
            continue
        module = sys.modules[validate.__module__]
        loops: dict[str, list[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Tuple):
                names = [e.value for e in node.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                loops[node.target.id] = names
        for node in ast.walk(tree):  # a table of checks: ("KEY", condition, "MESSAGE")
            if isinstance(node, ast.Tuple) and len(node.elts) == 3 and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in (node.elts[0], node.elts[2])):
                ranges.setdefault(node.elts[0].value, []).append(node.elts[2].value)
        for node in sorted(ast.walk(tree), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"):
                continue
            method, args = node.func.attr, node.args
            if method == "require" and len(args) == 3:
                if isinstance(args[1], ast.Constant):
                    keys = [args[1].value]
                elif isinstance(args[1], ast.Name):
                    keys = loops.get(args[1].id, [])
                else:
                    keys = []
                message = _message(args[2], module)
                for key in keys if message else []:
                    ranges.setdefault(key, []).append(message)
            elif method == "require_positive":
                for arg in args:
                    if isinstance(arg, ast.Constant):
                        ranges.setdefault(arg.value, []).append("must be a finite number > 0")
            elif method == "require_fraction" and args and isinstance(args[0], ast.Constant):
                inclusive = any(k.arg == "inclusive_high" and isinstance(k.value, ast.Constant) and k.value.value
                                for k in node.keywords)
                ranges.setdefault(args[0].value, []).append(f"must be in [0, 1{']' if inclusive else ')'}")
    return ranges


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _shown(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"' if value else '""'
    return repr(value)


def _type(field: dataclasses.Field) -> str:
    text = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    return text.replace("None", "null").replace("Literal", "one of ")


def _section_class(field: dataclasses.Field) -> type | None:
    default = _default(field)
    if dataclasses.is_dataclass(default):
        return type(default)
    module = sys.modules[RunConfig.__module__]
    for name in str(field.type).replace(" ", "").split("|"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _docstring(cls: type) -> str:
    """The first line of the class's own docstring (not the signature dataclasses writes)."""
    doc = (cls.__doc__ or "").strip()
    return "" if not doc or doc.startswith(f"{cls.__name__}(") else doc.splitlines()[0]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section_keys(cls: type, prefix: str) -> Iterator[KeyDoc]:
    """One :class:`KeyDoc` per key of the dataclass ``cls``; nested sections follow their key."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        comments.update(_comments(klass))
    ranges = _ranges(cls)
    nested = []
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        section = _section_class(field)
        if section is not None:
            nested.append((field, section))
            continue
        yield KeyDoc(key, _type(field), _shown(_default(field)), "; ".join(ranges.get(field.name, [])),
                     comments.get(field.name, ""))
    for field, section in nested:
        optional = "null" in _type(field)
        yield KeyDoc(f"{prefix}{field.name}", "section" + (" or null" if optional else ""),
                     "null" if _default(field) is None else "(section)", "",
                     comments.get(field.name, "") or _docstring(section))
        yield from section_keys(section, f"{prefix}{field.name}.")


def _table(rows: list[KeyDoc]) -> list[str]:
    lines = ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| `{row.key}` | {_cell(row.type)} | `{_cell(row.default)}` | {_cell(row.range)} "
                     f"| {_cell(row.meaning)} |")
    return lines


def render() -> str:
    """The whole page: the run config, then the ``algorithm_args`` of every registered algorithm."""
    from zoo.registry import get_registry

    lines = [HEADER, "## Run config", ""]
    lines += _table(list(section_keys(RunConfig, "")))
    lines += ["", "## `algorithm_args`, per algorithm", "",
              "Checked against the algorithm's own dataclass; online algorithms share the sampling keys."]
    for name, entry in sorted(get_registry().entries("algorithms").items()):
        cls = entry.obj
        description = getattr(cls, "description", "")
        lines += ["", f"### `{name}`", "", description, ""]
        rows = list(section_keys(cls.Args, "algorithm_args.")) if dataclasses.is_dataclass(cls.Args) else []
        lines += _table(rows) if rows else ["No keys."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
