"""The run config's schema: one typed dataclass per section, each checking its own fields.

Every section is a :class:`zoo.config.sections.Validated` (like algorithm ``Args``): its
:meth:`validate` raises a :class:`zoo.errors.ConfigError` naming ``SECTION.KEY`` and the value.
:meth:`RunConfig.validate` runs them and the checks across sections; the checks that need the
selected algorithm (what it declares) are :func:`zoo.planning.plan_run`'s.

Over 300 lines because every key carries the comment that documents it; the code is short.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar, Literal

from zoo.config.sections import Validated
from zoo.errors import ConfigError, did_you_mean
from zoo.gguf import check as check_gguf_name
from zoo.tracking import LOGGERS

PRECISIONS = ("64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed", "transformer-engine",
              "transformer-engine-float16", "64", "32", "16", "bf16")

#: The largest seed NumPy (and so ``lightning.seed_everything``) accepts.
_MAX_SEED = 2 ** 32 - 1


def _valid_devices(devices: int | str) -> bool:
    if isinstance(devices, int):
        return devices >= 1 or devices == -1
    text = devices.strip()
    if text in ("auto", "-1"):
        return True
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return bool(parts) and all(part.isdigit() for part in parts) and (len(parts) > 1 or "," in text or int(parts[0]) >= 1)


@dataclasses.dataclass
class TinyModelConfig(Validated):
    """The built-in tiny Llama-style model (random init, byte-level tokenizer)."""

    key_prefix: ClassVar[str] = "model.tiny"

    #: Width of the residual stream.
    hidden_size: int = 64
    #: Width of the MLP.
    intermediate_size: int = 176
    #: Transformer blocks.
    num_hidden_layers: int = 2
    #: Query heads.
    num_attention_heads: int = 4
    #: Key/value heads (grouped-query attention).
    num_key_value_heads: int = 2
    #: Longest sequence the model accepts (>= data.max_length).
    max_position_embeddings: int = 512
    #: Seed of the random initial weights.
    seed: int = 0

    def validate(self) -> None:
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "max_position_embeddings"):
            self.require(getattr(self, key) >= 1, key, "must be >= 1")
        self.require(self.hidden_size % self.num_attention_heads == 0, "hidden_size",
                     f"must be divisible by model.tiny.num_attention_heads ({self.num_attention_heads})")
        self.require(self.num_attention_heads % self.num_key_value_heads == 0, "num_key_value_heads",
                     f"must divide model.tiny.num_attention_heads ({self.num_attention_heads})")


@dataclasses.dataclass
class LoraConfig(Validated):
    """LoRA adapters through peft; the reference is the base model with the adapter disabled."""

    key_prefix: ClassVar[str] = "model.lora"

    #: Rank of each adapter.
    r: int = 8
    #: Scaling numerator: the update is scaled by alpha / r.
    alpha: int = 16
    #: Dropout on the adapter's input.
    dropout: float = 0.0
    #: Names of the linear layers that get adapters.
    target_modules: list[str] = dataclasses.field(default_factory=lambda: ["q_proj", "v_proj"])

    def validate(self) -> None:
        self.require(self.r >= 1, "r", "must be >= 1")
        self.require(self.alpha > 0, "alpha", "must be > 0")
        self.require(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        self.require(bool(self.target_modules), "target_modules", "must name at least one module")


@dataclasses.dataclass
class ModelConfig(Validated):
    """The policy: which model, its reference, dtype, attention and adapters."""

    key_prefix: ClassVar[str] = "model"

    #: ``tiny`` (built-in recipe), a Hugging Face hub id, or a local directory.
    name: str = "tiny"
    #: Reference model; None means a frozen copy of the starting policy.
    reference: str | None = None
    #: Hub revision (branch, tag or commit) of ``name``.
    revision: str | None = None
    #: Run the model repository's own code (off: only transformers' classes).
    trust_remote_code: bool = False
    #: Weights' dtype when loaded (``auto``: the checkpoint's).
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    #: transformers' ``attn_implementation`` (``sdpa``, ``eager``, ``flash_attention_2``,
    #: ``flex_attention``, ...); None keeps transformers' choice (sdpa). With ``data.padding_free``
    #: an sdpa model runs packed batches through per-sequence attention (:mod:`zoo.forward.attention`).
    attn_implementation: str | None = None
    #: Recompute activations in the backward pass: less memory, about 30 % more time.
    gradient_checkpointing: bool = False
    #: Shape of the built-in ``tiny`` model (used when ``name`` is ``tiny``).
    tiny: TinyModelConfig = dataclasses.field(default_factory=TinyModelConfig)
    #: LoRA adapters (None: train every weight).
    lora: LoraConfig | None = None

    def validate(self) -> None:
        check_gguf_name(self.name, "model.name")
        if self.reference:
            check_gguf_name(self.reference, "model.reference")
        if self.name == "tiny":
            self.tiny.validate()
        if self.lora is not None:
            self.lora.validate()
            if self.reference is not None:
                raise ConfigError("model.lora uses the base model (adapter disabled) as the reference; "
                                  "model.reference cannot be set with it.")


@dataclasses.dataclass
class DataConfig(Validated):
    """Training and held-out data: where they are, how they are cut to length and templated."""

    key_prefix: ClassVar[str] = "data"

    #: ``builtin:NAME``, a local JSON/JSONL/CSV/Parquet file or directory, or a hub data set name.
    train: str = "builtin:tiny_prefs"
    #: Held-out data (same forms); None splits ``eval_fraction`` off ``train``.
    eval: str | None = None
    #: Split of a hub data set (or of a directory with split files) to train on.
    train_split: str = "train"
    #: Split of ``eval`` to evaluate on.
    eval_split: str = "test"
    #: Fraction of ``train`` held out for evaluation when ``eval`` is None.
    eval_fraction: float = 0.1
    #: Use the first N usable rows of ``train`` (before ``eval_fraction`` is split off) and stop
    #: reading there: the rest of the file is neither read nor checked (None: all rows).
    max_examples: int | None = None
    #: Rows generated for a ``builtin:`` data set.
    builtin_size: int = 512
    #: Longest prompt + response, in tokens.
    max_length: int = 256
    #: Longest prompt, in tokens; longer prompts lose their beginning (``keep_end``) or end
    #: (``keep_start``), chat prompts in whole turns with the template kept, or are dropped
    #: (``drop``, counted in the data summary). Samplers and the run's reward model cut prompts
    #: the same way. See :mod:`zoo.data.truncation`.
    max_prompt_length: int = 128
    #: How an over-long prompt is shortened (see ``max_prompt_length``).
    prompt_truncation: Literal["keep_end", "keep_start", "drop"] = "keep_end"
    #: String prompts and the tokenizer's chat template. ``on``: render each string prompt as a
    #: user turn (Anthropic HH dialogues as their turns). ``off``: use strings as they are.
    #: ``auto``: as they are, with a warning when the tokenizer has a chat template (an
    #: instruct model given untemplated text). Message lists always use the template. A bare
    #: YAML on/off (read as true/false) means the same.
    chat_template: Literal["auto", "on", "off"] | bool = "auto"
    #: SFT only: put the loss on prompt tokens too.
    train_on_prompt: bool = False
    #: SFT only: train on preference data. ``chosen``: the chosen response of pairwise rows (the
    #: Zephyr / Llama 2 recipe of fine-tuning on preferred responses first); ``best``: the
    #: highest-scored response of ranked (or pairwise) rows, the first one on a tie.
    sft_from: Literal["chosen", "best"] | None = None
    #: ``error``: a malformed row stops the run naming file, row and field. ``skip``: it is
    #: dropped, counted and reported.
    on_bad_rows: Literal["error", "skip"] = "error"
    #: Group examples of similar length into batches (less padding).
    group_by_length: bool = False
    #: Pack each batch's sequences end to end into rows of ``max_length`` tokens (no padding
    #: compute; losses equal the padded path's). Offline log-prob algorithms only; see docs/scale.md.
    padding_free: bool = False
    #: Run each example's prompt once for all its responses (pairwise and ranked data: one block of
    #: prompt + responses per row, or all in one unpadded row with ``padding_free``; log-probs equal
    #: the padded path's to float rounding). Offline log-prob algorithms on sdpa models; see docs/scale.md.
    shared_prefix: bool = False
    #: DataLoader worker processes (0: load in the training process).
    num_workers: int = 0
    #: Seed of shuffling, the held-out split and ``builtin:`` data.
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.chat_template, bool):  # YAML 1.1: `chat_template: on` arrives as True
            self.chat_template = "on" if self.chat_template else "off"

    def validate(self) -> None:
        if self.max_prompt_length >= self.max_length:
            raise ConfigError(f"data.max_prompt_length ({self.max_prompt_length}) must be smaller than "
                              f"data.max_length ({self.max_length}) to leave room for the response")
        self.require(0 <= self.eval_fraction < 1, "eval_fraction", "must be in [0, 1)")
        self.require(self.max_length >= 2, "max_length", "must be >= 2")
        self.require(self.max_prompt_length >= 1, "max_prompt_length", "must be >= 1")
        self.require(self.builtin_size >= 1, "builtin_size", "must be >= 1")
        self.require(self.max_examples is None or self.max_examples >= 1, "max_examples",
                     "must be >= 1 (or null: all rows)")
        self.require(self.num_workers >= 0, "num_workers", "must be >= 0")


@dataclasses.dataclass
class TrainConfig(Validated):
    """The optimizer (AdamW), the learning-rate schedule and Lightning's Trainer."""

    key_prefix: ClassVar[str] = "train"

    #: Examples per batch (pairs for pairwise data, prompts for online algorithms).
    batch_size: int = 8
    #: Examples per evaluation batch (None: ``batch_size``).
    eval_batch_size: int | None = None
    #: AdamW's peak learning rate.
    learning_rate: float = 1e-5
    #: AdamW's decoupled weight decay.
    weight_decay: float = 0.0
    #: AdamW's (β1, β2).
    adam_betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    #: Optimizer steps of linear warm-up from 0 to ``learning_rate``.
    warmup_steps: int = 0
    #: Learning-rate schedule after warm-up (linear and cosine decay to 0 at the last step).
    scheduler: Literal["constant", "linear", "cosine"] = "linear"
    #: Stop after this many optimizer steps (-1: ``max_epochs`` decides).
    max_steps: int = -1
    #: Passes over the training data (when ``max_steps`` is -1).
    max_epochs: int = 1
    #: Batches whose gradients add up to one optimizer step.
    accumulate_grad_batches: int = 1
    #: Clip the gradient norm to this (None: no clipping; online algorithms clip in their own loop).
    gradient_clip_val: float | None = 1.0
    #: Validate every N training batches (int; Lightning counts batches, not optimizer steps) or
    #: fraction of an epoch (float); None: once per epoch.
    val_check_interval: int | float | None = None
    #: Write metrics to the loggers every N optimizer steps.
    log_every_n_steps: int = 5
    #: Lightning's accelerator: ``auto``, ``cpu``, ``gpu``, ``mps``...
    accelerator: str = "auto"
    #: Devices per node (count, -1 for all, or indices such as ``'0,1'``).
    devices: int | str = "auto"
    #: Machines in a multi-node run (see docs/scale.md).
    num_nodes: int = 1
    #: Lightning's strategy: ``auto``, ``ddp``, ``fsdp``, ``deepspeed_stage_2``...
    strategy: str = "auto"
    #: Lightning's precision (``bf16-mixed`` on recent GPUs).
    precision: str = "32-true"
    #: Seed of everything random in training (weights of new heads, dropout, sampling).
    seed: int = 0
    #: Ask PyTorch for deterministic kernels (slower; some ops refuse).
    deterministic: bool = False
    #: Write a resumable checkpoint every N optimizer steps (None: only at the end).
    checkpoint_every_n_steps: int | None = None
    #: Periodic checkpoints kept (the newest).
    keep_last: int = 2
    #: Reference log-prob cache for offline algorithms that need a reference (see docs/scale.md).
    #: ``auto``: compute missing entries once, reuse them, skip loading the reference when they
    #: cover the data. ``required``: fail unless the cache already covers the data. ``off``: run the
    #: reference forward pass on every batch.
    reference_cache: Literal["off", "auto", "required"] = "auto"
    #: Optimizer steps whose loss or gradient is NaN/inf that may be skipped before the run stops.
    max_nonfinite_steps: int = 0
    #: Show training progress (a bar on a terminal, a line every few seconds in a log).
    progress_bar: bool = True
    #: Where metrics go: any of csv (``logs/metrics.csv``), tensorboard, wandb, mlflow; see :mod:`zoo.tracking`.
    loggers: list[str] = dataclasses.field(default_factory=lambda: ["csv"])
    #: The W&B project and the MLflow experiment the run is logged under.
    tracking_project: str = "alignment-zoo"
    #: Online algorithms: log a table of a step's prompts, samples and rewards every N optimizer
    #: steps (None: never).
    log_completions_every_n_steps: int | None = None

    def validate(self) -> None:
        for key in ("batch_size", "accumulate_grad_batches", "log_every_n_steps", "keep_last", "num_nodes"):
            self.require(getattr(self, key) >= 1, key, "must be >= 1")
        self.require(0 < self.learning_rate <= 1, "learning_rate",
                     "must be in (0, 1] (AdamW moves each weight by about learning_rate per step)")
        if self.max_steps == -1 and self.max_epochs < 1:
            raise ConfigError("train.max_epochs must be >= 1 when train.max_steps is -1")
        self.require(self.max_steps == -1 or self.max_steps >= 1, "max_steps", "must be -1 (no limit) or >= 1")
        self.require(self.eval_batch_size is None or self.eval_batch_size >= 1, "eval_batch_size",
                     "must be >= 1 (or null: train.batch_size)")
        self.require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        self.require(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas), "adam_betas",
                     "must be two numbers in [0, 1)")
        self.require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        self.require(self.gradient_clip_val is None or self.gradient_clip_val > 0, "gradient_clip_val",
                     "must be > 0 (or null: no clipping)")
        v = self.val_check_interval
        self.require(v is None or (isinstance(v, int) and v >= 1) or (isinstance(v, float) and 0 < v <= 1),
                     "val_check_interval", "must be a step count >= 1 or an epoch fraction in (0, 1]")
        self.require(self.checkpoint_every_n_steps is None or self.checkpoint_every_n_steps >= 1,
                     "checkpoint_every_n_steps", "must be >= 1 (or null: no periodic checkpoints)")
        self.require(0 <= self.seed <= _MAX_SEED, "seed", f"must be in [0, {_MAX_SEED}]")
        self.require(_valid_devices(self.devices), "devices",
                     "must be 'auto', a device count >= 1, -1 (all devices) or device indices such as '0,1'")
        self.require(self.max_nonfinite_steps >= 0, "max_nonfinite_steps", "must be >= 0")
        self.require(isinstance(self.loggers, list) and bool(self.loggers), "loggers",
                     f"must list at least one of {', '.join(LOGGERS)} (csv keeps logs/metrics.csv)")
        for name in self.loggers:
            self.require(name in LOGGERS, "loggers",
                         f"{name!r} is not a logger; expected any of {', '.join(LOGGERS)}{did_you_mean(str(name), LOGGERS)}")
        self.require(len(set(self.loggers)) == len(self.loggers), "loggers", "names a logger twice")
        self.require(self.log_completions_every_n_steps is None or self.log_completions_every_n_steps >= 1,
                     "log_completions_every_n_steps", "must be >= 1 (or null: no completions table)")
        self.require(str(self.precision) in PRECISIONS, "precision",
                     f"expected one of {', '.join(PRECISIONS)}{did_you_mean(str(self.precision), PRECISIONS)}")


