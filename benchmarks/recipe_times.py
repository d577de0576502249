"""The cost of each `configs/smollm2/` recipe: CPU time, wall time and peak RSS of `zoo train`, run as shipped.

    python benchmarks/recipe_times.py --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz
    python benchmarks/recipe_times.py --data DATA --only dpo,ppo --write-headers
    python benchmarks/recipe_times.py --data DATA --only dpo --check      # exit 1 when off its header
    python benchmarks/recipe_times.py --data DATA --threads 1 --jobs 2 --write-headers   # two at a time

Runs every recipe (the reward model first: the online recipes score with it) with ``data.train``
pointed at a local copy of the HH pairs and ``output_dir`` under ``--output`` (default
``runs/recipe-times``), one after another, each as its own ``zoo train`` process. Reports each
run's CPU time (user + system of the process and its threads: the work done, which another job
on the machine changes less than the wall time, though two threads that wait for each other on a
busy machine still spin), its wall time, its peak resident memory (the process's own high-water
mark, which does not depend on the load) and the machine's load average. ``--write-headers``
puts the figures in each recipe's header as a ``# Measured:`` line.

``--check`` compares each run with the figures its header states and exits 1 when the CPU time
is off by more than ``--time-tolerance`` (default 25%: run it on an idle machine, as the headers
were) or the peak RSS by more than ``--memory-tolerance`` (default 15%), either way: slower or
bigger is a regression, faster or smaller a header that no longer says what the recipe costs. A
header without a figure fails too (``--write-headers`` writes both). The GGUF conversion (once
per machine, 25-60 s) is done before the first run and not counted.

``--threads N`` gives each run N torch threads (``OMP_NUM_THREADS``; default: torch's own, one
per core) and ``--jobs K`` runs K recipes at a time (the online recipes wait for the reward
model). With ``--threads 1 --jobs 2`` the two cores each run one recipe: the CPU time is the
same work without the spin-waiting of two threads on a shared core, the wall time is one
thread's; the header says so (``one torch thread``), and ``--check`` should use the same flags.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from zoo.config import read_yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "configs" / "smollm2"
#: The reward model comes first; the online recipes read it from runs/smollm2-reward/model.
FIRST = ("reward",)
MEASURED = re.compile(r"^# Measured: .*\n", re.MULTILINE)


def recipes(only: list[str] | None) -> list[Path]:
    paths = sorted(RECIPES.glob("*.yaml"), key=lambda p: (p.stem not in FIRST, p.stem))
    if only:
        unknown = set(only) - {p.stem for p in paths}
        if unknown:
            raise SystemExit(f"--only: no recipe named {', '.join(sorted(unknown))} in {RECIPES}")
        paths = [p for p in paths if p.stem in only]
    return paths


def needs_reward_model(path: Path) -> bool:
    """Whether a recipe scores with the trained reward model (the online recipes)."""
    return bool((read_yaml(path).get("reward") or {}).get("model"))


def run(path: Path, data: str, output: Path, reward_model: Path, threads: int | None = None
        ) -> dict[str, float | str | int]:
    command = [sys.executable, "-m", "zoo.cli", "train", str(path), f"data.train={data}",
               f"output_dir={output / path.stem}"]
    if needs_reward_model(path):
        command.append(f"reward.model={reward_model}")
    command.append("--overwrite")
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    load = os.getloadavg()[0]
    start = time.monotonic()
    log = output / f"{path.stem}.log"
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        # wait4: this child's own usage; RUSAGE_CHILDREN's peak would be the largest of all runs so far.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    steps = None
    metrics = output / path.stem / "metrics.json"
    if metrics.exists():
        steps = json.loads(metrics.read_text(encoding="utf-8")).get("steps")
    return {"recipe": path.stem, "returncode": process.returncode, "cpu_s": usage.ru_utime + usage.ru_stime,
            "wall_s": wall, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9, "load_before": load,
            "load_after": os.getloadavg()[0], "steps": steps, "log": str(log), "threads": threads}


def header_line(result: dict) -> str:
    steps = f", {result['steps']} optimiser steps" if result.get("steps") else ""
    one = result.get("threads") == 1
    return (f"# Measured: {result['cpu_s'] / 60:.1f} min CPU time, {result['wall_s'] / 60:.1f} min wall, peak RSS "
            f"{result['peak_rss_gb']:.1f} GB on 2 CPU cores (load {result['load_before']:.1f})"
            f"{', one torch thread' if one else ''}{steps}, {date.today().isoformat()} "
            f"(python benchmarks/recipe_times.py{' --threads 1' if one else ''}).\n")


def write_header(path: Path, result: dict) -> None:
    """Replace ``path``'s ``# Measured:`` line by ``result``'s (or add one after the first comment lines)."""
    text = path.read_text(encoding="utf-8")
    line = header_line(result)
    if MEASURED.search(text):
        text = MEASURED.sub(lambda _: line, text, count=1)
    else:
        lines = text.splitlines(keepends=True)
        at = next((i for i, l in enumerate(lines) if not l.startswith("#")), len(lines))
        text = "".join(lines[:at] + [line] + lines[at:])
    path.write_text(text, encoding="utf-8")


#: What a header states: CPU minutes and, in headers written since peak memory is measured, GB.
HEADER_CPU = re.compile(r"^# Measured: (\d+(?:\.\d+)?) min CPU time", re.MULTILINE)
HEADER_RSS = re.compile(r"^# Measured: .*?peak RSS (\d+(?:\.\d+)?) GB", re.MULTILINE)


def header_figures(path: Path) -> dict[str, float | None]:
    """``{"cpu_s", "peak_rss_gb"}`` as ``path``'s ``# Measured:`` line states them (None: not stated)."""
    text = path.read_text(encoding="utf-8")
    cpu, rss = HEADER_CPU.search(text), HEADER_RSS.search(text)
    return {"cpu_s": float(cpu.group(1)) * 60 if cpu else None,
            "peak_rss_gb": float(rss.group(1)) if rss else None}


