"""``zoo generate MODEL``: what a trained model says, beside the model it started from.

    zoo generate runs/tiny-dpo/model --prompt "Review the soup:"
    zoo generate runs/smollm2-dpo/model --prompt "How do I bake bread?" --max-new-tokens 64
    zoo generate runs/smollm2-dpo/model --adapter --prompts prompts.txt --json

``MODEL`` is a run's ``model/`` folder (or anything ``model.name`` accepts). The model it started
from is read from the run's ``config.yaml`` (``model.name``) unless ``--base`` names another, or
``--base none`` leaves it out. A LoRA run's folder holds the merged weights; ``--adapter`` loads
the base model with the unmerged adapter from ``model/adapter`` instead (the same function,
computed the peft way). Prompts are rendered as the run rendered its training prompts: as a user
turn of the tokenizer's chat template under ``data.chat_template: on``, as they are otherwise; a
model that is no run's gets its template when it has one (``--chat-template`` decides instead). Decoding is greedy unless ``--temperature`` is above 0; ``--seed`` makes sampling repeatable.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from zoo import ConfigError, hookimpl


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a run's model/ folder, or any model.name (tiny, smollm2, a hub id, a .gguf)")
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeat for several)")
    parser.add_argument("--prompts", help="a text file with one prompt per line")
    parser.add_argument("--base", help="the model to compare with (default: the run's model.name; 'none': no "
                                       "comparison)")
    parser.add_argument("--adapter", action="store_true",
                        help="load the base model plus the run's unmerged LoRA adapter (model/adapter)")
    parser.add_argument("--chat-template", choices=("auto", "on", "off"),
                        help="render prompts as a user turn with the tokenizer's template (default: as the run's "
                             "data.chat_template rendered them in training; for a model that is no run's, auto: "
                             "when the tokenizer has a template)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longest response, in tokens (default 64)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy decoding")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (1: off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling (default 0)")
    parser.add_argument("--packed-weights", action="store_true",
                        help="CPU: decode on oneDNN-packed weights (faster; equal to float rounding)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts:
        path = Path(args.prompts)
        try:
            prompts += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--prompts {args.prompts}: cannot read it ({exc})") from None
    if not prompts:
        raise ConfigError("zoo generate: give at least one --prompt TEXT or --prompts FILE (one prompt per line)")
    return prompts


def _run_config(model: str) -> Any:
    """The config of the run whose ``model/`` folder ``model`` is (None when it is not one)."""
    from zoo.app import load_config

    saved = Path(model).expanduser() / ".." / "config.yaml"
    return load_config(saved.resolve()) if Path(model).is_dir() and saved.is_file() else None


def _model_config(name: str, run: Any) -> Any:
    """A ModelConfig for ``name``: the run's own settings (tiny shape, dtype), without its LoRA."""
    import dataclasses

    from zoo import ModelConfig

    if run is None:
        return ModelConfig(name=name)
    return dataclasses.replace(run.model, name=name, lora=None, reference=None)


def _load(name: str, run: Any, *, adapter: Path | None = None) -> tuple[Any, Any]:
    from zoo import load_causal_lm, load_tokenizer

    config = _model_config(name, run)
    tokenizer = load_tokenizer(config)
    model = load_causal_lm(config, tokenizer)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval(), tokenizer


def _render(tokenizer: Any, prompts: list[str], mode: str) -> list[str]:
    has_template = getattr(tokenizer, "chat_template", None) is not None
    if mode == "on" and not has_template:
        raise ConfigError("--chat-template on: the tokenizer has no chat template; use off (or auto)")
    if mode == "off" or not has_template:
        return prompts
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]


def generate_texts(model: Any, tokenizer: Any, prompts: list[str], args: argparse.Namespace) -> list[str]:
    """One response per prompt, sampled as the online algorithms sample (:class:`zoo.rollout.Sampler`)."""
    from zoo.rollout import Sampler, Sampling, encode_prompts

    texts = _render(tokenizer, prompts, args.chat_template)
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts) + 1
    ids, mask = encode_prompts(tokenizer, texts, max_prompt_length=longest)
    sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                        packed_weights=args.packed_weights)
    return Sampler(model, tokenizer)(ids, mask, sampling, seed=args.seed, progress="generating").texts


def _run(args: argparse.Namespace) -> int:
    from zoo.app import to_stderr

    prompts = _prompts(args)
    to_stderr(args.json)  # with --json, standard output is the JSON document
    try:
        return _compare(args, prompts)
    finally:
        to_stderr(False)


def _compare(args: argparse.Namespace, prompts: list[str]) -> int:
    from rich.console import Console

    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens {args.max_new_tokens}: must be >= 1")
    run = _run_config(args.model)
    if args.chat_template is None:
        args.chat_template = "auto" if run is None else ("on" if run.data.chat_template == "on" else "off")
    base = args.base if args.base is not None else (run.model.name if run is not None else None)
    if base == "none":
        base = None
    adapter = None
    if args.adapter:
        adapter = Path(args.model) / "adapter"
        if not adapter.is_dir():
            raise ConfigError(f"--adapter: {adapter} does not exist; only a LoRA run's model/ folder has an adapter "
                              f"(without --adapter the merged weights in {args.model} are used)")
        if base is None:
            raise ConfigError("--adapter needs the base model: name it with --base NAME")
    columns: list[tuple[str, list[str]]] = []
    if base is not None:
        columns.append((f"before ({base})", generate_texts(*_load(base, run), prompts, args)))
    trained = _load(base, run, adapter=adapter) if adapter is not None else _load(args.model, run)
    label = f"after ({args.model}{', unmerged adapter' if adapter is not None else ''})"
    columns.append((label, generate_texts(*trained, prompts, args)))

    if args.json:
        print(json.dumps([{"prompt": p, **{name: texts[i] for name, texts in columns}}
                          for i, p in enumerate(prompts)], indent=2))
        return 0
    console = Console(soft_wrap=True)
    for i, prompt in enumerate(prompts):
        console.print(f"[bold]prompt:[/] {prompt}", highlight=False)
        for name, texts in columns:
            console.print(f"  [bold]{name}:[/] {texts[i]}", highlight=False)
        console.print()
    return 0


@hookimpl
def zoo_register_commands(register):
    register("generate", _add_arguments, _run, "sample from a trained model beside the model it started from")
