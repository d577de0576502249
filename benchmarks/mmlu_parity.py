"""Parity of ``zoo eval --suites mmlu`` with lm-evaluation-harness's ``mmlu`` task.

    python benchmarks/mmlu_parity.py --data-dir ../shared/data --limit 10

Saves the built-in tiny model (random weights, byte-level tokenizer) to a directory, in two
variants by default: a tokenizer that adds no BOS and a long window (the plain case), and one
whose tokenizer prepends BOS with a 512-token window (so 5-shot prompts are cut from the left,
exercising the harness's truncation). For each, it runs the harness's ``hf`` model on the local
MMLU files (see :mod:`zoo_benchmarks.lmeval_mmlu`) and ``zoo eval --suites mmlu`` on the same
files, then compares every question's four log-likelihoods (tolerance ``--tolerance``, default
1e-4) and prediction. Exits 1 on any difference beyond the tolerance; needs ``pip install lm-eval``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SUBJECTS = ["abstract_algebra", "anatomy", "high_school_us_history", "moral_scenarios"]


def save_tiny(directory: Path, *, bos: bool, window: int) -> Path:
    """The tiny model and tokenizer as a ``save_pretrained`` directory."""
    from tokenizers import processors

    from zoo.tiny import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    if bos:
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tokenizer.bos_token_id)])
    model = tiny_model(tokenizer, max_position_embeddings=window)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def run_zoo(model_dir: Path, data_dir: Path, subjects: list[str], *, num_fewshot: int, limit: int | None,
            batch_size: int, output: Path) -> dict[str, dict[int, dict]]:
    from zoo.cli import main

    argv = ["eval", "--model", str(model_dir), "--suites", "mmlu", "--data-dir", str(data_dir),
            "--option", f"mmlu.subjects=[{','.join(subjects)}]", "--num-fewshot", str(num_fewshot),
            "--batch-size", str(batch_size), "--output", str(output)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    if main(argv) != 0:
        raise SystemExit("zoo eval failed")
    per_subject: dict[str, dict[int, dict]] = {}
    for line in (output / "samples_mmlu.jsonl").read_text().splitlines():
        sample = json.loads(line)
        subject, index = sample["id"].rsplit("/", 1)
        per_subject.setdefault(subject, {})[int(index)] = sample
    return per_subject


def compare(zoo: dict, harness: dict, tolerance: float) -> dict:
    worst, mismatched, questions, correct_zoo, correct_harness = 0.0, [], 0, 0, 0
    for subject, docs in harness.items():
        if set(docs) != set(zoo.get(subject, {})):
            raise SystemExit(f"{subject}: the harness scored docs {sorted(docs)}, zoo {sorted(zoo.get(subject, {}))}")
        for doc_id, theirs in docs.items():
            ours = zoo[subject][doc_id]
            questions += 1
            difference = max(abs(a - b) for a, b in zip(ours["loglikelihoods"], theirs["loglikelihoods"]))
            worst = max(worst, difference)
            their_prediction = max(range(4), key=theirs["loglikelihoods"].__getitem__)
            if their_prediction != ours["prediction"] or theirs["gold"] != ours["gold"]:
                mismatched.append(f"{subject}/{doc_id}")
            correct_zoo += ours["prediction"] == ours["gold"]
            correct_harness += their_prediction == theirs["gold"]
    return {"questions": questions, "max_abs_loglik_diff": worst, "prediction_mismatches": mismatched,
            "acc_zoo": correct_zoo / max(questions, 1), "acc_harness": correct_harness / max(questions, 1),
            "ok": worst <= tolerance and not mismatched}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--subjects", default=",".join(DEFAULT_SUBJECTS))
    parser.add_argument("--limit", type=int, default=10, help="questions per subject (0: all)")
    parser.add_argument("--num-fewshot", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--variants", default="plain,bos512", help="plain (no BOS, 4096 window), bos512")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    from zoo_benchmarks.lmeval_mmlu import harness_available, harness_model, run_harness, write_tasks

    if not harness_available():
        print("lm-evaluation-harness is not installed (pip install lm-eval); nothing to compare against.")
        return 2
    if not (args.data_dir / "mmlu").is_dir():
        print(f"no MMLU files under {args.data_dir}; pass --data-dir")
        return 2
    subjects = [s for s in args.subjects.split(",") if s]
    limit = args.limit or None
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="mmlu-parity-"))
    tasks = write_tasks(args.data_dir, subjects, work / "tasks")
    variants = {"plain": {"bos": False, "window": 4096}, "bos512": {"bos": True, "window": 512}}
    all_ok = True
    for name in [v for v in args.variants.split(",") if v]:
        model_dir = save_tiny(work / f"model-{name}", **variants[name])
        start = time.perf_counter()
        harness = run_harness(harness_model(model_dir, args.batch_size), tasks, work / "tasks",
                              num_fewshot=args.num_fewshot, limit=limit)
        harness_seconds = time.perf_counter() - start
        start = time.perf_counter()
        zoo = run_zoo(model_dir, args.data_dir, subjects, num_fewshot=args.num_fewshot, limit=limit,
                      batch_size=args.batch_size, output=work / f"zoo-{name}")
        zoo_seconds = time.perf_counter() - start
        report = compare(zoo, harness, args.tolerance)
        all_ok &= report["ok"]
        print(f"[{name}] {report['questions']} questions, {args.num_fewshot}-shot, subjects {', '.join(subjects)}")
        print(f"  max |loglik(zoo) - loglik(harness)| = {report['max_abs_loglik_diff']:.3g} "
              f"(tolerance {args.tolerance:g})")
        print(f"  prediction mismatches: {len(report['prediction_mismatches'])} {report['prediction_mismatches'][:5]}")
        print(f"  accuracy: zoo {report['acc_zoo']:.4f}, harness {report['acc_harness']:.4f}")
        print(f"  wall time incl. loading: zoo {zoo_seconds:.1f} s, harness {harness_seconds:.1f} s")
        print(f"  {'PARITY' if report['ok'] else 'DIFFERENCE'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
