"""``zoo bench CONFIG [--output DIR] [key.sub=value ...]``: the head-to-head benchmark;
``zoo bench --check DIR``: does a committed result still match today's code?

Builds (or reuses, by fingerprint) the shared stages, trains every contender for every seed from
the same SFT model with the same data and step budget, evaluates them all the same way, prints
the table and writes ``results.json``, ``results.md``, ``frontier.png`` and
``training_curves.png`` into the output directory. Rerunning an unchanged config trains nothing
and reprints the table.

``--canary`` first rebuilds the config's canary stages (:mod:`zoo.bench.canary`) with today's
code and carries the cache of the result in the output directory over only when they are
bit-identical; it exits 1, training nothing more, when they are not.

``--workers N`` builds the stages in N processes at once (each with its share of the CPU cores
as torch threads, unless the config sets ``threads``), then reports as a single process would:
the same stages, the same tables.

``--check DIR`` reads every ``results.json`` under DIR and exits 0 when each recomputes every
statistic from its stored values, hashes to today's code (comments and docstrings aside) and
numerical packages, was written from a clean tree, matches today's config file, and its
``results.md`` is what today's report code renders; 1 when one is stale; 2 when one cannot be
checked (no results.json, or one in an older format).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from zoo import ConfigError, hookimpl


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML bench config (see configs/bench/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. seeds=[0] output_dir=runs/b")
    parser.add_argument("--output", default=None, help="output directory (default: the config's output_dir)")
    parser.add_argument("--canary", action="store_true",
                        help="before running, rebuild the config's canary stages with today's code and, if they are "
                             "bit-identical to those of the result in the output directory, reuse its whole cache")
    parser.add_argument("--perturb", action="store_true",
                        help="run the same protocol on shifted seeds (perturbation.seed_offset) into OUTPUT/perturbed "
                             "and mark in the result in OUTPUT which of its verdicts survive")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="build the stages in N processes at once, each with cores/N torch threads unless the "
                             "config sets threads (default 1); the results are the same stages and tables")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # "K/N": one of --workers' processes
    parser.add_argument("--check", metavar="DIR", default=None,
                        help="check that the results.json files under DIR still match today's code (exit 0: yes, "
                             "1: stale, 2: cannot tell) and train nothing")


def _check(directory: str, console: Console) -> int:
    from zoo.bench import CHECK_OK, CHECK_STALE, CHECK_UNKNOWN, check_results

    path = Path(directory)
    if not path.exists():
        console.print(f"zoo bench --check: {directory} does not exist", highlight=False)
        return CHECK_UNKNOWN
    verdicts = check_results(path)
    if not verdicts:
        console.print(f"zoo bench --check: no results.json under {directory}", highlight=False)
        return CHECK_UNKNOWN
    words = {CHECK_OK: "up to date", CHECK_STALE: "STALE", CHECK_UNKNOWN: "cannot check"}
    for verdict in verdicts:
        console.print(f"{verdict.path}: {words[verdict.status]}", highlight=False)
        for reason in verdict.reasons:
            console.print(f"  - {reason}", highlight=False)
    return max(v.status for v in verdicts) if all(v.status != CHECK_UNKNOWN for v in verdicts) else CHECK_UNKNOWN


def _canary(config, output: str | None, announce, console: Console) -> bool:
    """Run the canary against the result in the output directory; whether the cache may be carried over."""
    import json

    from zoo.bench import run_canary

    out = Path(output or config.output_dir)
    try:
        result = json.loads((out / "results.json").read_text(encoding="utf-8"))
        earlier = result["core_hash"]
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"--canary compares with the result in {out}, and {out / 'results.json'} is missing or "
                          f"records no core_hash (written by an older version); run without --canary") from None
    # The earlier plugin sources are read from git at the result's commit: a plugin changed only in
    # its imports is carried with the core.
    # A result that a canary carried keeps its stages under that canary's plugin aliases.
    carried = result.get("canary") or {}
    earlier_plugins = carried.get("plugins") if carried.get("identical") and carried.get("from") == earlier else None
    record = run_canary(config, Path(config.cache_dir or out / "cache"), earlier, announce,
                        earlier_commit=result.get("commit"), earlier_plugin_aliases=earlier_plugins)
    if not record["identical"]:
        console.print("the canary's outputs differ from the earlier code's: this change moves numbers, so the cache "
                      "is not carried over; run without --canary to rebuild", highlight=False)
    return bool(record["identical"])


def _perturb(config, args: argparse.Namespace, announce, console: Console) -> int:
    """Run the shifted-seed protocol into OUTPUT/perturbed and record its verdicts in OUTPUT's result."""
    import json

    from zoo.bench import perturbation_record, shifted, summarise, write_outputs, run_bench

    out = Path(args.output or config.output_dir)
    main_file = out / "results.json"

    def read_main() -> dict:
        try:
            return json.loads(main_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError(f"--perturb marks the verdicts of the result in {out}, and {main_file} is missing or "
                              f"unreadable; run zoo bench {args.config} first") from None

    read_main()  # before hours of training
    run = run_bench(shifted(config), output_dir=out / "perturbed", announce=announce)
    perturbed = summarise(run)
    perturbed.update(config_file=str(args.config), overrides=list(args.overrides), perturbed=True)
    write_outputs(perturbed, out / "perturbed")
    # Read again now: a headline run that finished while this one trained wrote a newer result.
    main = read_main()
    main["perturbation"] = perturbation_record(perturbed)
    paths = write_outputs(main, out)
    console.print("the shifted-seed verdicts are recorded in " + ", ".join(str(p) for p in paths.values()),
                  highlight=False)
    return 0


def _worker_argv(args: argparse.Namespace, index: int) -> list[str]:
    argv = [sys.executable, "-m", "zoo.cli", "bench", str(args.config), *args.overrides,
            "--worker", f"{index}/{args.workers}"]
    return argv + (["--output", args.output] if args.output else [])


def _threads_per_worker(config, workers: int) -> None:
    import os

    import torch

    if config.threads is None:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _build_in_workers(config, args: argparse.Namespace, announce, console: Console) -> None:
    """``--workers N``: workers 1..N−1 as child processes, worker 0 in this one; returns when all are done."""
    import subprocess

    from zoo.bench import build_as_worker

    children = [subprocess.Popen(_worker_argv(args, index)) for index in range(1, args.workers)]
    try:
        build_as_worker(config, 0, args.workers, output_dir=args.output,
                        announce=lambda text: announce(f"worker 0/{args.workers}: {text}"))
        for index, child in enumerate(children, start=1):
            if child.wait() != 0:
                console.print(f"worker {index}/{args.workers} exited with status {child.returncode}; this process "
                              f"builds what it left", highlight=False)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait()


def _run(args: argparse.Namespace) -> int:
    from zoo.bench import (frontier, load_bench_config, pairwise, print_report, run_bench, summarise, training_curves,
                           write_outputs)

    # Piped output (CI logs, files): lines are not wrapped, and the table takes its 80-column form.
    console = Console() if sys.stdout.isatty() else Console(width=80, soft_wrap=True)
    if args.check is not None:
        if args.config or args.overrides or args.canary or args.perturb:
            raise ConfigError("zoo bench --check DIR takes no config, overrides, --canary or --perturb (it trains "
                              "nothing)")
        return _check(args.check, console)
    if not args.config:
        raise ConfigError("zoo bench needs a bench config (e.g. zoo bench configs/bench/tiny.yaml) or --check DIR")
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be at least 1")
    if args.workers > 1 and args.perturb:
        raise ConfigError("--workers builds one run's stages; run --perturb without it")
    config = load_bench_config(args.config, args.overrides)
    start = time.perf_counter()

    def announce(text: str) -> None:
        console.print(f"[dim]{time.perf_counter() - start:7.1f}s[/] [bold]▸[/] {text}", highlight=False)

    if args.worker is not None:  # one of the processes of --workers N
        from zoo.bench import build_as_worker

        index, workers = (int(part) for part in args.worker.split("/"))
        _threads_per_worker(config, workers)
        build_as_worker(config, index, workers, output_dir=args.output,
                        announce=lambda text: announce(f"worker {index}/{workers}: {text}"))
        return 0
    if args.canary and not _canary(config, args.output, announce, console):
        return 1
    if args.perturb:
        return _perturb(config, args, announce, console)
    if args.workers > 1:
        _threads_per_worker(config, args.workers)
        _build_in_workers(config, args, announce, console)
    run = run_bench(config, output_dir=args.output, announce=announce, workers=args.workers)
    results = summarise(run)
    # The check reloads the config as it was given, to see whether the file changed since.
    results.update(config_file=str(args.config), overrides=list(args.overrides))
    paths = write_outputs(results, run.output_dir)
    paths["frontier"] = frontier(results, run.output_dir / "frontier.png")
    paths["pairwise"] = pairwise(results, run.output_dir / "pairwise.png")
    curves = training_curves(run.run_dirs, run.shared_dirs, run.output_dir / "training_curves.png")
    if curves is not None:
        paths["curves"] = curves
    print_report(results, console)
    built = sum(1 for _, _, status in run.events if status == "built")
    console.print(f"{built} stage(s) built, {len(run.events) - built} reused from {Path(config.cache_dir or run.output_dir / 'cache')}; "
                  f"{time.perf_counter() - start:.1f} s", highlight=False)
    console.print(f"the stages these results rest on took {results['compute_seconds'] / 60:.1f} min to build "
                  f"({results['compute_cpu_seconds'] / 60:.1f} min of CPU time)", highlight=False)
    console.print("written: " + ", ".join(str(p) for p in paths.values()), highlight=False)
    return 0


@hookimpl
def zoo_register_commands(register):
    register("bench", _add_arguments, _run, "run the head-to-head benchmark of a bench config (zoo bench CONFIG)")
