"""``zoo bench CONFIG [--output DIR] [key.sub=value ...]``: the head-to-head benchmark.

Builds (or reuses, by fingerprint) the shared stages, trains every contender for every seed from
the same SFT model with the same data and step budget, evaluates them all the same way, prints
the table and writes ``results.json``, ``results.md``, ``frontier.png`` and
``training_curves.png`` into the output directory. Rerunning an unchanged config trains nothing
and reprints the table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from zoo import hookimpl


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML bench config (see configs/bench/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. seeds=[0] output_dir=runs/b")
    parser.add_argument("--output", default=None, help="output directory (default: the config's output_dir)")


def _run(args: argparse.Namespace) -> int:
    from zoo.bench.config import load_bench_config
    from zoo.bench.plots import frontier, training_curves
    from zoo.bench.report import print_report, write_outputs
    from zoo.bench.results import summarise
    from zoo.bench.runner import run_bench

    # Piped output (CI logs, files): lines are not wrapped, and the table takes its stacked, 100-column form.
    console = Console() if sys.stdout.isatty() else Console(width=100, soft_wrap=True)
    config = load_bench_config(args.config, args.overrides)
    start = time.perf_counter()

    def announce(text: str) -> None:
        console.print(f"[dim]{time.perf_counter() - start:7.1f}s[/] [bold]▸[/] {text}", highlight=False)

    run = run_bench(config, output_dir=args.output, announce=announce)
    results = summarise(run)
    paths = write_outputs(results, run.output_dir)
    paths["frontier"] = frontier(results, run.output_dir / "frontier.png")
    curves = training_curves(run.run_dirs, run.shared_dirs, run.output_dir / "training_curves.png")
    if curves is not None:
        paths["curves"] = curves
    print_report(results, console)
    built = sum(1 for _, _, status in run.events if status == "built")
    console.print(f"{built} stage(s) built, {len(run.events) - built} reused from {Path(config.cache_dir or run.output_dir / 'cache')}; "
                  f"{time.perf_counter() - start:.1f} s", highlight=False)
    console.print("written: " + ", ".join(str(p) for p in paths.values()), highlight=False)
    return 0


@hookimpl
def zoo_register_commands(register):
    register("bench", _add_arguments, _run, "run the head-to-head benchmark of a bench config (zoo bench CONFIG)")
