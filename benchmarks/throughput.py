"""Training throughput, peak memory and MFU of any algorithm, and the same run in TRL side by side.

    python benchmarks/throughput.py --data ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz --against trl
    python benchmarks/throughput.py --algorithm sft --model-dir runs/sft/model --data DATA --against trl
    python benchmarks/throughput.py --data DATA --padding-free --group-by-length --precompute on

For each reference setting (``--precompute off``: the reference forward pass runs every step;
``on``: both tools precompute reference log-probs before training, zoo with its reference cache,
TRL with ``precompute_ref_log_probs``), zoo and TRL train the same model (``--model-dir``, or the
built-in tiny model saved to a temporary directory) on the same token ids (zoo's tokenisation and
truncation of ``--data`` feeds both; TRL gets the ids pre-tokenised), with the same batch size,
max length, optimiser, learning rate and clipping, in this one process, alternating
``--repeats`` times so that both see the same machine load.

Figures, per run:

* tokens/s: real (non-padding) prompt + response tokens per second of training, steady state:
  steps after ``--warmup`` are cut into ``--windows`` windows, and the median window counts.
  Each step is timed end to end (data loading, forward, backward, optimiser, logging).
* peak memory: the largest total of live tensor memory (parameters, gradients, optimiser state,
  activations, reference model, cache) during a short separate run of ``--memory-steps`` steps,
  counted by a dispatch mode that sees every tensor created (exact tensor accounting, on CPU as
  on GPU, unlike the process RSS).
* MFU: achieved model FLOP/s over the peak FLOP/s of a large float32 matmul measured with the
  same threads just before each run (the load of a shared machine drifts; the median over runs
  counts). Model FLOPs are 6·N per trained token (forward + backward, N = parameters
  that multiply activations: all but the input embedding table), plus 2·N per token for the
  reference forward pass when it is not precomputed (model FLOPs, the same count for both
  tools: zoo applies the LM head at scored tokens only, TRL at every token). A second figure adds
  attention's own FLOPs as PaLM's MFU does (Chowdhery et al. 2022, appendix B): 12·L·d·l per
  token of a sequence of l tokens (L layers, d = heads × head size; 4·L·d·l for a reference
  forward pass).

``--profile N`` adds one more zoo run that profiles N steps after warm-up (``torch.profiler``) and
prints where the time goes: matmuls, attention kernels, everything else.

Prints one line per run, the zoo/TRL ratios, and writes everything to ``--json`` when given.
``--threads`` pins torch's intra-op threads (default 1: on a shared machine, two busy threads
fighting other processes for two cores run slower than one).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
import weakref
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only
from torch.utils.weak import WeakIdKeyDictionary

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"


# ----- measuring -----------------------------------------------------------------------------------


class StepMeter:
    """End times and real-token counts of training steps."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.times: list[float] = []
        self.tokens: list[int] = []
        #: Σ l² over the step's sequences (attention FLOPs grow with it).
        self.squares: list[int] = []
        #: The matmul peak measured just before this run (the machine's load drifts; MFU uses it).
        self.peak_flops = 0.0

    def step_done(self, attention_mask: torch.Tensor) -> None:
        lengths = attention_mask.sum(-1).long()
        self.times.append(time.perf_counter())
        self.tokens.append(int(lengths.sum()))
        self.squares.append(int(lengths.square().sum()))

    def tokens_per_sequence_token(self, warmup: int) -> float:
        """Σ l² / Σ l over the timed steps: the sequence length an average token sits in."""
        return sum(self.squares[warmup:]) / max(sum(self.tokens[warmup:]), 1)

    def tokens_per_second(self, warmup: int, windows: int) -> tuple[float, list[float]]:
        """Median over ``windows`` equal windows of the steps after ``warmup``, and every window's rate."""
        steps = len(self.times)
        if warmup < 1:  # the first timed step runs from the end of the step before it
            raise SystemExit(f"--warmup is {warmup}: it must be at least 1 (each step is timed from the previous "
                             "step's end)")
        if steps - warmup < windows:
            raise SystemExit(f"only {steps} steps ran: need more than --warmup ({warmup}) + --windows ({windows})")
        size = (steps - warmup) // windows
        rates = []
        for w in range(windows):
            first, last = warmup + w * size, warmup + (w + 1) * size - 1
            elapsed = self.times[last] - self.times[first - 1]
            rates.append(sum(self.tokens[first: last + 1]) / elapsed)
        return statistics.median(rates), rates


