"""Peak tensor memory of one DPO step on SmolLM2: zoo padded, zoo padding-free and TRL, no timing runs.

    python benchmarks/dpo_memory.py off     # activation checkpointing off in both tools
    python benchmarks/dpo_memory.py on

The memory runs of :mod:`benchmarks.throughput` alone (its ``run_zoo`` / ``run_trl`` with
``memory=True``): batch 4 pairs of HH, max length 256 (prompt 128), reference log-probs
precomputed by both tools, one training step, the peak of live tensor memory over the whole run
(model loading, reference precompute, the step).
"""
import sys

import torch

if len(sys.argv) != 2 or sys.argv[1] not in ("off", "on"):
    raise SystemExit("usage: python benchmarks/dpo_memory.py off|on")
sys.argv = ["throughput.py", "--model-dir", "smollm2", "--batch-size", "4", "--max-length", "256",
            "--max-prompt-length", "128", "--max-examples", "8", "--precompute", "on", "--memory-steps", "1",
            "--gradient-checkpointing", sys.argv[1]]
from zoo_benchmarks import throughput as t  # noqa: E402
from zoo_benchmarks.model_source import model_directory  # noqa: E402

args = t.parse_args(sys.argv[1:])
t.quiet()
torch.set_num_threads(1)
model_dir = model_directory("smollm2")
print(f"one DPO step, batch 4, max length 256, activation checkpointing {args.gradient_checkpointing} in both tools")
out = {}
for name, run in [("zoo-padded", lambda: t.run_zoo(args, model_dir, precompute=True, memory=True, padding_free=False)),
                  ("zoo-padding-free", lambda: t.run_zoo(args, model_dir, precompute=True, memory=True,
                                                          padding_free=True)),
                  ("trl", lambda: t.run_trl(args, model_dir, precompute=True, memory=True))]:
    out[name] = run() / 2**20
    print(f"{name}: peak {out[name]:.1f} MiB", flush=True)
for name in ("zoo-padded", "zoo-padding-free"):
    print(f"{name}/trl peak memory: {out[name] / out['trl']:.2f}x")