@dataclasses.dataclass
class RewardConfig(Validated):
    """A reward source: a registered programmatic function or a learned reward model."""

    key_prefix: ClassVar[str] = "reward"

    #: A registered reward function (``zoo plugins`` lists them).
    function: str | None = None
    #: A saved reward model folder (a ``reward`` run's ``model/``).
    model: str | None = None
    #: Arguments of the function, or the reward model's (``normalize``, ``batch_size``, ``max_length``;
    #: ``max_prompt_length`` and ``prompt_truncation``, by default the run's ``data`` settings).
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.function and self.model:
            raise ConfigError("reward.function and reward.model are both set; choose one.")
        if self.args and not (self.function or self.model):
            raise ConfigError("reward.args is set but neither reward.function nor reward.model is: "
                              "the arguments would be ignored.")


@dataclasses.dataclass
class EvaluationConfig(Validated):
    """Evaluation suites run during training (``zoo eval``'s options; see :mod:`zoo.eval.callback`)."""

    key_prefix: ClassVar[str] = "evaluation"

    #: Suites to run (``zoo plugins`` lists them).
    suites: list[str] = dataclasses.field(default_factory=list)
    #: Run them every N optimizer steps.
    every_n_steps: int = 100
    #: Where the suites' local data files are.
    data_dir: str | None = None
    #: Items per suite (None: all).
    limit: int | None = None
    #: Few-shot examples per question (None: each suite's default).
    num_fewshot: int | None = None
    #: Items per evaluation batch.
    batch_size: int = 16
    #: Suite options, ``{SUITE: {KEY: VALUE}}``.
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunConfig(Validated):
    #: The registered algorithm to train with (``zoo plugins`` lists them).
    algorithm: str = "sft"
    #: The algorithm's hyperparameters, checked against its own dataclass (below).
    algorithm_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The policy to train, its reference and adapters.
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    #: Training and held-out data.
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    #: The optimizer, the schedule and Lightning's Trainer.
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    #: The reward source of online algorithms (None: the algorithm needs none).
    reward: RewardConfig | None = None
    #: Suites evaluated every ``every_n_steps`` during training; None: none.
    evaluation: EvaluationConfig | None = None
    #: The run directory: ``model/``, ``logs/``, ``checkpoints/``, ``metrics.json``, ``config.yaml``.
    output_dir: str = "runs/default"
    #: ``auto``: continue from ``output_dir/checkpoints`` when it holds a checkpoint (like ``--resume``).
    resume: Literal["never", "auto"] = "never"

    def validate(self) -> None:
        """The sections' own checks, then those across sections (those that depend on the algorithm
        are :func:`zoo.planning.check_run`'s)."""
        self.train.validate()
        self.data.validate()
        self.model.validate()
        if self.model.name == "tiny" and self.data.max_length > self.model.tiny.max_position_embeddings:
            raise ConfigError(f"data.max_length = {self.data.max_length!r}: exceeds the tiny model's "
                              f"model.tiny.max_position_embeddings ({self.model.tiny.max_position_embeddings})")
        if self.reward is not None:
            self.reward.validate()

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (what ``config.yaml`` holds)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value)