#: (figure, name, unit, seconds or GB per unit, half a unit of the header's last digit, in seconds or GB)
FIGURES = (("cpu_s", "CPU time", "min", 60, 3.0), ("peak_rss_gb", "peak RSS", "GB", 1, 0.05))


def check(result: dict, stated: dict[str, float | None], time_tolerance: float, memory_tolerance: float
          ) -> list[str]:
    """Why ``result`` is off the figures its header ``stated`` (empty: within the tolerances).

    A figure passes within ``header × (1 ± tolerance)``, widened by the header's rounding (0.1 min,
    0.1 GB).
    """
    tolerances = {"cpu_s": time_tolerance, "peak_rss_gb": memory_tolerance}
    problems = []
    for key, what, unit, scale, rounding in FIGURES:
        measured, header, tolerance = result[key], stated[key], tolerances[key]
        if header is None:
            problems.append(f"its header states no {what} (write one with --write-headers)")
            continue
        low, high = header * (1 - tolerance) - rounding, header * (1 + tolerance) + rounding
        if not low <= measured <= high:
            direction = "above" if measured > high else "below"
            problems.append(f"{what} {measured / scale:.2f} {unit} is {direction} the header's {header / scale:.1f} "
                            f"{unit} ± {tolerance:.0%}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a local copy of the HH pairs (data.train)")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "recipe-times")
    parser.add_argument("--only", help="comma-separated recipe names (default: all)")
    parser.add_argument("--write-headers", action="store_true", help="write the figures into each recipe's header")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a recipe's CPU time or peak RSS is off its header by more than the tolerance")
    parser.add_argument("--time-tolerance", type=float, default=0.25, help="--check: relative CPU time band")
    parser.add_argument("--memory-tolerance", type=float, default=0.15, help="--check: relative peak RSS band")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--threads", type=int, help="torch threads per run (default: torch's own)")
    parser.add_argument("--jobs", type=int, default=1, help="recipes run at a time (default 1)")
    args = parser.parse_args()
    if args.check and args.write_headers:
        parser.error("--check compares with the headers that --write-headers would replace: use one of them")
    args.output.mkdir(parents=True, exist_ok=True)
    from zoo.gguf import resolve

    resolve("smollm2")  # convert once, outside the timings
    reward_model = args.output / "reward" / "model"
    results, off = [], []
    paths = recipes(args.only.split(",") if args.only else None)
    stated = {path: header_figures(path) for path in paths}  # read before any run rewrites a header
    printing = threading.Lock()
    reward_done = threading.Event()
    if not any(p.stem == "reward" for p in paths):
        reward_done.set()

    def measure(path: Path) -> dict:
        if needs_reward_model(path):
            reward_done.wait()
        with printing:
            print(f"{path.stem}: running", flush=True)
        try:
            return run(path, args.data, args.output, reward_model, args.threads)
        finally:
            if path.stem == "reward":
                reward_done.set()

    # The reward model first, then the recipes that do not need it, then those that do.
    order = sorted(paths, key=lambda p: (p.stem != "reward", needs_reward_model(p), p.stem))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for path, future in [(p, pool.submit(measure, p)) for p in order]:
            result = future.result()
            results.append(result)
            status = "ok" if result["returncode"] == 0 else f"FAILED (exit {result['returncode']}, see {result['log']})"
            with printing:
                print(f"{path.stem}: {status}, {result['cpu_s'] / 60:.1f} min CPU, {result['wall_s'] / 60:.1f} min wall, "
                      f"peak RSS {result['peak_rss_gb']:.2f} GB, load {result['load_before']:.1f}->"
                      f"{result['load_after']:.1f}, steps {result['steps']}", flush=True)
                if args.check and result["returncode"] == 0:
                    problems = check(result, stated[path], args.time_tolerance, args.memory_tolerance)
                    result["check"] = problems
                    print(f"{path.stem}: " + ("; ".join(problems) if problems else "within its header's figures"),
                          flush=True)
                    if problems:
                        off.append(path.stem)
            if args.write_headers and result["returncode"] == 0:
                write_header(path, result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if off:
        print(f"off their headers: {', '.join(off)}", flush=True)
    return 0 if all(r["returncode"] == 0 for r in results) and not off else 1


if __name__ == "__main__":
    raise SystemExit(main())
