"""``zoo pairs CONFIG``: sample, score and write preference pairs (see :mod:`zoo.app.pairs`)."""
from __future__ import annotations

import argparse

from zoo import hookimpl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML pairs config (see configs/tiny/pairs.yaml)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. max_prompts=64")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from zoo.app import load_pairs_config, make_pairs, samples_per_prompt

    config = load_pairs_config(args.config, args.overrides)
    result = make_pairs(config)
    console = Console()
    table = Table(title=f"zoo pairs ({config.mode})")
    table.add_column("model")
    table.add_column("samples / prompt", justify="right")
    table.add_column("mean reward", justify="right")
    for index, model in enumerate(config.models):
        mean = result.mean_scores.get(model.name)
        table.add_row(model.name, str(samples_per_prompt(config, index)), "" if mean is None else f"{mean:.4f}")
    console.print(table)
    console.print(f"{result.rows} rows from {result.prompts} prompts ({result.skipped} prompts skipped: no "
                  f"preference among their samples) written to [bold]{result.output}[/]", soft_wrap=True)
    if result.bad_rows:
        console.print(f"{result.bad_rows} malformed prompt row(s) skipped (on_bad_rows: skip)")
    if result.truncated_prompts:
        console.print(f"{result.truncated_prompts} prompt(s) longer than max_prompt_length = "
                      f"{config.max_prompt_length} written to no row (their samples answer a shortened prompt); "
                      f"raise max_prompt_length to keep them")
    if result.unfinished:
        what = "left out of the pairs" if config.unfinished == "drop" else "paired as if they had ended"
        console.print(f"{result.unfinished} sample(s) cut at sampling.max_new_tokens = "
                      f"{config.sampling.max_new_tokens} before their EOS: {what} (unfinished: {config.unfinished})")
    return 0


@hookimpl
def zoo_register_commands(register):
    register("pairs", add_arguments, run, "sample responses, score them with a reward source, write preference data")
