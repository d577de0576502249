"""``zoo eval``: run evaluation suites on a saved model and write the results.

    zoo eval --model runs/dpo/model --suites mmlu,arc_easy --data-dir data --limit 50 --output evals/dpo

prints a table of the headline metrics and writes ``DIR/results.json`` (suite → metric → value,
stderr, n, 95% interval, plus the model, data sources and settings) and one
``DIR/samples_<suite>.jsonl`` per suite (item id, each choice's log-likelihood, prediction,
gold). ``--option SUITE.KEY=VALUE`` sets a suite's options (``zoo eval --list`` shows the
suites); ``--reference`` and ``--reward-function`` / ``--reward-model`` provide what the
preference and generation suites compare against.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from zoo import ConfigError, hookimpl


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model to evaluate: 'tiny', a local directory or a hub id")
    parser.add_argument("--suites", help="comma-separated suite names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the registered suites and exit")
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of tables (the suite list, or every metric; progress goes to stderr)")
    parser.add_argument("--num-fewshot", type=int, default=None,
                        help="few-shot examples per question for suites that take them (default: each suite's own)")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep the first N items (per subject for MMLU)")
    parser.add_argument("--data-dir", default=None,
                        help="local copies of the release files (mmlu/, arc/, hellaswag/, ...) instead of the Hub")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass")
    parser.add_argument("--output", default=None, help="directory for results.json and samples_<suite>.jsonl")
    parser.add_argument("--option", action="append", default=[], metavar="SUITE.KEY=VALUE",
                        help="a suite option, e.g. mmlu.subjects=[anatomy,virology] (repeatable)")
    parser.add_argument("--reference", default=None, help="reference model ('tiny', a directory or a hub id)")
    reward = parser.add_mutually_exclusive_group()
    reward.add_argument("--reward-function", default=None, help="a registered reward function")
    reward.add_argument("--reward-model", default=None, help="a reward model directory")
    parser.add_argument("--reward-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="an argument of the reward source (repeatable)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    parser.add_argument("--device", default="auto", help="'auto' (a GPU when there is one), 'cpu', 'cuda', ...")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a hub model's own code to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of any sampling")
    parser.add_argument("--no-share-prefix", action="store_true",
                        help="run every prompt in full instead of reusing the cache of shared prefixes")
    parser.add_argument("--layout", default="blocks", choices=["blocks", "batched"],
                        help="how a batch of log-likelihood requests runs: 'blocks' (one row, each request "
                             "seeing the shared prefix and itself; no padding) or 'batched' (right-padded rows, "
                             "the layout of zoo bench's evaluation); they agree to float rounding")


def parse_options(texts: list[str]) -> dict[str, dict[str, Any]]:
    """``SUITE.KEY=VALUE`` strings (values parsed as YAML) → suite → {key: value}."""
    from zoo.app import parse_override

    options: dict[str, dict[str, Any]] = {}
    for text in texts:
        path, value = parse_override(text)
        if len(path) != 2:
            raise ConfigError(f"--option {text!r} must look like SUITE.KEY=VALUE")
        options.setdefault(path[0], {})[path[1]] = value
    return options


def _reward_args(texts: list[str]) -> dict[str, Any]:
    from zoo.app import parse_override

    args = {}
    for text in texts:
        path, value = parse_override(text)
        args[".".join(path)] = value
    return args


def _list_suites(as_json: bool = False) -> int:
    from zoo.app import console, get_registry

    suites = [{"name": name, "num_fewshot": entry.obj.default_num_fewshot, "plugin": entry.plugin,
               "description": entry.obj.description} for name, entry in get_registry().entries("suites").items()]
    if as_json:
        print(json.dumps(suites, indent=2))
        return 0
    # One block per suite: a description never gets cut to a column's width.
    console.print("[bold]evaluation suites[/]")
    for suite in suites:
        shots = "" if suite["num_fewshot"] is None else f", {suite['num_fewshot']}-shot by default"
        console.print(f"[bold]{suite['name']}[/] ({suite['plugin']}{shots})", highlight=False)
        console.print(f"    {suite['description']}", highlight=False)
    return 0


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: no CUDA GPU is available here; use --device cpu")
    return device


def _run(args: argparse.Namespace) -> int:
    if not args.json:
        return _evaluate(args)
    from zoo.app import to_stderr

    to_stderr()  # standard output is the JSON
    try:
        return _evaluate(args)
    finally:
        to_stderr(False)


def _evaluate(args: argparse.Namespace) -> int:
    if args.list:
        return _list_suites(args.json)
    if not args.suites:
        raise ConfigError("zoo eval needs --suites (zoo eval --list shows the suites)")
    from zoo import ModelConfig, RewardConfig, frozen, load_causal_lm, load_tokenizer
    from zoo.app import console, err_console
    from zoo.eval import check_output_dir, check_settings, make_suites, run_header, run_suites, write_outputs

    if args.output:
        check_output_dir(args.output, "--output")  # before the suites run, not after
    suites = make_suites([s.strip() for s in args.suites.split(",") if s.strip()], parse_options(args.option))
    check_settings(suites, num_fewshot=args.num_fewshot, limit=args.limit, batch_size=args.batch_size)
    reward_args = _reward_args(args.reward_arg)
    if reward_args and not (args.reward_function or args.reward_model):
        raise ConfigError("--reward-arg needs --reward-function or --reward-model")
    for suite in suites:  # data problems surface before any model is loaded
        suite.load(args.data_dir, args.limit)
        suite.loaded = True

    device = _device(args.device)
    rewarded = bool(args.reward_function or args.reward_model)
    if not args.model and args.reference:
        raise ConfigError("--reference needs --model: the reference is compared with the evaluated model")
    if not args.model:
        # A reward source that does all the scoring needs no policy: it is neither asked for nor loaded.
        needing = [s.name for s in suites if s.uses_model(rewarded or None, args.reference)]
        if needing or not rewarded:
            raise ConfigError(f"zoo eval needs --model: the suite(s) {', '.join(needing or [s.name for s in suites])} "
                              f"score the model itself (only suites scored by --reward-model or --reward-function "
                              f"run without one).")
    if args.model:
        model_config = ModelConfig(name=args.model, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
        tokenizer = load_tokenizer(model_config, key="--model")
        model = frozen(load_causal_lm(model_config, tokenizer, key="--model")).to(device)
    else:
        model_config, tokenizer, model = ModelConfig(dtype=args.dtype), None, None
    reference = None
    if args.reference:
        reference = frozen(load_causal_lm(model_config, tokenizer, name=args.reference, key="--reference")).to(device)
    reward = None
    if args.reward_function or args.reward_model:
        from zoo.app import load_reward_source

        reward = load_reward_source(RewardConfig(function=args.reward_function, model=args.reward_model,
                                                 args=reward_args), tokenizer=tokenizer).to(device)
        if tokenizer is None:
            tokenizer = getattr(reward, "tokenizer", None)

    # Each suite shows its progress (zoo.progress): a bar on a terminal, a line every few seconds in a log.
    results = run_suites(model, tokenizer, suites, num_fewshot=args.num_fewshot, batch_size=args.batch_size,
                         reward=reward, reference=reference, seed=args.seed, share_prefix=not args.no_share_prefix,
                         layout=args.layout)
    if args.json:
        print(json.dumps({name: result.summary() for name, result in results.items()}, indent=2))
    else:
        _print_table(suites, results)
        _print_details(suites, results)
    if args.output:
        header = run_header(model=args.model, reference=args.reference,
                            reward=args.reward_function or args.reward_model, data_dir=args.data_dir,
                            num_fewshot=args.num_fewshot, limit=args.limit, batch_size=args.batch_size,
                            seed=args.seed, dtype=args.dtype, device=str(device), layout=args.layout)
        path = write_outputs(args.output, results, header)
        (err_console if args.json else console).print(
            f"[bold]results written to[/] {path} (samples: samples_<suite>.jsonl beside it)", soft_wrap=True)
    return 0


def _print_table(suites, results) -> None:
    from rich.table import Table

    from zoo.app import console

    table = Table(title="evaluation")
    for column, justify in (("suite", "left"), ("shots", "right"), ("metric", "left"), ("value", "right"),
                            ("± stderr", "right"), ("n", "right")):
        table.add_column(column, justify=justify)
    for suite in suites:
        result = results[suite.name]
        first = True
        for name, metric in result.metrics.items():
            if not suite.headline(name):
                continue
            table.add_row(suite.name if first else "", str(result.settings.get("num_fewshot", "")) if first else "",
                          name, f"{metric.value:.4f}", "" if metric.stderr is None else f"{metric.stderr:.4f}",
                          "" if metric.n is None else str(metric.n))
            first = False
    console.print(table)


def _interval(metric) -> str:
    ci = metric.ci95
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _print_details(suites, results) -> None:
    """The metrics the summary table leaves out (MMLU: per subject, gold letters), with 95% intervals."""
    from rich.table import Table

    from zoo.app import console

    for suite in suites:
        result = results[suite.name]
        details = [(name, metric) for name, metric in result.metrics.items() if not suite.headline(name)]
        if not details:
            continue
        table = Table(title=f"{suite.name}: details")
        for column, justify in (("metric", "left"), ("value", "right"), ("95% interval", "right"), ("n", "right")):
            table.add_column(column, justify=justify, overflow="fold")
        for name, metric in details:
            table.add_row(name, f"{metric.value:.4f}", _interval(metric), "" if metric.n is None else str(metric.n))
        console.print(table)


@hookimpl
def zoo_register_commands(register):
    register("eval", _add_arguments, _run, "evaluate a model on benchmark suites (MMLU, ARC, HellaSwag, ...)")