def matmul_peak_flops(repeats: int = 5) -> float:
    """The best float32 matmul FLOP/s of this machine with the current torch threads."""
    best = 0.0
    for n in (1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - start))
    return best


def matmul_parameters(model: torch.nn.Module) -> int:
    """Parameters that multiply activations (the input embedding table is a lookup, unless it is tied
    to the output projection: ``parameters()`` yields a tied table once, and it is the LM head's matmul)."""
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embedding
    return sum(p.numel() for p in model.parameters() if tied or p is not embedding)


class TensorMemoryPeak(TorchDispatchMode):
    """The peak of live tensor storage bytes, counting every tensor created while active.

    Each new storage is counted once (views share it) and uncounted when it is freed, through a
    weak reference. Exact tensor accounting on any device, unlike the process RSS; the allocator's
    caching and fragmentation are not counted. (``torch.distributed._tools.mem_tracker`` does
    the same per module, but only for one iteration of a model whose parameters all need grads.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._refs: set[weakref.ref] = set()

    def _track(self, tensor: torch.Tensor) -> None:
        if tensor.device.type == "meta":
            return
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensor subclasses without a plain storage
            return
        if storage in self._seen:
            return
        nbytes = storage.nbytes()
        self._seen[storage] = nbytes

        def release(ref: weakref.ref, nbytes: int = nbytes) -> None:
            self.live -= nbytes
            self._refs.discard(ref)

        self._refs.add(weakref.ref(storage, release))
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self._track, out)
        return out


@contextlib.contextmanager
def peak_memory():
    """Yields a dict that holds ``bytes``, the peak of live tensor memory in the block, afterwards."""
    result: dict[str, int] = {}
    tracker = TensorMemoryPeak()
    with tracker:
        yield result
    result["bytes"] = tracker.peak


@dataclass
class RunResult:
    tool: str
    precompute: bool
    tokens_per_second: float = 0.0
    windows: list[float] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    mfu: float = 0.0
    mfu_with_reference: float = 0.0
    #: PaLM's MFU: attention FLOPs counted too.
    mfu_with_attention: float = 0.0
    mfu_with_attention_and_reference: float = 0.0
    steps: int = 0
    mean_tokens_per_step: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)


# ----- zoo ------------------------------------------------------------------------------------------


def zoo_config(args: argparse.Namespace, model_dir: Path, output_dir: Path, *, precompute: bool, steps: int,
               **data_options: Any):
    from zoo.config import load_config

    data = {"train": str(args.data), "eval_fraction": 0.0, "max_examples": args.max_examples,
            "max_length": args.max_length, "max_prompt_length": args.max_prompt_length, "on_bad_rows": "skip",
            "padding_free": args.padding_free, "group_by_length": args.group_by_length, **data_options}
    return load_config(raw={
        "algorithm": args.algorithm,
        "model": {"name": str(model_dir), "gradient_checkpointing": args.gradient_checkpointing == "on"},
        "data": data,
        "train": {"batch_size": args.batch_size, "max_steps": steps, "learning_rate": args.learning_rate,
                  "warmup_steps": 0, "scheduler": "linear", "gradient_clip_val": 1.0, "accelerator": "cpu",
                  "devices": 1, "progress_bar": False, "log_every_n_steps": 10,
                  "reference_cache": "auto" if precompute else "off"},
        "output_dir": str(output_dir),
    })


def run_zoo(args: argparse.Namespace, model_dir: Path, *, precompute: bool, memory: bool = False,
            extra_callbacks: list | None = None, **data_options: Any) -> StepMeter | int:
    """Train with zoo; returns the step meter, or the peak tensor memory in bytes when ``memory``."""
    import lightning as L

    from zoo.training_guard import train

    meter = StepMeter()

    class Meter(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            meter.step_done(batch.attention_mask)

    with tempfile.TemporaryDirectory() as scratch:
        # A fresh cache each run: the precompute pass is part of every "on" run, as it is of TRL's.
        os.environ["ZOO_CACHE_DIR"] = str(Path(scratch) / "cache")
        config = zoo_config(args, model_dir, Path(scratch) / "run", precompute=precompute,
                            steps=args.memory_steps if memory else args.steps, **data_options)
        if memory:
            with peak_memory() as peak:
                train(config)
            return peak["bytes"]
        train(config, callbacks=[Meter(), *(extra_callbacks or [])])
    return meter


def profile_zoo(args: argparse.Namespace, model_dir: Path, *, precompute: bool, **data_options: Any
                ) -> dict[str, float]:
    """Seconds per step spent in matmuls, attention and everything else over ``--profile`` steps of zoo
    (in the layout ``data_options`` set)."""
    import lightning as L
    from torch.profiler import profile

    first, last = args.warmup, args.warmup + args.profile
    state: dict[str, Any] = {}

    class Profiler(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == first:
                state["profiler"] = profile()
                state["profiler"].__enter__()
                state["start"] = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == last - 1:
                state["wall"] = time.perf_counter() - state["start"]
                state["profiler"].__exit__(None, None, None)

    saved_steps, args.steps = args.steps, last
    try:
        run_zoo(args, model_dir, precompute=precompute, extra_callbacks=[Profiler()], **data_options)
    finally:
        args.steps = saved_steps
    events = state["profiler"].key_averages()
    own = {event.key: event.self_cpu_time_total / 1e6 / args.profile for event in events}
    matmul = sum(t for key, t in own.items() if key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"))
    attention = sum(t for key, t in own.items() if "scaled_dot_product" in key)
    step = state["wall"] / args.profile
    top = sorted(own.items(), key=lambda item: -item[1])[:8]
    return {"step": step, "matmul": matmul, "attention": attention, "other": step - matmul - attention,
            "top": top}


# ----- TRL ------------------------------------------------------------------------------------------


def trl_rows(args: argparse.Namespace, model_dir: Path) -> tuple[dict[str, list], Any]:
    """zoo's tokenisation of ``--data`` as TRL columns (same ids, same truncation)."""
    from zoo.config import DataConfig, ModelConfig
    from zoo.data.dataset import load_examples
    from zoo.models import load_tokenizer
    from zoo.registry import get_registry

    shape = get_registry().algorithm(args.algorithm).data_shape
    tokenizer = load_tokenizer(ModelConfig(name=str(model_dir)))
    config = DataConfig(train=str(args.data), max_length=args.max_length, max_prompt_length=args.max_prompt_length,
                        on_bad_rows="skip")
    examples, _ = load_examples(config.train, "train", shape, config, tokenizer)
    examples = examples[: args.max_examples]
    if shape == "pairwise":
        return {"prompt_ids": [e.prompt_ids for e in examples], "chosen_ids": [e.response_ids[0] for e in examples],
                "rejected_ids": [e.response_ids[1] for e in examples]}, tokenizer
    if shape == "sft":  # the loss on the response only, as zoo's SFT computes it
        return {"input_ids": [e.prompt_ids + e.response_ids[0] for e in examples],
                "labels": [[-100] * len(e.prompt_ids) + e.response_ids[0] for e in examples]}, tokenizer
    raise SystemExit(f"--against trl compares dpo (DPOTrainer) and sft (SFTTrainer); {args.algorithm!r} has "
                     f"data shape {shape!r}")


