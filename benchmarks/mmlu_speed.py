"""Speed of 5-shot MMLU: zoo's scorer against lm-evaluation-harness on the same model and files.

    python benchmarks/mmlu_speed.py --data-dir ../shared/data --limit 20
    python benchmarks/mmlu_speed.py --model-dir runs/sft/model --subjects all

Times, for each tool, reading the data, building the prompts and scoring every question (model
loading and imports excluded: both get an already loaded model; the harness's data sets are
built once beforehand so its ``datasets`` cache is warm). Prints questions per second for both,
the ratio, and whether every prediction agrees. Without ``--model-dir`` it saves the built-in
tiny model with a window long enough for 5-shot prompts. Without lm-evaluation-harness installed
it times zoo alone.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SUBJECTS = ["abstract_algebra", "anatomy", "college_biology", "high_school_us_history", "marketing",
                    "moral_scenarios", "professional_law", "virology"]


def time_zoo(model_dir: Path, data_dir: Path, subjects: list[str], *, num_fewshot: int, limit: int | None,
             batch_size: int, share_prefix: bool) -> tuple[float, dict[str, int]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.eval import run_suites

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    start = time.perf_counter()
    results = run_suites(model, tokenizer, ["mmlu"], data_dir=data_dir, num_fewshot=num_fewshot, limit=limit,
                         batch_size=batch_size, options={"mmlu": {"subjects": subjects}}, share_prefix=share_prefix)
    seconds = time.perf_counter() - start
    return seconds, {sample["id"]: sample["prediction"] for sample in results["mmlu"].samples}


def time_harness(model_dir: Path, data_dir: Path, subjects: list[str], *, num_fewshot: int, limit: int | None,
                 batch_size: int, work: Path) -> tuple[float, dict[str, int]]:
    from zoo_benchmarks.lmeval_mmlu import harness_model, run_harness, write_tasks

    tasks = write_tasks(data_dir, subjects, work / "tasks")
    model = harness_model(model_dir, batch_size)
    run_harness(model, tasks, work / "tasks", num_fewshot=0, limit=1)  # builds and caches the data sets
    start = time.perf_counter()
    per_subject = run_harness(model, tasks, work / "tasks", num_fewshot=num_fewshot, limit=limit)
    seconds = time.perf_counter() - start
    predictions = {f"{subject}/{doc_id}": max(range(4), key=doc["loglikelihoods"].__getitem__)
                   for subject, docs in per_subject.items() for doc_id, doc in docs.items()}
    return seconds, predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="a save_pretrained directory (default: tiny)")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--subjects", default=",".join(DEFAULT_SUBJECTS), help="comma-separated, or 'all'")
    parser.add_argument("--limit", type=int, default=20, help="questions per subject (0: all)")
    parser.add_argument("--num-fewshot", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both tools")
    parser.add_argument("--zoo-only", action="store_true")
    args = parser.parse_args(argv)

    from zoo.eval.mmlu import SUBJECTS
    from zoo_benchmarks.lmeval_mmlu import harness_available
    from zoo_benchmarks.mmlu_parity import save_tiny

    if args.threads:
        torch.set_num_threads(args.threads)
    subjects = list(SUBJECTS) if args.subjects == "all" else [s for s in args.subjects.split(",") if s]
    limit = args.limit or None
    work = Path(tempfile.mkdtemp(prefix="mmlu-speed-"))
    model_dir = args.model_dir or save_tiny(work / "tiny", bos=False, window=4096)
    print(f"model {model_dir}, {len(subjects)} subjects, limit {limit}, {args.num_fewshot}-shot, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}")

    zoo_seconds, zoo_predictions = time_zoo(model_dir, args.data_dir, subjects, num_fewshot=args.num_fewshot,
                                            limit=limit, batch_size=args.batch_size, share_prefix=True)
    n = len(zoo_predictions)
    print(f"zoo:                      {n} questions in {zoo_seconds:7.2f} s = {n / zoo_seconds:8.2f} questions/s")
    plain_seconds, plain_predictions = time_zoo(model_dir, args.data_dir, subjects, num_fewshot=args.num_fewshot,
                                                limit=limit, batch_size=args.batch_size, share_prefix=False)
    print(f"zoo (no prefix sharing):  {n} questions in {plain_seconds:7.2f} s = {n / plain_seconds:8.2f} questions/s")
    same = sum(zoo_predictions[k] == plain_predictions[k] for k in zoo_predictions)
    print(f"  predictions identical with and without prefix sharing: {same}/{n}")
    if args.zoo_only or not harness_available():
        if not args.zoo_only:
            print("lm-evaluation-harness is not installed (pip install lm-eval): zoo timed alone")
        return 0
    harness_seconds, harness_predictions = time_harness(model_dir, args.data_dir, subjects,
                                                        num_fewshot=args.num_fewshot, limit=limit,
                                                        batch_size=args.batch_size, work=work)
    print(f"lm-evaluation-harness:    {n} questions in {harness_seconds:7.2f} s = "
          f"{len(harness_predictions) / harness_seconds:8.2f} questions/s")
    agree = sum(harness_predictions.get(k) == v for k, v in zoo_predictions.items())
    print(f"speed-up zoo / harness: {harness_seconds / zoo_seconds:.2f}x "
          f"(without prefix sharing {harness_seconds / plain_seconds:.2f}x); "
          f"identical predictions: {agree}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
