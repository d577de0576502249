"""MMLU (Hendrycks et al., ICLR 2021), scored exactly like lm-evaluation-harness 0.4's ``mmlu`` task.

An item is ``{"subject", "question", "choices": [4 str], "answer": 0-3}``. Its prompt is the
subject's description line, a blank line, the first ``k`` items of the subject's ``dev`` split
with their answers, then the question::

    The following are multiple choice questions (with answers) about high school physics.

    QUESTION 1
    A. ...
    B. ...
    C. ...
    D. ...
    Answer: C

    QUESTION
    A. ...
    ...
    Answer:

(the question text stripped, the choices as given). The prediction is the letter whose
continuation ``" A"`` … ``" D"`` has the highest log-likelihood (the first on ties); the four
letters are single tokens for common tokenizers, so one forward pass scores all four
(:mod:`zoo.eval.loglik`). Subjects group into lm-evaluation-harness's four categories; accuracy
is reported per subject, per category and overall, micro (every question weighs the same,
lm-evaluation-harness's headline number) and macro (every subject weighs the same).

:func:`score_multiple_choice` takes any items in this format, so synthetic knowledge probes are
scored by the same code path as MMLU itself.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import nn

from zoo.errors import ConfigError, DataError, did_you_mean
from zoo.eval.files import load_hub, local_root, read_csv_rows
from zoo.eval.loglik import LoglikScorer, make_requests
from zoo.eval.results import Metric, grouped_metrics, mean_metric

LETTERS = ("A", "B", "C", "D")
HUB_PATH = "cais/mmlu"

#: lm-evaluation-harness's subject → category assignment (its ``mmlu_*_tasks`` tags).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "stem": (
        "abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
        "college_computer_science", "college_mathematics", "college_physics", "computer_security",
        "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
        "high_school_chemistry", "high_school_computer_science", "high_school_mathematics",
        "high_school_physics", "high_school_statistics", "machine_learning"),
    "humanities": (
        "formal_logic", "high_school_european_history", "high_school_us_history", "high_school_world_history",
        "international_law", "jurisprudence", "logical_fallacies", "moral_disputes", "moral_scenarios",
        "philosophy", "prehistory", "professional_law", "world_religions"),
    "social_sciences": (
        "econometrics", "high_school_geography", "high_school_government_and_politics",
        "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology", "human_sexuality",
        "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy"),
    "other": (
        "business_ethics", "clinical_knowledge", "college_medicine", "global_facts", "human_aging", "management",
        "marketing", "medical_genetics", "miscellaneous", "nutrition", "professional_accounting",
        "professional_medicine", "virology"),
}
SUBJECTS: tuple[str, ...] = tuple(sorted(s for subjects in CATEGORIES.values() for s in subjects))
CATEGORY_OF: dict[str, str] = {s: c for c, subjects in CATEGORIES.items() for s in subjects}


# ----- the prompt -------------------------------------------------------------------------------


def description(subject: str) -> str:
    """The description line and blank line that open every prompt of ``subject``."""
    return f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"


def format_question(item: Mapping[str, Any], include_answer: bool = False) -> str:
    """``QUESTION\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:``, plus ``" X"`` when ``include_answer``."""
    choices = item["choices"]
    text = item["question"].strip() + "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, choices))
    text += "\nAnswer:"
    if include_answer:
        text += " " + LETTERS[item["answer"]]
    return text


def build_prompt(item: Mapping[str, Any], shots: Sequence[Mapping[str, Any]], header: str | None = None) -> str:
    """The scored context: description, answered shots (each followed by a blank line), the question."""
    header = description(item["subject"]) if header is None else header
    return header + "".join(format_question(shot, include_answer=True) + "\n\n" for shot in shots) + format_question(item)


def check_item(item: Any, where: str) -> None:
    """Raise a DataError naming ``where`` unless ``item`` is a well-formed MMLU item."""
    if not isinstance(item, Mapping):
        raise DataError(f"expected a mapping, got {type(item).__name__}", source=where)
    for key in ("subject", "question"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise DataError("missing or empty", source=where, field=key)
    choices = item.get("choices")
    if not isinstance(choices, (list, tuple)) or len(choices) != 4 or not all(isinstance(c, str) for c in choices):
        raise DataError("expected 4 strings", source=where, field="choices")
    answer = item.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < 4:
        raise DataError(f"expected an integer 0-3, got {answer!r}", source=where, field="answer")


# ----- loading ----------------------------------------------------------------------------------


def check_subjects(subjects: Sequence[str] | None) -> list[str]:
    if subjects is None:
        return list(SUBJECTS)
    for subject in subjects:
        if subject not in CATEGORY_OF:
            raise ConfigError(f"unknown MMLU subject {subject!r}{did_you_mean(subject, SUBJECTS)}")
    return list(dict.fromkeys(subjects))


def read_split_file(path: Path, subject: str) -> list[dict[str, Any]]:
    """Items of one original-release CSV (no header: ``question,A,B,C,D,answer_letter``)."""
    items = []
    for line in read_csv_rows(path, columns=6):
        question, *choices, letter = line.value
        if not question.strip():
            raise line.error("empty question", field="question")
        if letter.strip() not in LETTERS:
            raise line.error(f"the answer must be one of A, B, C, D, got {letter!r}", field="answer")
        items.append({"id": f"{subject}/{len(items)}", "subject": subject, "question": question,
                      "choices": choices, "answer": LETTERS.index(letter.strip())})
    return items


def load_split(subjects: Sequence[str], split: str, data_dir: str | Path | None = None,
               limit: int | None = None) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Items per subject of ``split`` (the first ``limit`` of each) and a description of the source.

    Reads ``DATA_DIR/mmlu/SPLIT/SUBJECT_SPLIT.csv`` when ``data_dir`` is given, else the Hub's
    ``cais/mmlu``.
    """
    root = local_root(data_dir, "mmlu", split)
    out: dict[str, list[dict[str, Any]]] = {}
    for subject in subjects:
        if root is not None:
            items = read_split_file(root / split / f"{subject}_{split}.csv", subject)
        else:
            rows = load_hub(HUB_PATH, subject, split)
            items = [{"id": f"{subject}/{i}", "subject": subject, "question": row["question"],
                      "choices": list(row["choices"]), "answer": int(row["answer"])} for i, row in enumerate(rows)]
        out[subject] = items[:limit] if limit is not None else items
    return out, str(root) if root is not None else f"hub:{HUB_PATH}"