def run_trl(args: argparse.Namespace, model_dir: Path, *, precompute: bool, memory: bool = False) -> StepMeter | int:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback

    rows, tokenizer = trl_rows(args, model_dir)
    meter = StepMeter()
    pending: deque[torch.Tensor] = deque()

    class Meter(TrainerCallback):
        def on_step_end(self, train_args, state, control, **kwargs):
            meter.step_done(pending.popleft())

    def counting(collate):
        def wrapped(features):
            batch = collate(features)
            pending.append(batch["attention_mask"])
            return batch

        return wrapped

    steps = args.memory_steps if memory else args.steps
    with tempfile.TemporaryDirectory() as scratch:
        common = dict(output_dir=scratch, per_device_train_batch_size=args.batch_size, max_steps=steps,
                      learning_rate=args.learning_rate, lr_scheduler_type="linear", warmup_steps=0, max_grad_norm=1.0,
                      weight_decay=0.0, use_cpu=True, report_to=[], logging_steps=10, save_strategy="no",
                      eval_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0, bf16=False,
                      fp16=False, max_length=args.max_length,
                      # TRL 1.16's configs turn activation checkpointing on by default; both tools use the same
                      gradient_checkpointing=args.gradient_checkpointing == "on")

        def build():
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
            if args.algorithm == "dpo":
                from trl import DPOConfig, DPOTrainer

                class PreTokenizedDPOTrainer(DPOTrainer):
                    def _prepare_dataset(self, dataset, processing_class, trainer_args, dataset_name):
                        return dataset  # already zoo's token ids: no second tokenisation, same truncation

                config = DPOConfig(**common, beta=0.1, loss_type=["sigmoid"], precompute_ref_log_probs=precompute)
                return PreTokenizedDPOTrainer(model=model, args=config, train_dataset=Dataset.from_dict(rows),
                                              processing_class=tokenizer, callbacks=[Meter()])
            from trl import SFTConfig, SFTTrainer

            config = SFTConfig(**common, dataset_kwargs={"skip_prepare_dataset": True})
            return SFTTrainer(model=model, args=config, train_dataset=Dataset.from_dict(rows),
                              processing_class=tokenizer, callbacks=[Meter()])

        def build_counting():
            from transformers.trainer_callback import PrinterCallback

            trainer = build()
            trainer.remove_callback(PrinterCallback)  # its stdout lines would garble the report
            trainer.data_collator = counting(trainer.data_collator)
            return trainer

        if memory:
            with peak_memory() as peak:
                build_counting().train()
            return peak["bytes"]
        build_counting().train()
    return meter


