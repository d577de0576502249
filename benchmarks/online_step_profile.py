"""Where one online training step's time goes: generation, reference, other scoring, training.

    python benchmarks/online_step_profile.py --model-dir smollm2 --algorithm ppo --batch-size 4 \\
        --max-new-tokens 16 --steps 1 --output benchmarks/results/online_step_profile.md

Trains ``--algorithm`` (ppo, grpo, rloo, online_dpo or rejection_sampling) for one warm-up step and
``--steps`` timed steps on the built-in prompts with the ``tiny_sentiment`` reward, and splits each
step's wall time into

* generation: inside :class:`zoo.rollout.sampler.Sampler` (prefill and decoding);
* reference: the reference model's log-probs of the samples (``ExperienceContext.logprobs`` on
  the reference);
* other scoring: the rest of ``make_experience`` (the policy's and a value head's forward passes,
  the reward, advantages);
* training: the minibatch forward and backward passes, optimiser steps and the loop around them.

It writes a Markdown table with the command, the machine's load average before and after, the
commit and the date. Wall times on a shared machine move with its load; the shares of one step
move less, since the parts run one after another in the same process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PARTS = ("generation", "reference", "other scoring", "training")


def profile(args: argparse.Namespace, model_dir: Path) -> list[dict[str, float]]:
    import lightning as L

    import zoo.algorithm as algorithm
    import zoo.rollout.sampler as generation
    from zoo.config import load_config
    from zoo.registry import get_registry
    from zoo.training_guard import train

    spent = {"generation": 0.0, "reference": 0.0, "experience": 0.0, "start": 0.0}

    def timed(key, original, select=lambda *a, **k: True):
        def wrapper(*a, **k):
            if not select(*a, **k):
                return original(*a, **k)
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[key] += time.perf_counter() - start
        return wrapper

    algorithm_cls = get_registry().algorithm(args.algorithm)
    patches = [(generation.Sampler, "__call__", timed("generation", generation.Sampler.__call__)),
               (algorithm.ExperienceContext, "logprobs",
                timed("reference", algorithm.ExperienceContext.logprobs,
                      lambda ctx, model, *a, **k: model is not None and model is ctx.reference)),
               (algorithm_cls, "make_experience", timed("experience", algorithm_cls.make_experience))]
    steps: list[dict[str, float]] = []

    class Split(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            spent.update(generation=0.0, reference=0.0, experience=0.0, start=time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            total = time.perf_counter() - spent["start"]
            steps.append({"generation": spent["generation"], "reference": spent["reference"],
                          "other scoring": spent["experience"] - spent["generation"] - spent["reference"],
                          "training": total - spent["experience"], "total": total})

    algorithm_args = {"max_new_tokens": args.max_new_tokens}
    if args.algorithm == "ppo":
        algorithm_args.update(ppo_epochs=1, num_minibatches=1)
    raw = {"algorithm": args.algorithm, "algorithm_args": algorithm_args, "model": {"name": str(model_dir)},
           "data": {"train": "builtin:tiny_prompts", "builtin_size": 64, "eval_fraction": 0.0,
                    "max_length": args.max_prompt_length + args.max_new_tokens,
                    "max_prompt_length": args.max_prompt_length},
           "reward": {"function": "tiny_sentiment"},
           "train": {"batch_size": args.batch_size, "max_steps": args.steps + 1, "learning_rate": 1e-5,
                     "accelerator": "cpu", "devices": 1, "progress_bar": False, "log_every_n_steps": 50}}
    originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    for owner, name, wrapper in patches:
        setattr(owner, name, wrapper)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            raw["output_dir"] = str(Path(scratch) / "run")
            train(load_config(raw=raw), callbacks=[Split()])
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    return steps[1:]  # the first step warms up


def report(args: argparse.Namespace, steps: list[dict[str, float]], loads: tuple[float, float], command: str) -> str:
    mean = {key: statistics.mean(s[key] for s in steps) for key in (*PARTS, "total")}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    lines = [
        f"# One online step on {args.model_dir or 'the tiny model'}: where the time goes", "",
        "```", command, "```", "",
        f"{args.algorithm}, {args.batch_size} prompts per step, up to {args.max_new_tokens} new tokens, prompts up to "
        f"{args.max_prompt_length} tokens, {torch.get_num_threads()} torch thread(s); mean of {len(steps)} timed "
        f"step(s) after one warm-up step. Measured {date.today().isoformat()} at commit {commit}, load average "
        f"{loads[0]:.1f} before and {loads[1]:.1f} after (2 CPU cores): read the shares, not the seconds.", "",
        "| part | seconds | share |", "|---|--:|--:|",
    ]
    for part in PARTS:
        lines.append(f"| {part} | {mean[part]:.1f} | {100 * mean[part] / mean['total']:.0f}% |")
    lines.append(f"| step | {mean['total']:.1f} | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=None, help="a save_pretrained directory, a .gguf file or 'smollm2'")
    parser.add_argument("--algorithm", default="ppo", choices=["ppo", "grpo", "rloo", "online_dpo",
                                                              "rejection_sampling"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--max-prompt-length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1, help="timed steps after the warm-up step")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, help="write the Markdown report here (default: print it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from zoo_benchmarks.mmlu_parity import save_tiny
    from zoo_benchmarks.model_source import model_directory

    command = "python benchmarks/online_step_profile.py " + " ".join(argv if argv is not None else sys.argv[1:])
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = model_directory(args.model_dir) if args.model_dir else save_tiny(Path(scratch) / "tiny", bos=False,
                                                                                     window=512)
        steps = profile(args, model_dir)
    text = report(args, steps, (before, os.getloadavg()[0]), command)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
