"""``hellaswag``: commonsense sentence completion (Zellers et al. 2019), validation set, zero-shot.

lm-evaluation-harness's preprocessing: the context is ``ACTIVITY: CTX_A Ctx_b`` (``ctx_b``
capitalised), and the context and each ending are stripped, have ``" [title]"`` replaced by
``". "``, every other ``[...]`` (WikiHow markup) removed and double spaces collapsed. Each ending
is scored as the continuation ``" ENDING"``; metrics ``acc`` and ``acc_norm``. Data: the Hub's
``Rowan/hellaswag`` (validation split), or ``--data-dir DIR`` holding the original JSON Lines as
``DIR/hellaswag/hellaswag_val*.jsonl``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from zoo import hookimpl
from zoo.eval import ChoiceItem, Line, MultipleChoiceSuite, load_hub, local_file, read_jsonl

BRACKETED = re.compile(r"\[.*?\]")


def preprocess(text: str) -> str:
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = BRACKETED.sub("", text)
    return text.replace("  ", " ")


def make_item(item_id: str, row: dict[str, Any]) -> ChoiceItem:
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return ChoiceItem(item_id, preprocess(row["activity_label"] + ": " + context),
                      [preprocess(ending) for ending in row["endings"]], int(row["label"]))


def check_row(line: Line) -> dict[str, Any]:
    row = {"activity_label": line.get("activity_label")}
    for key in ("ctx_a", "ctx_b"):  # either may be empty in the release
        row[key] = line.get(key, allow_empty=True)
    endings = line.get("endings", list)
    if len(endings) < 2 or not all(isinstance(e, str) for e in endings):
        raise line.error("expected a list of at least 2 strings", field="endings")
    label = line.get("label", (int, str))
    if isinstance(label, str) and not label.isdigit() or not 0 <= int(label) < len(endings):
        raise line.error(f"{label!r} is not the index of one of the {len(endings)} endings", field="label")
    return {**row, "endings": endings, "label": int(label)}


class HellaSwag(MultipleChoiceSuite):
    name = "hellaswag"
    description = "HellaSwag validation set, zero-shot, acc and acc_norm (lm-evaluation-harness preprocessing)"

    def load_items(self, data_dir):
        path: Path | None = local_file(data_dir, "hellaswag", "hellaswag_val*.jsonl")
        if path is not None:
            return [make_item(str(line.line), check_row(line)) for line in read_jsonl(path)], str(path)
        rows = load_hub("Rowan/hellaswag", None, "validation")
        return [make_item(str(row.get("ind", i)), row) for i, row in enumerate(rows)], "hub:Rowan/hellaswag"


@hookimpl
def zoo_register_suites(register):
    register(HellaSwag)
