"""``zoo train CONFIG [KEY=VALUE ...]``: one training run from a YAML config (:func:`zoo.training_guard.train`)."""
from __future__ import annotations

import argparse
import shlex

from zoo import hookimpl


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML run config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.max_steps=10")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output_dir")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in output_dir from its newest checkpoint (as resume: auto)")


def _run(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only
    from rich.table import Table

    from zoo.app import RunInterrupted, console, load_config, train

    config = load_config(args.config, args.overrides)
    try:
        result = train(config, overwrite=args.overwrite, resume=args.resume)
    except RunInterrupted as exc:
        if exc.resumable:
            command = shlex.join(["zoo", "train", args.config, *args.overrides, "--resume"])
            exc.args = (f"{exc} Continue it with: {command}",)
        raise
    if rank_zero_only.rank != 0:  # with several processes, every one runs this command: report once
        return 0
    table = Table(title=f"{config.algorithm}: held-out metrics", show_lines=False)
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for key in sorted(set(result.metrics_before) | set(result.metrics_after)):
        before, after = result.metrics_before.get(key), result.metrics_after.get(key)
        table.add_row(key, "" if before is None else f"{before:.4f}", "" if after is None else f"{after:.4f}")
    if table.row_count:
        console.print(table)
    for line in result.data:
        console.print(f"data: {line}", highlight=False)
    if result.resumed_from is not None:
        console.print(f"resumed from step {result.resumed_from}")
    if result.nonfinite_steps:
        console.print(f"[yellow]{result.nonfinite_steps} step(s) skipped: their loss or gradient was NaN/inf[/]")
    console.print(f"[bold]model, config and metrics written to[/] {result.output_dir}")
    return 0


@hookimpl
def zoo_register_commands(register):
    register("train", _add_arguments, _run, "train one algorithm from a YAML config")