#: zoo's batch layouts (``--layouts``) as data options.
LAYOUTS: dict[str, dict[str, bool]] = {
    "padded": {"padding_free": False, "shared_prefix": False},
    "padding-free": {"padding_free": True, "shared_prefix": False},
    "shared-prefix": {"padding_free": False, "shared_prefix": True},
    "shared-prefix-padding-free": {"padding_free": True, "shared_prefix": True},
}


def run_tool(tool: str, layouts: dict[str, dict[str, bool]], args: argparse.Namespace, model_dir: Path, *,
             precompute: bool, memory: bool = False) -> StepMeter | int:
    """One run of ``tool``: a zoo layout (``layouts[tool]``: its data options) or TRL."""
    if tool in layouts:
        return run_zoo(args, model_dir, precompute=precompute, memory=memory, **layouts[tool])
    return run_trl(args, model_dir, precompute=precompute, memory=memory)


# ----- the report -----------------------------------------------------------------------------------


def prepare_model_dir(args: argparse.Namespace, scratch: Path) -> Path:
    if args.model_dir:
        from zoo_benchmarks.model_source import model_directory

        return model_directory(args.model_dir)
    from zoo.tiny import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    path = scratch / "tiny"
    tiny_model(tokenizer, max_position_embeddings=max(512, args.max_length), **args.tiny).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def summarise(tool: str, precompute: bool, meters: list[StepMeter], args: argparse.Namespace,
              params: int, attention_width: int, needs_reference: bool) -> RunResult:
    """``attention_width``: L·d, layers times the width of the attention (heads × head size)."""
    rates = [meter.tokens_per_second(args.warmup, args.windows)[0] for meter in meters]
    windows = [r for meter in meters for r in meter.tokens_per_second(args.warmup, args.windows)[1]]
    # Each run against the peak measured next to it; the median over runs.
    utilisation = statistics.median(rate / meter.peak_flops for rate, meter in zip(rates, meters))
    reference = needs_reference and not precompute
    reference_flops = 2 * params if reference else 0
    length = statistics.mean(m.tokens_per_sequence_token(args.warmup) for m in meters)
    attention_flops = (12 + (4 if reference else 0)) * attention_width * length
    return RunResult(tool, precompute, tokens_per_second=statistics.median(rates), windows=windows,
                     mfu=6 * params * utilisation, mfu_with_reference=(6 * params + reference_flops) * utilisation,
                     mfu_with_attention=(6 * params + 12 * attention_width * length) * utilisation,
                     mfu_with_attention_and_reference=(6 * params + reference_flops + attention_flops) * utilisation,
                     steps=len(meters[0].times),
                     mean_tokens_per_step=statistics.mean(t for m in meters for t in m.tokens))


