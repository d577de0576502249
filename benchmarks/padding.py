"""Less padding on a real length mix: padded vs length-grouped vs padding-free (packed) batches.

    python benchmarks/padding.py --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz

Part 1 trains DPO with zoo (reference cache on, so only the policy's work is timed) in four
layouts, alternating them ``--repeats`` times in this one process, and prints steady-state real
tokens/s (as ``throughput.py`` measures it), the share of computed positions that are padding,
and each layout's speed-up over the naive padded path (random batches padded to their longest
sequence):

* ``padded``: random batches, right-padded (the naive path);
* ``grouped``: ``data.group_by_length`` (batches of similar lengths, still padded);
* ``packed``: ``data.padding_free`` (random batches, sequences packed into rows of max length);
* ``grouped+packed``: both.

Part 2 times one forward + backward of the policy on the same batches in five layouts: padded
rows (causal sdpa); packed rows of ``max_length`` run in row groups with sdpa (the block-diagonal
mask comes from transformers, built from the restarting ``position_ids``); the same rows in one
forward pass, every row as wide as the fullest; every sequence of the batch in one single row
with sdpa (what ``DataCollatorWithFlattening`` produces; on CPU the mask is dense, so attention
grows with the square of the whole batch's tokens); and that single row with zoo's per-sequence
attention (``zoo_varlen``, :mod:`zoo.forward.attention`: attention grows with each sequence's own square),
which is what ``data.padding_free`` runs for sdpa models, and so what part 1's packed layouts ran.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from throughput import DEFAULT_DATA, prepare_model_dir, quiet, run_zoo

LAYOUTS = {
    "padded": {"padding_free": False, "group_by_length": False},
    "grouped": {"padding_free": False, "group_by_length": True},
    "packed": {"padding_free": True, "group_by_length": False},
    "grouped+packed": {"padding_free": True, "group_by_length": True},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model-dir", default=None, help="a saved causal LM (default: the built-in tiny model)")
    parser.add_argument("--max-examples", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--max-prompt-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layout-batches", type=int, default=6, help="batches timed in part 2 (0: skip it)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    # What throughput.run_zoo reads besides the above.
    args.algorithm, args.memory_steps, args.padding_free, args.group_by_length = "dpo", 0, False, False
    args.tiny = {}
    return args


def padding_share(meter_tokens: list[int], positions: list[int]) -> float:
    return 1 - sum(meter_tokens) / sum(positions)


def train_layouts(args: argparse.Namespace, model_dir: Path) -> dict[str, dict[str, float]]:
    import lightning as L

    from zoo.forward.packing import run_layout

    rates: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    shares: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, options in LAYOUTS.items():
            positions: list[int] = []

            class Positions(L.Callback):
                def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                    positions.append(run_layout(pl_module.policy, batch.packed).num_positions
                                     if batch.packed is not None else batch.input_ids.numel())

            meter = run_zoo(args, model_dir, precompute=True, extra_callbacks=[Positions()], **options)
            rates[name].append(meter.tokens_per_second(args.warmup, args.windows)[0])
            shares[name] = padding_share(meter.tokens, positions)
            print(f"  {name:15s} {rates[name][-1]:8.0f} tokens/s", flush=True)
    return {name: {"tokens_per_second": statistics.median(rates[name]), "padding_share": shares[name]}
            for name in LAYOUTS}


def time_layouts(args: argparse.Namespace, model_dir: Path) -> dict[str, float]:
    """Seconds per forward + backward of the policy, per layout, on the same random batches."""
    import random

    from transformers import AutoModelForCausalLM

    from zoo.forward.attention import enable_varlen_attention
    from zoo.config import DataConfig, ModelConfig
    from zoo.data.collate import Collator
    from zoo.data.dataset import load_examples
    from zoo.forward.logprobs import sequence_logprobs
    from zoo.models import load_tokenizer
    from zoo.forward.packing import pack_sequences, packed_sequence_logprobs

    tokenizer = load_tokenizer(ModelConfig(name=str(model_dir)))
    config = DataConfig(train=str(args.data), max_length=args.max_length, max_prompt_length=args.max_prompt_length,
                        on_bad_rows="skip")
    examples, _ = load_examples(config.train, "train", "pairwise", config, tokenizer)
    random.Random(0).shuffle(examples)
    model = AutoModelForCausalLM.from_pretrained(model_dir).train()
    varlen_model = copy.deepcopy(model)
    enable_varlen_attention(varlen_model)  # shares nothing with ``model``: the sdpa layouts stay sdpa
    collate = Collator(tokenizer.pad_token_id)
    batches = [collate(examples[i * args.batch_size: (i + 1) * args.batch_size]) for i in range(args.layout_batches)]

    def padded(batch):
        return sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, 2)

    def packed_with(capacity, grouped=True, network=model):
        def run(batch):
            lengths = batch.attention_mask.sum(-1).tolist()
            rows = pack_sequences(batch.input_ids, lengths, capacity, tokenizer.pad_token_id)
            if not grouped:  # every row as wide as the fullest: one forward pass
                rows.row_groups = [(0, rows.input_ids.shape[0], rows.input_ids.shape[1])]
            return packed_sequence_logprobs(network, rows, batch.loss_mask, 2)

        return run

    layouts = {"padded rows": padded,
               f"packed rows of {args.max_length}": packed_with(args.max_length),
               "  same rows, one pass": packed_with(args.max_length, grouped=False),
               "one flattened row": packed_with(10 ** 9),
               "one row, zoo_varlen": packed_with(args.max_length, network=varlen_model)}
    seconds: dict[str, list[float]] = {name: [] for name in layouts}
    for batch in batches:
        for name, forward in layouts.items():  # interleaved: every layout sees the same load
            start = time.perf_counter()
            forward(batch).sum.sum().backward()
            seconds[name].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
            varlen_model.zero_grad(set_to_none=True)
    return {name: statistics.median(values[1:] or values) for name, values in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = prepare_model_dir(args, Path(scratch))
        print(f"DPO on {args.data.name}, batch {args.batch_size} pairs, max length {args.max_length}, "
              f"{torch.get_num_threads()} thread(s); reference cache on")
        results = train_layouts(args, model_dir)
        base = results["padded"]["tokens_per_second"]
        print(f"{'layout':15s} {'tokens/s':>9s} {'padding':>8s} {'vs padded':>9s}")
        for name, figures in results.items():
            print(f"{name:15s} {figures['tokens_per_second']:9.0f} {100 * figures['padding_share']:7.1f}% "
                  f"{figures['tokens_per_second'] / base:8.2f}x")
        if args.layout_batches:
            timings = time_layouts(args, model_dir)
            print("forward + backward per batch (median):")
            reference = timings["padded rows"]
            for name, value in timings.items():
                print(f"  {name:26s} {value * 1000:8.0f} ms  {reference / value:5.2f}x vs padded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
