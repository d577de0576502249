"""The cost of each `configs/smollm2/` recipe: CPU time and wall time of `zoo train`, run as shipped.

    python benchmarks/recipe_times.py --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz
    python benchmarks/recipe_times.py --data DATA --only dpo,ppo --write-headers

Runs every recipe (the reward model first: the online recipes score with it) with ``data.train``
pointed at a local copy of the HH pairs and ``output_dir`` under ``--output`` (default
``runs/recipe-times``), one after another, each as its own ``zoo train`` process. Reports each
run's CPU time (user + system of the process and its threads: the work done, which another job
on the machine changes little) and its wall time (which it does), with the machine's load
average. ``--write-headers`` puts the figures in each recipe's header as a ``# Measured:`` line.
The GGUF conversion (once per machine, 25-60 s) is done before the first run and not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
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


def run(path: Path, data: str, output: Path, reward_model: Path) -> dict[str, float | str | int]:
    command = [sys.executable, "-m", "zoo.cli", "train", str(path), f"data.train={data}",
               f"output_dir={output / path.stem}"]
    if (read_yaml(path).get("reward") or {}).get("model"):  # the online recipes score with the trained model
        command.append(f"reward.model={reward_model}")
    command.append("--overwrite")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.monotonic()
    log = output / f"{path.stem}.log"
    with open(log, "w", encoding="utf-8") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    steps = None
    metrics = output / path.stem / "metrics.json"
    if metrics.exists():
        steps = json.loads(metrics.read_text(encoding="utf-8")).get("steps")
    return {"recipe": path.stem, "returncode": done.returncode, "cpu_s": cpu, "wall_s": wall,
            "load_before": load, "load_after": os.getloadavg()[0], "steps": steps, "log": str(log)}


def header_line(result: dict) -> str:
    steps = f", {result['steps']} optimiser steps" if result.get("steps") else ""
    return (f"# Measured: {result['cpu_s'] / 60:.1f} min CPU time, {result['wall_s'] / 60:.1f} min wall on 2 CPU "
            f"cores (load {result['load_before']:.1f}){steps}, {date.today().isoformat()} "
            f"(python benchmarks/recipe_times.py).\n")


def write_header(path: Path, result: dict) -> None:
    text = MEASURED.sub("", path.read_text(encoding="utf-8"))
    lines = text.splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    lines.insert(end, header_line(result))
    path.write_text("".join(lines), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a local copy of the HH pairs (data.train)")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "recipe-times")
    parser.add_argument("--only", help="comma-separated recipe names (default: all)")
    parser.add_argument("--write-headers", action="store_true", help="write the figures into each recipe's header")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    from zoo.gguf import resolve

    resolve("smollm2")  # convert once, outside the timings
    reward_model = args.output / "reward" / "model"
    results = []
    for path in recipes(args.only.split(",") if args.only else None):
        print(f"{path.stem}: running", flush=True)
        result = run(path, args.data, args.output, reward_model)
        results.append(result)
        status = "ok" if result["returncode"] == 0 else f"FAILED (exit {result['returncode']}, see {result['log']})"
        print(f"{path.stem}: {status}, {result['cpu_s'] / 60:.1f} min CPU, {result['wall_s'] / 60:.1f} min wall, "
              f"load {result['load_before']:.1f}->{result['load_after']:.1f}, steps {result['steps']}", flush=True)
        if args.write_headers and result["returncode"] == 0:
            write_header(path, result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
