"""Speed of 5-shot MMLU: zoo's scorer against lm-evaluation-harness on the same model and files.

    python benchmarks/mmlu_speed.py --data-dir ../shared/data --limit 20
    python benchmarks/mmlu_speed.py --model-dir runs/sft/model --subjects all
    python benchmarks/mmlu_speed.py --model-dir smollm2 --limit 10 --repeats 2
    python benchmarks/mmlu_speed.py --model-dir smollm2 --limit 25 --processes --threads 1


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

``--processes`` times what a user waits for instead: each tool's own command line as a whole
process (``zoo eval`` against ``lm_eval run --model hf``), imports, model loading, the harness's
task index and data set loading included, on the same model directory, files, few-shot count,
limit and batch size. One untimed run of each at ``--limit 1`` warms the disk and the harness's
``datasets`` cache first (a user's second run); then zoo and the harness alternate ``--repeats``
times and zoo runs once more at the end, so its runs bracket the harness's. Prints wall and CPU
seconds (user + system of the child) of every run and the ratio of the medians, and compares the
predictions each tool wrote (``samples_mmlu.jsonl``; the harness's ``--log_samples`` files).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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


def run_process(command: list[str], threads: int | None, log: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of ``command`` as a child process; its output goes to ``log``."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "w", encoding="utf-8") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{command[0]} failed (exit {code}); its output: {log}")
    return wall, usage.ru_utime + usage.ru_stime


def console_script(name: str) -> str:
    """The installed command ``name`` beside this interpreter (what a user types, without a shell's shims)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"{name}: not installed beside {sys.executable}")
    return str(path)


def zoo_command(model_dir: Path, data_dir: Path, subjects: list[str], *, num_fewshot: int, limit: int | None,
                batch_size: int, output: Path) -> list[str]:
    command = [console_script("zoo"), "eval", "--model", str(model_dir), "--suites", "mmlu",
               "--num-fewshot", str(num_fewshot), "--data-dir", str(data_dir), "--batch-size", str(batch_size),
               "--option", f"mmlu.subjects=[{','.join(subjects)}]", "--output", str(output)]
    return command + (["--limit", str(limit)] if limit else [])


def harness_command(model_dir: Path, tasks: list[str], task_dir: Path, *, num_fewshot: int, limit: int | None,
                    batch_size: int, output: Path) -> list[str]:
    command = [console_script("lm_eval"), "run", "--model", "hf",
               "--model_args", f"pretrained={model_dir},dtype=float32", "--device", "cpu",
               "--tasks", ",".join(tasks), "--include_path", str(task_dir), "--num_fewshot", str(num_fewshot),
               "--batch_size", str(batch_size), "--output_path", str(output), "--log_samples"]
    return command + (["--limit", str(limit)] if limit else [])


def zoo_predictions(output: Path) -> dict[str, dict]:
    with open(output / "samples_mmlu.jsonl", encoding="utf-8") as handle:
        return {s["id"]: s for s in map(json.loads, handle)}


def harness_predictions(output: Path) -> dict[str, dict]:
    samples = {}
    for path in output.rglob("samples_local_mmlu_*.jsonl"):
        subject = path.name[len("samples_local_mmlu_"):].rsplit("_", 1)[0]
        with open(path, encoding="utf-8") as handle:
            for sample in map(json.loads, handle):
                loglik = [float(r[0]) for r in sample["filtered_resps"]]
                samples[f"{subject}/{sample['doc_id']}"] = {
                    "loglikelihoods": loglik, "prediction": max(range(4), key=loglik.__getitem__)}
    return samples


def compare_processes(model_dir: Path, data_dir: Path, subjects: list[str], *, num_fewshot: int,
                      limit: int | None, batch_size: int, threads: int | None, repeats: int, work: Path) -> None:
    """Both tools' command lines as whole processes, alternating (see the module docstring)."""
    from zoo_benchmarks.lmeval_mmlu import write_tasks

    tasks = write_tasks(data_dir, subjects, work / "tasks")
    common = dict(num_fewshot=num_fewshot, batch_size=batch_size)

    def run(tool: str, label: str, run_limit: int | None) -> tuple[float, float, Path]:
        output = work / label
        if tool == "zoo":
            command = zoo_command(model_dir, data_dir, subjects, limit=run_limit, output=output, **common)
        else:
            command = harness_command(model_dir, tasks, work / "tasks", limit=run_limit, output=output, **common)
        print(f"{label}: running (output in {work / (label + '.log')})", flush=True)
        wall, cpu = run_process(command, threads, work / f"{label}.log")
        print(f"{label}: {wall:8.1f} s wall, {cpu:8.1f} s CPU", flush=True)
        return wall, cpu, output

    run("zoo", "zoo-warmup", 1)
    run("harness", "harness-warmup", 1)
    timings: dict[str, list[tuple[float, float]]] = {"zoo": [], "harness": []}
    order = [tool for _ in range(repeats) for tool in ("zoo", "harness")] + ["zoo"]
    outputs = {}
    for index, tool in enumerate(order):
        wall, cpu, outputs[tool] = run(tool, f"{tool}-{index}", limit)
        timings[tool].append((wall, cpu))
    zoo_samples, harness_samples = zoo_predictions(outputs["zoo"]), harness_predictions(outputs["harness"])
    n = len(zoo_samples)
    for tool in ("zoo", "harness"):
        walls, cpus = zip(*timings[tool])
        print(f"{tool:8s} wall s {', '.join(f'{w:.1f}' for w in walls)} (median {statistics.median(walls):.1f}); "
              f"CPU s {', '.join(f'{c:.1f}' for c in cpus)} (median {statistics.median(cpus):.1f})")
    for index, what in ((0, "wall"), (1, "CPU")):
        zoo_times = [t[index] for t in timings["zoo"]]
        harness_median = statistics.median(t[index] for t in timings["harness"])
        print(f"speed-up zoo / harness, {what} time, whole processes: "
              f"{harness_median / statistics.median(zoo_times):.2f}x "
              f"(range over zoo's runs {harness_median / max(zoo_times):.2f}-{harness_median / min(zoo_times):.2f}x)")
    agree = sum(harness_samples.get(k, {}).get("prediction") == v["prediction"] for k, v in zoo_samples.items())
    worst = max((abs(a - b) for k, v in zoo_samples.items() if k in harness_samples
                 for a, b in zip(v["loglikelihoods"], harness_samples[k]["loglikelihoods"])), default=float("nan"))
    print(f"{n} questions ({len(harness_samples)} scored by the harness); identical predictions: {agree}/{n}; "
          f"max |loglik(zoo) - loglik(harness)| = {worst:.3g}")


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
    parser.add_argument("--processes", action="store_true",
                        help="time both command lines as whole processes (start-up and loading included)")
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
    if args.processes:
        if not harness:
            raise SystemExit("--processes compares with lm-evaluation-harness: pip install lm-eval==0.4.13")
        compare_processes(model_dir, args.data_dir, subjects, num_fewshot=args.num_fewshot, limit=limit,
                          batch_size=args.batch_size, threads=args.threads, repeats=args.repeats, work=work)
        return 0
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
