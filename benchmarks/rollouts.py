"""Rollout speed: zoo's sampler against transformers' ``generate``, and where an online step's time goes.

    python benchmarks/rollouts.py --model-dir smollm2 --batch-size 8 --max-new-tokens 32 --repeats 3
    python benchmarks/rollouts.py --model-dir smollm2 --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz \
        --batch-size 4 --samples-per-prompt 4 --max-prompt-length 128 --max-new-tokens 48 --temperature 0.8
    python benchmarks/rollouts.py --model-dir smollm2 --split-steps 3 --algorithm ppo

Part 1 samples the same left-padded prompts (the first ``--batch-size`` built-in questions, or
of the preference file ``--data`` with the chat template, tokenised as training does),
``--samples-per-prompt`` responses each (``generate``'s ``num_return_sequences``), with
:class:`zoo.rollout.sampler.Sampler` (its own decoding loop, :mod:`zoo.rollout.decoding`) and
with ``model.generate`` given the same generation config and seed (KV cache on, sampling at
``--temperature``, default 1; 0 is greedy), alternating ``--repeats`` times. It prints generated
tokens per second of each (the median run), the ratio, and whether both produced the same tokens:
always under greedy decoding; under sampling the draws are the same until the first row stops,
after which the sampler draws for fewer rows (the same distribution, other draws).

``--packed-weights`` adds zoo's sampler with ``Sampling.packed_weights`` (decoding steps on
oneDNN-packed CPU weights, :mod:`zoo.rollout.packed`) as a third contender in the same
alternation; its tokens equal ``generate``'s under greedy decoding unless float rounding flips a
near-tie, and under sampling they are other draws of the same distribution.

``--shared-prefill`` also times the sampler on the prompts repeated ``--samples-per-prompt``
times (each copy prefilled, as ``generate`` does) against ``samples_per_prompt`` (one prefill per
prompt), alternating with the same seeds, and says whether the sequences are the same.

Part 2 (``--split-steps N``) trains an online algorithm (``--algorithm``: ppo or
rejection_sampling) for N steps after one warm-up step and splits each step's wall time into
generation (inside the sampler), experience scoring (the rest of ``make_experience``: policy,
reference and value forward passes, rewards) and training (the minibatch forward and backward
passes and optimiser steps, and the loop around them).

``--model-dir`` takes a ``save_pretrained`` directory, a ``.gguf`` file or ``smollm2``; without it
the built-in tiny model. ``--threads`` pins torch's threads (default 1).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def load(model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval(), tokenizer


def prompts_for(tokenizer, count: int, max_prompt_length: int, data: str | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` left-padded prompts: the built-in questions, or the first prompts of the preference
    file ``data`` as an online training run reads them (chat template on, cut to ``max_prompt_length``)."""
    from zoo.rollout.batches import encode_prompts

    if data is None:
        return encode_prompts(tokenizer, (PROMPTS * (count // len(PROMPTS) + 1))[:count], max_prompt_length)
    from zoo.config.schema import DataConfig
    from zoo.data.collate import Collator
    from zoo.data.dataset import load_examples

    config = DataConfig(train=data, max_prompt_length=max_prompt_length, max_length=max_prompt_length + 64,
                        chat_template="on", on_bad_rows="skip")
    examples, _ = load_examples(data, "train", "prompt", config, tokenizer, limit=count)
    batch = Collator(tokenizer.pad_token_id).pad(examples)  # the left-padded prompts an online step samples from
    return batch.prompt_ids, batch.prompt_attention_mask


PROMPTS = [
    "Write a short poem about the sea.", "What is the capital of France?", "Explain photosynthesis simply.",
    "Give me three tips for learning to cook.", "Why is the sky blue?", "Describe a cat to someone who never saw one.",
    "How do I make a cup of tea?", "What are prime numbers?", "Summarise the plot of a heist film in two lines.",
    "List four fruits that are red.", "What does a compiler do?", "Tell me a fun fact about octopuses.",
    "How far is the Moon from Earth?", "Suggest a name for a bakery.", "What is the boiling point of water?",
    "Write a haiku about autumn.",
]


def time_generation(args: argparse.Namespace, model, tokenizer) -> dict:
    from zoo.rollout.sampler import Sampler

    ids, mask = prompts_for(tokenizer, args.batch_size, args.max_prompt_length, args.data)
    print(f"{ids.shape[0]} prompts of {int(mask.sum(1).min())}-{int(mask.sum(1).max())} tokens "
          f"(padded to {ids.shape[1]}), {args.samples_per_prompt} sample(s) each", flush=True)
    sampler = Sampler(model, tokenizer)
    from zoo.rollout.settings import Sampling

    settings = Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=0, top_p=1.0,
                        samples_per_prompt=args.samples_per_prompt)
    config = sampler._generation_config(settings)
    tools = ["zoo", "zoo packed", "generate"] if args.packed_weights else ["zoo", "generate"]
    packed = dataclasses.replace(settings, packed_weights=True)
    times: dict[str, list[float]] = {tool: [] for tool in tools}
    tokens: dict[str, int] = dict.fromkeys(tools, 0)
    same = dict.fromkeys(tools[:-1], True)
    from zoo.rollout.sampler import first_eos_mask

    for repeat in range(args.repeats + 1):  # the first round warms every tool up and is not timed
        responses, counts, seconds = {}, {}, {}
        for tool in tools:
            start = time.perf_counter()
            if tool == "generate":
                with torch.no_grad(), torch.random.fork_rng():
                    torch.manual_seed(repeat)
                    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
                seconds[tool] = time.perf_counter() - start
                response = out.sequences[:, ids.shape[1]:]
                kept = first_eos_mask(response, sampler.eos_ids)
            else:
                generation = sampler(ids, mask, packed if tool == "zoo packed" else settings, seed=repeat)
                seconds[tool] = time.perf_counter() - start
                response = generation.sequences[:, ids.shape[1]:]
                kept = generation.response_mask[:, ids.shape[1]:]
            counts[tool] = int(kept.sum())
            responses[tool] = response.masked_fill(~kept, 0)
        for tool in same:
            theirs = responses["generate"]
            same[tool] &= responses[tool].shape == theirs.shape and bool((responses[tool] == theirs).all())
        if repeat:
            for tool in tools:
                times[tool].append(seconds[tool])
                tokens[tool] += counts[tool]
        print(f"[{repeat or 'warm-up'}] " + "; ".join(f"{tool} {counts[tool]} tokens in {seconds[tool]:6.2f} s"
                                                     for tool in tools), flush=True)
    rate = {tool: tokens[tool] / sum(times[tool]) for tool in tools}
    median = {tool: statistics.median(times[tool]) for tool in tools}
    print("generated tokens/s: " + ", ".join(f"{tool} {rate[tool]:.1f}" for tool in tools))
    for tool in tools[:-1]:
        print(f"{tool} / generate {rate[tool] / rate['generate']:.2f}x (median-run ratio "
              f"{median['generate'] / median[tool]:.2f}x; per-run ratios "
              f"{', '.join(f'{g / z:.2f}' for g, z in zip(times['generate'], times[tool]))}); "
              f"identical samples: {same[tool]}")
    return {"rate": rate, "same": same}


def time_shared_prefill(args: argparse.Namespace, model, tokenizer) -> None:
    """The sampler on the prompts repeated ``--samples-per-prompt`` times (each copy prefilled, as
    ``generate`` does) against the same prompts with ``samples_per_prompt`` (one prefill each),
    alternating, same seeds: the seconds of each and whether the sequences are the same."""
    from zoo.rollout.sampler import Sampler
    from zoo.rollout.settings import Sampling

    n = args.samples_per_prompt
    ids, mask = prompts_for(tokenizer, args.batch_size, args.max_prompt_length, args.data)
    sampler = Sampler(model, tokenizer)
    settings = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=0, top_p=1.0)
    for repeat in range(args.repeats or 3):  # --repeats 0 skips part 1, not this
        start = time.perf_counter()
        repeated = sampler(ids.repeat_interleave(n, 0), mask.repeat_interleave(n, 0), Sampling(**settings),
                           seed=repeat)
        middle = time.perf_counter()
        shared = sampler(ids, mask, Sampling(samples_per_prompt=n, **settings), seed=repeat)
        end = time.perf_counter()
        print(f"[{repeat + 1}] repeated prompt rows {middle - start:6.2f} s; shared prefill {end - middle:6.2f} s; "
              f"same sequences: {torch.equal(repeated.sequences, shared.sequences)}", flush=True)


def split_step(args: argparse.Namespace, model_dir: Path) -> dict:
    import lightning as L

    import zoo.rollout.sampler as generation
    from zoo.config import load_config
    from zoo.registry import get_registry
    from zoo.training_guard import train

    spent = {"generation": 0.0, "experience": 0.0}
    original_call = generation.Sampler.__call__

    def timed_call(self, *a, **k):
        start = time.perf_counter()
        try:
            return original_call(self, *a, **k)
        finally:
            spent["generation"] += time.perf_counter() - start

    algorithm_cls = get_registry().algorithm(args.algorithm)
    original_experience = algorithm_cls.make_experience

    def timed_experience(self, *a, **k):
        start = time.perf_counter()
        try:
            return original_experience(self, *a, **k)
        finally:
            spent["experience"] += time.perf_counter() - start

    steps: list[dict[str, float]] = []

    class Split(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            spent.update(generation=0.0, experience=0.0, start=time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            total = time.perf_counter() - spent["start"]
            steps.append({"generation": spent["generation"], "scoring": spent["experience"] - spent["generation"],
                          "training": total - spent["experience"], "total": total})

    algorithm_args = {"max_new_tokens": args.max_new_tokens}
    if args.algorithm == "ppo":
        algorithm_args.update(ppo_epochs=1, num_minibatches=1)
    raw = {"algorithm": args.algorithm, "algorithm_args": algorithm_args, "model": {"name": str(model_dir)},
           "data": {"train": "builtin:tiny_prompts", "builtin_size": 64, "eval_fraction": 0.0,
                    "max_length": args.max_prompt_length + args.max_new_tokens,
                    "max_prompt_length": args.max_prompt_length},
           "reward": {"function": "tiny_sentiment"},
           "train": {"batch_size": args.batch_size, "max_steps": args.split_steps + 1, "learning_rate": 1e-5,
                     "accelerator": "cpu", "devices": 1, "progress_bar": False, "log_every_n_steps": 50}}
    generation.Sampler.__call__ = timed_call
    algorithm_cls.make_experience = timed_experience
    try:
        with tempfile.TemporaryDirectory() as scratch:
            raw["output_dir"] = str(Path(scratch) / "run")
            train(load_config(raw=raw), callbacks=[Split()])
    finally:
        generation.Sampler.__call__ = original_call
        algorithm_cls.make_experience = original_experience
    timed = steps[1:]  # the first step warms up
    mean = {key: statistics.mean(s[key] for s in timed) for key in timed[0]}
    print(f"{args.algorithm} step (mean of {len(timed)} after one warm-up), batch {args.batch_size} prompts, "
          f"{args.max_new_tokens} new tokens: {mean['total']:.2f} s = generation {mean['generation']:.2f} s "
          f"({100 * mean['generation'] / mean['total']:.0f}%), experience scoring {mean['scoring']:.2f} s "
          f"({100 * mean['scoring'] / mean['total']:.0f}%), training {mean['training']:.2f} s "
          f"({100 * mean['training'] / mean['total']:.0f}%)")
    return mean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=None, help="a save_pretrained directory, a .gguf file or 'smollm2'")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-prompt-length", type=int, default=64)
    parser.add_argument("--samples-per-prompt", type=int, default=1,
                        help="responses per prompt (generate's num_return_sequences)")
    parser.add_argument("--shared-prefill", action="store_true",
                        help="also time the sampler with each prompt repeated against samples_per_prompt")
    parser.add_argument("--data", default=None,
                        help="a preference file whose prompts to sample from (default: built-in questions)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy decoding")
    parser.add_argument("--split-steps", type=int, default=0, help="also split N online training steps")
    parser.add_argument("--algorithm", default="ppo", choices=["ppo", "rejection_sampling"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--packed-weights", action="store_true",
                        help="also time zoo's sampler with Sampling.packed_weights (oneDNN-packed CPU weights)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from zoo_benchmarks.model_source import model_directory
    from zoo_benchmarks.mmlu_parity import save_tiny

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = model_directory(args.model_dir) if args.model_dir else save_tiny(Path(scratch) / "tiny", bos=False,
                                                                                     window=512)
        print(f"model {model_dir}; batch {args.batch_size}; {args.max_new_tokens} new tokens; "
              f"threads {torch.get_num_threads()}", flush=True)
        model, tokenizer = load(model_dir)
        if args.repeats:
            time_generation(args, model, tokenizer)
        if args.shared_prefill:
            time_shared_prefill(args, model, tokenizer)
        del model
        if args.split_steps:
            split_step(args, model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
