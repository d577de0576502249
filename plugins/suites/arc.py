"""``arc_easy`` and ``arc_challenge``: AI2 Reasoning Challenge test sets, zero-shot.

Context ``Question: QUESTION\\nAnswer:``, each choice scored as the continuation ``" CHOICE"``;
metrics ``acc`` and ``acc_norm`` (lm-evaluation-harness's ``arc_easy`` / ``arc_challenge``).
Data: the Hub's ``allenai/ai2_arc`` (test split), or ``--data-dir DIR`` holding
``DIR/arc/arc_easy.jsonl`` / ``arc_challenge.jsonl`` with rows
``{"query": "Question: ...", "choices": [...], "gold": int}``.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from zoo import hookimpl
from zoo.eval import ChoiceItem, MultipleChoiceSuite, load_hub, local_root, read_jsonl

QUESTION_PREFIX = "Question: "


def read_arc_file(path: Path) -> list[ChoiceItem]:
    items = []
    for line in read_jsonl(path):
        query = line.get("query")
        choices = line.get("choices", list)
        if len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise line.error("expected a list of at least 2 strings", field="choices")
        gold = line.get("gold", int)
        if not 0 <= gold < len(choices):
            raise line.error(f"{gold} is not the index of one of the {len(choices)} choices", field="gold")
        if not query.startswith(QUESTION_PREFIX):
            query = QUESTION_PREFIX + query
        items.append(ChoiceItem(f"{len(items)}", query + "\nAnswer:", choices, gold))
    return items


class _ARC(MultipleChoiceSuite):
    hub_name: ClassVar[str]
    file_name: ClassVar[str]

    def load_items(self, data_dir):
        root = local_root(data_dir, "arc", self.file_name)
        if root is not None:
            return read_arc_file(root / self.file_name), str(root / self.file_name)
        rows = load_hub("allenai/ai2_arc", self.hub_name, "test")
        items = [ChoiceItem(row["id"], f"{QUESTION_PREFIX}{row['question']}\nAnswer:", list(row["choices"]["text"]),
                            list(row["choices"]["label"]).index(row["answerKey"])) for row in rows]
        return items, f"hub:allenai/ai2_arc/{self.hub_name}"


class ARCEasy(_ARC):
    name = "arc_easy"
    description = "ARC-Easy test set, zero-shot, acc and acc_norm"
    hub_name = "ARC-Easy"
    file_name = "arc_easy.jsonl"


class ARCChallenge(_ARC):
    name = "arc_challenge"
    description = "ARC-Challenge test set, zero-shot, acc and acc_norm"
    hub_name = "ARC-Challenge"
    file_name = "arc_challenge.jsonl"


@hookimpl
def zoo_register_suites(register):
    register(ARCEasy)
    register(ARCChallenge)