def quiet() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # TRL's precompute progress bar reads it
    warnings.filterwarnings("ignore")
    import datasets
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; overridden below)
    import transformers

    for name in ("lightning", "lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric",
                 "transformers", "trl", "datasets", "accelerate", "zoo"):
        logging.getLogger(name).setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def tiny_geometry(text: str) -> dict[str, int]:
    from zoo.config import TinyModelConfig

    known = {f for f in TinyModelConfig.__dataclass_fields__ if f not in ("seed", "max_position_embeddings")}
    sizes = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in known or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{item!r}: expected KEY=INTEGER with KEY one of {sorted(known)}")
        sizes[key.strip()] = int(value)
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="dpo", help="any registered algorithm (TRL comparison: dpo, sft)")
    parser.add_argument("--model-dir", default=None,
                        help="a saved causal LM directory, a .gguf file, or 'smollm2' (the packaged "
                             "SmolLM2-135M-Instruct); default: the built-in tiny model")
    parser.add_argument("--tiny", type=tiny_geometry, default={}, metavar="KEY=VALUE,...",
                        help="built-in tiny model sizes other than the default, e.g. hidden_size=128,"
                             "intermediate_size=352,num_attention_heads=2,num_key_value_heads=1")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data file (HH-RLHF pairs by default)")
    parser.add_argument("--max-examples", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--max-prompt-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--steps", type=int, default=40, help="training steps per timed run")
    parser.add_argument("--warmup", type=int, default=8, help="steps left out of the timing")
    parser.add_argument("--windows", type=int, default=4, help="timed windows; the median counts")
    parser.add_argument("--repeats", type=int, default=1, help="alternating zoo/TRL runs per setting")
    parser.add_argument("--precompute", choices=["off", "on", "both"], default="both")
    parser.add_argument("--against", choices=["none", "trl"], default="trl")
    parser.add_argument("--padding-free", action="store_true", help="zoo: data.padding_free")
    parser.add_argument("--group-by-length", action="store_true", help="zoo: data.group_by_length")
    parser.add_argument("--layouts", default=None, metavar="padded,padding-free",
                        help=f"zoo layouts to run, alternating with TRL in one run: {', '.join(LAYOUTS)} "
                             "(shared-prefix: data.shared_prefix, each prompt run once for both responses; "
                             "default: the one --padding-free selects)")
    parser.add_argument("--gradient-checkpointing", choices=["off", "on"], default="off",
                        help="activation checkpointing in both tools (TRL's own default is on, zoo's off)")
    parser.add_argument("--memory-steps", type=int, default=3, help="steps of the memory run (0: skip it)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile N zoo steps (the first of --layouts) after warm-up in one more run and "
                             "print the time split")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error("--warmup must be at least 1: each step is timed from the previous step's end")
    if args.steps <= args.warmup + args.windows:
        parser.error("--steps must exceed --warmup + --windows")
    if args.layouts is None:
        args.layouts = ["padding-free" if args.padding_free else "padded"]
    else:
        args.layouts = [item.strip() for item in args.layouts.split(",") if item.strip()]
        unknown = sorted(set(args.layouts) - set(LAYOUTS))
        if unknown or not args.layouts:
            parser.error(f"--layouts: expected some of {', '.join(LAYOUTS)}, got {', '.join(unknown) or 'nothing'}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.against == "trl":
        try:
            import trl  # noqa: F401
        except ImportError:
            raise SystemExit("--against trl needs TRL: pip install trl --no-deps (its other dependencies, "
                             "accelerate and datasets, come with alignment-zoo's)") from None
    settings = {"off": [False], "on": [True], "both": [False, True]}[args.precompute]
    # zoo's layouts as tools of their own ("zoo" alone when there is one), then TRL
    layouts = {("zoo" if len(args.layouts) == 1 else f"zoo-{layout}"): LAYOUTS[layout]
               for layout in args.layouts}
    tools = list(layouts) + (["trl"] if args.against == "trl" else [])
    peak_flops = matmul_peak_flops()
    from zoo.registry import get_registry

    needs_reference = get_registry().algorithm(args.algorithm).needs_reference
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = prepare_model_dir(args, Path(scratch))
        from transformers import AutoModelForCausalLM

        model_config = AutoModelForCausalLM.from_pretrained(model_dir).config
        params = matmul_parameters(AutoModelForCausalLM.from_pretrained(model_dir))
        head_size = (getattr(model_config, "head_dim", None)
                     or model_config.hidden_size // model_config.num_attention_heads)
        attention_width = model_config.num_hidden_layers * model_config.num_attention_heads * head_size
        reference_bytes = sum(p.numel() * p.element_size()
                              for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
        print(f"model {model_dir} ({params:,} matmul parameters, {reference_bytes / 2**20:.2f} MiB, "
              f"{model_config.num_hidden_layers} layers of {model_config.num_attention_heads} heads × {head_size}); "
              f"data {args.data.name}; batch {args.batch_size} examples; max length {args.max_length}; "
              f"threads {torch.get_num_threads()}; gradient checkpointing {args.gradient_checkpointing} in both tools; "
              f"matmul peak {peak_flops / 1e9:.1f} GFLOP/s")
        for precompute in settings:
            meters: dict[str, list[StepMeter]] = {tool: [] for tool in tools}
            for _ in range(args.repeats):
                for tool in tools:
                    peak = matmul_peak_flops()
                    meters[tool].append(run_tool(tool, layouts, args, model_dir, precompute=precompute))
                    meters[tool][-1].peak_flops = peak
                    peak_flops = max(peak_flops, peak)
            for tool in tools:
                result = summarise(tool, precompute, meters[tool], args, params, attention_width, needs_reference)
                if args.memory_steps:
                    result.peak_memory_bytes = run_tool(tool, layouts, args, model_dir, precompute=precompute,
                                                        memory=True)
                result.options = {**layouts[tool], "group_by_length": args.group_by_length} \
                    if tool in layouts else {}
                results.append(result)
                memory = f"{result.peak_memory_bytes / 2**20:8.2f} MiB" if result.peak_memory_bytes else "n/a"
                print(f"{tool:{max(4, *map(len, tools))}s} precompute={'on ' if precompute else 'off'}  {result.tokens_per_second:9.0f} tokens/s "
                      f"(windows {', '.join(f'{w:.0f}' for w in result.windows)})  peak {memory}  "
                      f"MFU {100 * result.mfu:5.1f}% (with reference forward {100 * result.mfu_with_reference:5.1f}%; "
                      f"attention counted: {100 * result.mfu_with_attention:5.1f}%, "
                      f"{100 * result.mfu_with_attention_and_reference:5.1f}%)  "
                      f"{result.mean_tokens_per_step:.0f} tokens/step", flush=True)
    by_key = {(r.tool, r.precompute): r for r in results}
    ratios: dict[str, float] = {}
    for precompute in settings:
        label = "precompute on" if precompute else "precompute off"
        for tool in layouts:
            zoo_run, trl_run = by_key.get((tool, precompute)), by_key.get(("trl", precompute))
            if zoo_run and trl_run:
                ratios[f"{tool}/trl tokens/s, {label}"] = zoo_run.tokens_per_second / trl_run.tokens_per_second
                if args.memory_steps:
                    ratios[f"{tool}/trl peak memory, {label}"] = zoo_run.peak_memory_bytes / trl_run.peak_memory_bytes
    if len(settings) == 2 and args.memory_steps:
        for tool in layouts:
            off, on = by_key[(tool, False)], by_key[(tool, True)]
            saved = (off.peak_memory_bytes - on.peak_memory_bytes)
            ratios[f"{tool} peak memory saved by the cache (MiB)"] = saved / 2**20
            ratios["... over the reference model's size" + ("" if tool == "zoo" else f" ({tool})")] = \
                saved / reference_bytes
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}{'x' if 'tokens/s' in name or 'peak memory,' in name else ''}")
    profiles = {}
    if args.profile:
        with tempfile.TemporaryDirectory() as scratch:
            model_dir = prepare_model_dir(args, Path(scratch))
            for precompute in settings:
                split = profiles[f"precompute {'on' if precompute else 'off'}"] = profile_zoo(
                    args, model_dir, precompute=precompute, **LAYOUTS[args.layouts[0]])
                print(f"zoo profile, precompute {'on' if precompute else 'off'}: {1000 * split['step']:.0f} ms/step "
                      f"(profiled): matmuls {100 * split['matmul'] / split['step']:.0f}%, attention "
                      f"{100 * split['attention'] / split['step']:.0f}%, other "
                      f"{100 * split['other'] / split['step']:.0f}%; top ops: "
                      + ", ".join(f"{key} {1000 * t:.1f} ms" for key, t in split["top"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "settings": {k: str(v) for k, v in vars(args).items()}, "best_matmul_peak_flops": peak_flops,
            "matmul_parameters": params, "reference_bytes": reference_bytes,
            "runs": [asdict(r) for r in results], "ratios": ratios, "profiles": profiles}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