# ----- scoring ----------------------------------------------------------------------------------


def score_multiple_choice(model: nn.Module, tokenizer, items: Sequence[Mapping[str, Any]],
                          fewshot_items: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
                          *, num_fewshot: int = 5, batch_size: int = 16, header: Callable[[str], str] | None = None,
                          max_length: int | None = None, share_prefix: bool = True, layout: str = "blocks",
                          progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Score MMLU-format items; one record per item, in order.

    Args:
        items: the questions (``subject``, ``question``, ``choices``, ``answer``; optional ``id``).
        fewshot_items: the shot pool, a list (the first ``num_fewshot`` of the item's subject are
            used, in order) or a mapping subject → list.
        header: subject → the text before the shots (default: :func:`description`).
    Returns:
        records with ``id``, ``subject``, ``question``, ``choices``, ``fewshot`` (the shots' ids, in
        order: with the subject's header they rebuild the scored prompt through :func:`build_prompt`),
        ``loglikelihoods`` (4 floats), ``is_greedy``, ``prediction`` and ``gold`` (0-3), ``correct`` (bool).
    """
    if num_fewshot < 0:
        raise ConfigError(f"num_fewshot = {num_fewshot}: must be >= 0")
    pools: dict[str, list[Mapping[str, Any]]] = {}
    if isinstance(fewshot_items, Mapping):
        pools = {subject: list(pool) for subject, pool in fewshot_items.items()}
    else:
        for shot in fewshot_items:
            pools.setdefault(shot["subject"], []).append(shot)
    make_header = header or description
    requests, records = [], []
    for index, item in enumerate(items):
        check_item(item, f"item {index}")
        shots = pools.get(item["subject"], [])[:num_fewshot]
        if len(shots) < num_fewshot:
            raise ConfigError(f"{num_fewshot}-shot needs {num_fewshot} few-shot examples of subject "
                              f"{item['subject']!r}; there are {len(shots)}")
        context = build_prompt(item, shots, make_header(item["subject"]))
        requests += make_requests(tokenizer, context, [" " + letter for letter in LETTERS])
        records.append({"id": item.get("id", f"{item['subject']}/{index}"), "subject": item["subject"],
                        "question": item["question"], "choices": list(item["choices"]),
                        "fewshot": [shot.get("id", f"{shot['subject']}/shot{j}") for j, shot in enumerate(shots)],
                        "gold": item["answer"]})
    scorer = LoglikScorer(model, tokenizer, batch_size=batch_size, max_length=max_length,
                          share_prefix=share_prefix, layout=layout, progress=progress)
    scores = scorer(requests)
    for i, record in enumerate(records):
        choice_scores = scores[4 * i: 4 * i + 4]
        loglikelihoods = [s for s, _ in choice_scores]
        prediction = max(range(4), key=loglikelihoods.__getitem__)  # the first maximum, as numpy's argmax
        record.update(loglikelihoods=loglikelihoods, is_greedy=[g for _, g in choice_scores],
                      prediction=prediction, correct=prediction == record["gold"])
    return records


def mmlu_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, Metric]:
    """Accuracy per subject, per category and overall, micro and macro (``acc``, ``acc_macro``,
    ``CATEGORY/acc``, ``CATEGORY/acc_macro``, ``SUBJECT/acc``), and the spread of letters:
    ``predicted_X`` the share of questions answered X, ``gold_X`` the share whose answer is X,
    each with its standard error (a model that only ever answers A and C shows at a glance)."""
    by_subject: dict[str, list[float]] = {}
    for record in records:
        by_subject.setdefault(record["subject"], []).append(float(record["correct"]))
    metrics = grouped_metrics(by_subject, CATEGORIES, name="acc")
    if not all("prediction" in r and "gold" in r for r in records):  # accuracy-only records
        return metrics
    for index, letter in enumerate(LETTERS):
        metrics[f"predicted_{letter}"] = mean_metric([float(r["prediction"] == index) for r in records])
    for index, letter in enumerate(LETTERS):
        metrics[f"gold_{letter}"] = mean_metric([float(r["gold"] == index) for r in records])
    return metrics
