"""Speed of 5-shot MMLU: zoo's scorer against lm-evaluation-harness on the same model and files.

    python benchmarks/mmlu_speed.py --data-dir ../shared/data --limit 20
    python benchmarks/mmlu_speed.py --model-dir runs/sft/model --subjects all
    python benchmarks/mmlu_speed.py --model-dir smollm2 --limit 10 --repeats 2

Times, for each tool, reading the data, building the prompts and scoring every question (model
loading and imports excluded: both get an already loaded model; the harness's data sets are
built once beforehand so its ``datasets`` cache is warm, and its index of tasks is built outside
the timing). Prints questions per second for both,
the ratio, whether every prediction agrees and the largest difference between the two tools'
log-likelihoods. ``--repeats`` alternates the tools that many times (the machine's load drifts;
the median time counts). ``--model-dir`` takes a ``save_pretrained`` directory, a ``.gguf`` file
or ``smollm2`` (the packaged SmolLM2-135M-Instruct); without it the built-in tiny model is saved
with a window long enough for 5-shot prompts. Without lm-evaluation-harness installed it times
zoo alone.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SUBJECTS = ["abstract_algebra", "anatomy", "college_biology", "high_school_us_history", "marketing",
                    "moral_scenarios", "professional_law", "virology"]


def time_zoo(model_dir: Path, data_dir: Path, subjects: list[str], *, num_fewshot: int, limit: int | None,
             batch_size: int, share_prefix: bool) -> tuple[float, dict[str, dict]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.eval import run_suites

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    start = time.perf_counter()
    results = run_suites(model, tokenizer, ["mmlu"], data_dir=data_dir, num_fewshot=num_fewshot, limit=limit,
                         batch_size=batch_size, options={"mmlu": {"subjects": subjects}}, share_prefix=share_prefix)
    seconds = time.perf_counter() - start
    return seconds, {sample["id"]: sample for sample in results["mmlu"].samples}


def time_harness(model_dir: Path, data_dir: Path, subjects: list[str], *, num_fewshot: int, limit: int | None,
                 batch_size: int, work: Path) -> tuple[float, dict[str, dict]]:
    from zoo_benchmarks.lmeval_mmlu import harness_model, run_harness, task_manager, write_tasks

    tasks = write_tasks(data_dir, subjects, work / "tasks")
    model = harness_model(model_dir, batch_size)
    manager = task_manager(work / "tasks")  # its index of every task: built once, outside the timing
    run_harness(model, tasks, work / "tasks", num_fewshot=0, limit=1, manager=manager)  # caches the data sets
    start = time.perf_counter()
    per_subject = run_harness(model, tasks, work / "tasks", num_fewshot=num_fewshot, limit=limit, manager=manager)
    seconds = time.perf_counter() - start
    samples = {f"{subject}/{doc_id}": {"prediction": max(range(4), key=doc["loglikelihoods"].__getitem__),
                                       "loglikelihoods": doc["loglikelihoods"]}
               for subject, docs in per_subject.items() for doc_id, doc in docs.items()}
    return seconds, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=None,
                        help="a save_pretrained directory, a .gguf file or 'smollm2' (default: tiny)")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--subjects", default=",".join(DEFAULT_SUBJECTS), help="comma-separated, or 'all'")
    parser.add_argument("--limit", type=int, default=20, help="questions per subject (0: all)")
    parser.add_argument("--num-fewshot", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both tools")
    parser.add_argument("--repeats", type=int, default=1, help="alternations of zoo and the harness")
    parser.add_argument("--no-plain", action="store_true", help="skip zoo without prefix sharing")
    parser.add_argument("--zoo-only", action="store_true")
    args = parser.parse_args(argv)

    from zoo.eval.mmlu import SUBJECTS
    from zoo_benchmarks.lmeval_mmlu import harness_available
    from zoo_benchmarks.mmlu_parity import save_tiny
    from zoo_benchmarks.model_source import model_directory

    if args.threads:
        torch.set_num_threads(args.threads)
    subjects = list(SUBJECTS) if args.subjects == "all" else [s for s in args.subjects.split(",") if s]
    limit = args.limit or None
    work = Path(tempfile.mkdtemp(prefix="mmlu-speed-"))
    model_dir = model_directory(args.model_dir) if args.model_dir else save_tiny(work / "tiny", bos=False,
                                                                                 window=4096)
    print(f"model {model_dir}, {len(subjects)} subjects, limit {limit}, {args.num_fewshot}-shot, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}", flush=True)
    harness = not args.zoo_only and harness_available()
    if not args.zoo_only and not harness:
        print("lm-evaluation-harness is not installed (pip install lm-eval): zoo timed alone")
    common = dict(num_fewshot=args.num_fewshot, limit=limit, batch_size=args.batch_size)
    times: dict[str, list[float]] = {"zoo": [], "plain": [], "harness": []}
    zoo_samples = plain_samples = harness_samples = {}
    for repeat in range(args.repeats):
        seconds, zoo_samples = time_zoo(model_dir, args.data_dir, subjects, share_prefix=True, **common)
        times["zoo"].append(seconds)
        print(f"[{repeat + 1}] zoo:                      {len(zoo_samples)} questions in {seconds:7.2f} s", flush=True)
        if not args.no_plain:
            seconds, plain_samples = time_zoo(model_dir, args.data_dir, subjects, share_prefix=False, **common)
            times["plain"].append(seconds)
            print(f"[{repeat + 1}] zoo (no prefix sharing):  {len(plain_samples)} questions in {seconds:7.2f} s",
                  flush=True)
        if harness:
            seconds, harness_samples = time_harness(model_dir, args.data_dir, subjects, work=work, **common)
            times["harness"].append(seconds)
            print(f"[{repeat + 1}] lm-evaluation-harness:    {len(harness_samples)} questions in {seconds:7.2f} s",
                  flush=True)
    n = len(zoo_samples)
    median = {tool: statistics.median(t) for tool, t in times.items() if t}
    for tool, label in (("zoo", "zoo"), ("plain", "zoo (no prefix sharing)"), ("harness", "lm-evaluation-harness")):
        if tool in median:
            print(f"{label + ':':26s}{n / median[tool]:8.2f} questions/s (median of {len(times[tool])} runs)")
    if plain_samples:
        same = sum(zoo_samples[k]["prediction"] == plain_samples[k]["prediction"] for k in zoo_samples)
        print(f"  predictions identical with and without prefix sharing: {same}/{n}")
    if harness:
        agree = sum(harness_samples.get(k, {}).get("prediction") == v["prediction"] for k, v in zoo_samples.items())
        worst = max(abs(a - b) for k, v in zoo_samples.items()
                    for a, b in zip(v["loglikelihoods"], harness_samples[k]["loglikelihoods"]))
        plain = f" (without prefix sharing {median['harness'] / median['plain']:.2f}x)" if "plain" in median else ""
        print(f"speed-up zoo / harness: {median['harness'] / median['zoo']:.2f}x{plain}; "
              f"identical predictions: {agree}/{n}; max |loglik(zoo) - loglik(harness)| = {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
