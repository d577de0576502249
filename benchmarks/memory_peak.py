"""Where zoo's peak tensor memory of a DPO step on SmolLM2 happens, and what is alive then.

    python benchmarks/memory_peak.py padded          # or padding-free; add "on" for checkpointing
    python benchmarks/memory_peak.py padded on

The memory run of :mod:`benchmarks.dpo_memory` (batch 4 pairs of HH, max length 256, prompt 128,
reference log-probs precomputed, one training step) under a tensor tracker that, whenever the
live total reaches a new high, records the Python call stack (zoo's, lightning's and the
benchmark's frames) and the largest live storages with their shapes. Prints the phase of the run
at the peak (loading, reference fill, forward, backward, optimiser step, saving), the stack and
the live tensors by size, next to the floor of parameters, gradients and AdamW moments.
"""
from __future__ import annotations

import sys
import traceback
from collections import Counter

import torch

from zoo_benchmarks import throughput as t
from zoo_benchmarks.model_source import model_directory

USAGE = "usage: python benchmarks/memory_peak.py padded|padding-free [off|on]"
MiB = 2 ** 20
#: A new high is recorded only this far above the last recorded one (keeps the tracker cheap).
STEP = 8 * MiB
#: Frames worth showing: the code that decides what is alive.
KEEP = ("/zoo/", "/plugins/", "lightning/pytorch/loops", "lightning/pytorch/core/optimizer", "torch/optim/",
        "benchmarks/", "transformers/models/llama", "peft/tuners")


class WherePeak(t.TensorMemoryPeak):
    """:class:`TensorMemoryPeak` that keeps the stack and the live storages at the highest peak."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded = 0
        self.stack: list[str] = []
        self.tensors: list[tuple[int, str]] = []
        self.shapes: dict[int, str] = {}

    def _track(self, tensor: torch.Tensor) -> None:
        before = len(self._seen)
        super()._track(tensor)
        if len(self._seen) != before:
            try:
                self.shapes[id(tensor.untyped_storage())] = f"{tuple(tensor.shape)} {str(tensor.dtype)[6:]}"
            except (RuntimeError, NotImplementedError):
                pass
        if self.peak >= self.recorded + STEP and self.live == self.peak:
            self.recorded = self.peak
            frames = traceback.extract_stack()[:-3]
            self.stack = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}" for f in frames
                          if any(k in f.filename for k in KEEP)]
            live = [(nbytes, self.shapes.get(id(storage), "?")) for storage, nbytes in self._seen.items()]
            self.tensors = sorted(live, reverse=True)


def main(argv: list[str]) -> None:
    if len(argv) not in (1, 2) or argv[0] not in ("padded", "padding-free") or \
            (len(argv) == 2 and argv[1] not in ("off", "on")):
        raise SystemExit(USAGE)
    layout, checkpointing = argv[0], (argv[1] if len(argv) == 2 else "off")
    throughput_argv = ["--model-dir", "smollm2", "--batch-size", "4", "--max-length", "256",
                       "--max-prompt-length", "128", "--max-examples", "8", "--precompute", "on",
                       "--memory-steps", "1", "--gradient-checkpointing", checkpointing]
    args = t.parse_args(throughput_argv)
    t.quiet()
    torch.set_num_threads(1)
    model_dir = model_directory("smollm2")
    tracker = WherePeak()
    original = t.peak_memory

    class _Peak:
        def __enter__(self):
            tracker.__enter__()
            self.result: dict[str, int] = {}
            return self.result

        def __exit__(self, *exc):
            tracker.__exit__(*exc)
            self.result["bytes"] = tracker.peak

    t.peak_memory = lambda: _Peak()
    t.run_zoo(args, model_dir, precompute=True, memory=True, padding_free=layout == "padding-free")
    t.peak_memory = original

    print(f"zoo {layout}, one DPO step, batch 4, max length 256, checkpointing {checkpointing}")
    print(f"peak live tensor memory: {tracker.peak / MiB:.1f} MiB (recorded at {tracker.recorded / MiB:.1f} MiB)")
    print("stack at the peak (innermost last):")
    for line in tracker.stack[-14:]:
        print(f"  {line}")
    print("live storages at the peak, by shape:")
    groups: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for nbytes, shape in tracker.tensors:
        groups[shape] += nbytes
        counts[shape] += 1
    for shape, nbytes in groups.most_common(12):
        print(f"  {nbytes / MiB:9.1f} MiB  {counts[shape]:4d} x {shape}")
    total = sum(n for n, _ in tracker.tensors)
    print(f"  {total / MiB:9.1f} MiB  in {len(tracker.tensors)} storages")


if __name__ == "__main__":
    main(sys.argv[1:])
