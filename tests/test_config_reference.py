"""docs/config-reference.md is generated from the config dataclasses and kept in sync with them."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from zoo.app.config_reference import render, section_keys
from zoo.config.sections import Validated
from zoo.registry import reset_registry

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 7


@dataclasses.dataclass
class _Example(Validated):
    """A section."""

    key_prefix: ClassVar[str] = "example"

    #: How many.
    #: Second line of the comment.
    count: int = 2
    ratio: float = 0.5
    mode: Literal["a", "b"] = "a"
    width: int | None = None
    rate: float = 1.0

    def validate(self) -> None:
        for key in ("count", "width"):
            self.require(getattr(self, key) >= 1, key, "must be >= 1")
        self.require(self.count <= LIMIT, "count", f"must be <= {LIMIT} (or {self.width})")
        self.require_fraction("ratio", inclusive_high=True)
        self.require_positive("rate")


def test_each_key_gets_its_type_default_range_and_comment():
    rows = {row.key: row for row in section_keys(_Example, "example.")}
    assert list(rows) == ["example.count", "example.ratio", "example.mode", "example.width", "example.rate"]
    count = rows["example.count"]
    assert (count.type, count.default, count.meaning) == ("int", "2", "How many. Second line of the comment.")
    assert count.range == "must be >= 1; must be <= 7 (or {width})"  # the loop's key, then the f-string's
    assert rows["example.ratio"].range == "must be in [0, 1]"
    assert rows["example.rate"].range == "must be a finite number > 0"
    assert rows["example.mode"].type == "one of ['a', 'b']" and rows["example.mode"].default == '"a"'
    assert rows["example.width"].default == "null" and rows["example.width"].range == "must be >= 1"


def test_the_page_matches_the_code(monkeypatch):
    """Regenerate (built-in plugins only) and compare; on failure run the command in the page's header."""
    monkeypatch.setenv("ZOO_PLUGINS", "")
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS", raising=False)
    reset_registry()
    try:
        page = render()
    finally:
        reset_registry()
    committed = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert page == committed, ("docs/config-reference.md is stale: "
                               "python -m zoo.app.config_reference > docs/config-reference.md")


@pytest.mark.parametrize("key, text", [
    ("train.adam_betas", "must be two numbers in [0, 1)"),
    ("train.weight_decay", "must be >= 0"),
    ("train.gradient_clip_val", "must be > 0 (or null: no clipping)"),
    ("train.eval_batch_size", "must be >= 1 (or null: train.batch_size)"),
])
def test_the_keys_the_issue_found_undocumented_are_there(key, text):
    row = next(line for line in (ROOT / "docs" / "config-reference.md").read_text().splitlines()
               if line.startswith(f"| `{key}` |"))
    assert text in row
