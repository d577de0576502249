"""Running lm-evaluation-harness's ``mmlu`` task on local MMLU files, for the parity and speed scripts.

lm-evaluation-harness reads the Hub's ``cais/mmlu`` by default. Here each subject becomes a task
that ``include``-s the harness's own ``mmlu/default/_default_template_yaml`` (its prompt, choices,
few-shot sampler and metric, unchanged) and only swaps the data source for JSON Lines files in
``cais/mmlu``'s columns, converted from the release CSVs with the standard ``csv`` module (not with
zoo's reader, so a reading bug in zoo cannot hide on both sides).
"""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from typing import Any

LETTERS = "ABCD"


def harness_available() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def write_tasks(data_dir: Path, subjects: list[str], work_dir: Path) -> list[str]:
    """One task YAML per subject under ``work_dir``; returns the task names."""
    import lm_eval

    template = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default" / "_default_template_yaml"
    work_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for subject in subjects:
        files = {}
        for split in ("dev", "test"):
            source = data_dir / "mmlu" / split / f"{subject}_{split}.csv"
            target = work_dir / f"{subject}_{split}.jsonl"
            with open(source, newline="", encoding="utf-8") as handle, open(target, "w", encoding="utf-8") as out:
                for row in csv.reader(handle):
                    out.write(json.dumps({"question": row[0], "subject": subject, "choices": row[1:5],
                                          "answer": LETTERS.index(row[5].strip())}) + "\n")
            files[split] = target
        name = f"local_mmlu_{subject}"
        description = f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"
        (work_dir / f"{name}.yaml").write_text(
            f"include: {template}\ntask: {name}\ndataset_path: json\ndataset_name: null\n"
            f"dataset_kwargs:\n  data_files:\n    dev: {files['dev']}\n    test: {files['test']}\n"
            f"description: {json.dumps(description)}\n", encoding="utf-8")
        names.append(name)
    return names


def harness_model(model_dir: Path, batch_size: int):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(model_dir), dtype="float32", device="cpu", batch_size=batch_size)


def task_manager(task_dir: Path) -> Any:
    """lm-evaluation-harness's index of its tasks plus those under ``task_dir`` (slow to build: reuse it)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(task_dir))


def run_harness(model: Any, tasks: list[str], task_dir: Path, *, num_fewshot: int, limit: int | None,
                manager: Any = None) -> dict[str, dict[int, dict[str, Any]]]:
    """subject → doc id → ``{"loglikelihoods": [4], "gold": int}`` from lm-evaluation-harness."""
    from lm_eval import simple_evaluate

    out = simple_evaluate(model=model, tasks=tasks, num_fewshot=num_fewshot, limit=limit, log_samples=True,
                          task_manager=manager or task_manager(task_dir), bootstrap_iters=0,
                          verbosity="ERROR")
    per_subject = {}
    for task, samples in out["samples"].items():
        subject = task[len("local_mmlu_"):]
        per_subject[subject] = {s["doc_id"]: {"loglikelihoods": [float(r[0]) for r in s["filtered_resps"]],
                                              "gold": int(s["target"])} for s in samples}
    return per_subject
