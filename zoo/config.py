"""Run configuration: typed dataclasses, YAML loading, ``key.sub=value`` overrides.

Configs are read with a ``yaml.SafeLoader`` that refuses duplicated keys and keeps ``off``/``yes``...
as words (:mod:`zoo.yaml_loader`). Every key is checked against the dataclass it belongs
to: an unknown key is an error that names it and suggests the closest known one, a wrong type
names the key and the expected type. Algorithm hyperparameters (``algorithm_args``) are validated
against the selected algorithm's own dataclass.
"""
from __future__ import annotations

import dataclasses
import re
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from zoo import gguf
from zoo.errors import ConfigError, did_you_mean
from zoo.yaml_loader import load as load_yaml, yaml_1_1_bool


@dataclasses.dataclass
class TinyModelConfig:
    """The built-in tiny Llama-style model (random init, byte-level tokenizer)."""

    hidden_size: int = 64
    intermediate_size: int = 176
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    seed: int = 0


@dataclasses.dataclass
class LoraConfig:
    """LoRA adapters through peft; the reference is the base model with the adapter disabled."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = dataclasses.field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclasses.dataclass
class ModelConfig:
    #: ``tiny`` (built-in recipe), a Hugging Face hub id, or a local directory.
    name: str = "tiny"
    #: Reference model; None means a frozen copy of the starting policy.
    reference: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    #: transformers' ``attn_implementation`` (``sdpa``, ``eager``, ``flash_attention_2``,
    #: ``flex_attention``, ...); None keeps transformers' choice (sdpa). With ``data.padding_free``
    #: an sdpa model runs packed batches through per-sequence attention (:mod:`zoo.attention`).
    attn_implementation: str | None = None
    gradient_checkpointing: bool = False
    tiny: TinyModelConfig = dataclasses.field(default_factory=TinyModelConfig)
    lora: LoraConfig | None = None


@dataclasses.dataclass
class DataConfig:
    #: ``builtin:NAME``, a local JSON/JSONL/CSV/Parquet file or directory, or a hub data set name.
    train: str = "builtin:tiny_prefs"
    #: Held-out data (same forms); None splits ``eval_fraction`` off ``train``.
    eval: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
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
    #: (``drop``, counted in the data summary). See :mod:`zoo.data.tokenize`.
    max_prompt_length: int = 128
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
    num_workers: int = 0
    seed: int = 0


    def __post_init__(self) -> None:
        if isinstance(self.chat_template, bool):  # YAML 1.1: `chat_template: on` arrives as True
            self.chat_template = "on" if self.chat_template else "off"


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 8
    eval_batch_size: int | None = None
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0
    scheduler: Literal["constant", "linear", "cosine"] = "linear"
    max_steps: int = -1
    max_epochs: int = 1
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = 1.0
    #: Validate every N training batches (int; Lightning counts batches, not optimizer steps) or
    #: fraction of an epoch (float); None: once per epoch.
    val_check_interval: int | float | None = None
    log_every_n_steps: int = 5
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    seed: int = 0
    deterministic: bool = False
    #: Write a resumable checkpoint every N optimizer steps (None: only at the end).
    checkpoint_every_n_steps: int | None = None
    keep_last: int = 2
    #: Reference log-prob cache for offline algorithms that need a reference (see docs/scale.md).
    #: ``auto``: compute missing entries once, reuse them, skip loading the reference when they
    #: cover the data. ``required``: fail unless the cache already covers the data. ``off``: run the
    #: reference forward pass on every batch.
    reference_cache: Literal["off", "auto", "required"] = "auto"
    #: Optimizer steps whose loss or gradient is NaN/inf that may be skipped before the run stops.
    max_nonfinite_steps: int = 0
    progress_bar: bool = True


@dataclasses.dataclass
class RewardConfig:
    """A reward source: a registered programmatic function or a learned reward model."""

    function: str | None = None
    model: str | None = None
    args: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EvaluationConfig:
    """Evaluation suites run during training (``zoo eval``'s options; see :mod:`zoo.eval.callback`)."""

    suites: list[str] = dataclasses.field(default_factory=list)
    every_n_steps: int = 100
    data_dir: str | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    batch_size: int = 16
    #: Suite options, ``{SUITE: {KEY: VALUE}}``.
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunConfig:
    algorithm: str = "sft"
    algorithm_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    reward: RewardConfig | None = None
    #: Suites evaluated every ``every_n_steps`` during training; None: none.
    evaluation: EvaluationConfig | None = None
    output_dir: str = "runs/default"
    #: ``auto``: continue from ``output_dir/checkpoints`` when it holds a checkpoint (like ``--resume``).
    resume: Literal["never", "auto"] = "never"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----- building dataclasses from plain mappings ---------------------------------------------


#: Integers beyond a C ``int64`` (e.g. ``batch_size=99999999999999999999``) would fail deep in torch.
_INT_LIMIT = 2 ** 63
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{key} = {value!r}: expected {_type_name(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            # YAML 1.1 reads a bare off/on/no/yes as a boolean.
            quote = (f"; YAML reads a bare {'off' if value is False else 'on'} as {str(value).lower()}: "
                     f"write it in quotes, e.g. {key.rsplit('.', 1)[-1]}: \"{'off' if value is False else 'on'}\"")\
                if isinstance(value, bool) and ("off" if value is False else "on") in choices else ""
            raise ConfigError(f"{key} = {value!r}: expected one of {', '.join(map(repr, choices))}"
                              f"{did_you_mean(str(value), map(str, choices))}{quote}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {value!r}: expected a list")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: expected a mapping")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: expected a mapping of {tp.__name__} fields")
        return build_dataclass(tp, value, prefix=key)
    if tp is bool:
        value = yaml_1_1_bool(value)  # `yes`/`off`... stay words in YAML (zoo.yaml_loader) but mean a boolean here
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} = {value!r}: expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -_INT_LIMIT <= value < _INT_LIMIT:
                raise ConfigError(f"{key} = {value!r}: too large (at most {_INT_LIMIT - 1})")
            return value
        raise ConfigError(f"{key} = {value!r}: expected an integer")
    if tp is float:
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            # YAML 1.1 reads `3e-4` (no dot) as a string; it is plainly meant as a number.
            value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key} = {value!r}: expected a finite number")
            return float(value)
        raise ConfigError(f"{key} = {value!r}: expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} = {value!r}: expected a string")
    return value


def build_dataclass(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``values``, checking every key and type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    renamed = getattr(cls, "renamed_keys", {})  # old spelling -> today's, for a helpful error
    kwargs = {}
    for key, value in values.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key in renamed and key not in fields:
            new = f"{prefix}.{renamed[key]}" if prefix else renamed[key]
            raise ConfigError(f"config key {full!r} is now spelled {new!r}: write {renamed[key]}: {value!r}")
        if key not in fields:
            raise ConfigError(f"unknown config key {full!r}{did_you_mean(str(key), fields)}. "
                              f"Known keys{' under ' + prefix if prefix else ''}: {', '.join(fields)}.")
        kwargs[key] = _coerce(value, hints[key], full)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a missing required field
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None


# ----- YAML and overrides ----------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a mapping")
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"config file {str(path)!r} is empty; a run config sets at least algorithm (e.g. "
                          f"algorithm: dpo) and output_dir. See configs/ for complete examples.")
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                raw: dict[str, Any] | None = None) -> RunConfig:
    """Load and validate a run config, including the selected algorithm's arguments."""
    data = dict(raw or {}) if path is None else read_yaml(path)
    data = apply_overrides(data, list(overrides or []))
    if path is not None and "algorithm" not in data:
        raise ConfigError(f"config file {str(path)!r} does not set algorithm; add e.g. `algorithm: dpo` (or the "
                          f"override algorithm=NAME). Without it the defaults would train 'sft' on preference data.")
    config = build_dataclass(RunConfig, data)
    validate_run(config)
    return config


def validate_run(config: RunConfig) -> None:
    """Cross-field checks that need the registry (before any model loads)."""
    from zoo.registry import get_registry

    algorithm_cls = get_registry().algorithm(config.algorithm)
    algorithm_cls.parse_args(config.algorithm_args)
    if algorithm_cls.needs_reward and (config.reward is None or
                                       (config.reward.function is None and config.reward.model is None)):
        raise ConfigError(f"algorithm {config.algorithm!r} needs a reward source: set "
                          f"reward.function (a registered reward function) or reward.model (a path).")
    if config.reward is not None and config.reward.function and config.reward.model:
        raise ConfigError("reward.function and reward.model are both set; choose one.")
    t = config.train
    for key in ("batch_size", "accumulate_grad_batches", "log_every_n_steps", "keep_last", "num_nodes"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key} = {getattr(t, key)!r}: must be >= 1")
    if not 0 < t.learning_rate <= 1:
        raise ConfigError(f"train.learning_rate = {t.learning_rate!r}: must be in (0, 1] (AdamW moves each weight "
                          f"by about learning_rate per step)")
    if t.max_steps == -1 and t.max_epochs < 1:
        raise ConfigError("train.max_epochs must be >= 1 when train.max_steps is -1")
    d = config.data
    if d.max_prompt_length >= d.max_length:
        raise ConfigError(f"data.max_prompt_length ({d.max_prompt_length}) must be smaller than "
                          f"data.max_length ({d.max_length}) to leave room for the response")
    if not 0 <= d.eval_fraction < 1:
        raise ConfigError(f"data.eval_fraction = {d.eval_fraction!r}: must be in [0, 1)")
    if d.sft_from is not None and algorithm_cls.data_shape != "sft":
        raise ConfigError(f"data.sft_from = {d.sft_from!r} picks SFT targets from preference data, but algorithm "
                          f"{config.algorithm!r} reads {algorithm_cls.data_shape!r} data; remove data.sft_from.")
    if config.model.lora is not None and config.model.reference is not None:
        raise ConfigError("model.lora uses the base model (adapter disabled) as the reference; "
                          "model.reference cannot be set with it.")
    check_scale_options(config, algorithm_cls)
    check_ranges(config)


def check_scale_options(config: RunConfig, algorithm_cls: Any) -> None:
    """Packed batches and cached reference log-probs only exist for offline log-prob algorithms."""
    name = config.algorithm
    offline = not algorithm_cls.generates_online and algorithm_cls.data_shape != "prompt"
    if config.data.padding_free and not (offline and algorithm_cls.output == "logprobs"):
        why = "generates its batches online" if not offline else f"scores sequences ({algorithm_cls.output!r})"
        raise ConfigError(f"data.padding_free = true: algorithm {name!r} {why}; packed batches serve offline "
                          f"algorithms that score log-probs. Set data.padding_free: false.")
    if config.train.reference_cache == "required" and not (algorithm_cls.needs_reference and offline):
        why = "needs no reference model" if not algorithm_cls.needs_reference else \
            "scores responses it generates during training, which no cache can hold in advance"
        raise ConfigError(f"train.reference_cache = 'required': algorithm {name!r} {why}. Use 'auto' or 'off'.")


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


def _require(condition: bool, key: str, value: Any, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key} = {value!r}: {message}")


def check_ranges(config: RunConfig) -> None:
    """Range checks of the core's own keys, so that a bad value fails before any model loads."""
    t, d, m = config.train, config.data, config.model
    _require(t.max_steps == -1 or t.max_steps >= 1, "train.max_steps", t.max_steps, "must be -1 (no limit) or >= 1")
    _require(t.eval_batch_size is None or t.eval_batch_size >= 1, "train.eval_batch_size", t.eval_batch_size,
             "must be >= 1 (or null: train.batch_size)")
    _require(t.weight_decay >= 0, "train.weight_decay", t.weight_decay, "must be >= 0")
    _require(len(t.adam_betas) == 2 and all(0 <= b < 1 for b in t.adam_betas), "train.adam_betas", t.adam_betas,
             "must be two numbers in [0, 1)")
    _require(t.warmup_steps >= 0, "train.warmup_steps", t.warmup_steps, "must be >= 0")
    _require(t.gradient_clip_val is None or t.gradient_clip_val > 0, "train.gradient_clip_val", t.gradient_clip_val,
             "must be > 0 (or null: no clipping)")
    v = t.val_check_interval
    _require(v is None or (isinstance(v, int) and v >= 1) or (isinstance(v, float) and 0 < v <= 1),
             "train.val_check_interval", v, "must be a step count >= 1 or an epoch fraction in (0, 1]")
    _require(t.checkpoint_every_n_steps is None or t.checkpoint_every_n_steps >= 1, "train.checkpoint_every_n_steps",
             t.checkpoint_every_n_steps, "must be >= 1 (or null: no periodic checkpoints)")
    _require(0 <= t.seed <= _MAX_SEED, "train.seed", t.seed, f"must be in [0, {_MAX_SEED}]")
    _require(_valid_devices(t.devices), "train.devices", t.devices,
             "must be 'auto', a device count >= 1, -1 (all devices) or device indices such as '0,1'")
    _require(t.max_nonfinite_steps >= 0, "train.max_nonfinite_steps", t.max_nonfinite_steps, "must be >= 0")
    _require(str(t.precision) in PRECISIONS, "train.precision", t.precision,
             f"expected one of {', '.join(PRECISIONS)}{did_you_mean(str(t.precision), PRECISIONS)}")
    _require(d.max_length >= 2, "data.max_length", d.max_length, "must be >= 2")
    _require(d.max_prompt_length >= 1, "data.max_prompt_length", d.max_prompt_length, "must be >= 1")
    _require(d.builtin_size >= 1, "data.builtin_size", d.builtin_size, "must be >= 1")
    _require(d.max_examples is None or d.max_examples >= 1, "data.max_examples", d.max_examples,
             "must be >= 1 (or null: all rows)")
    _require(d.num_workers >= 0, "data.num_workers", d.num_workers, "must be >= 0")
    gguf.check(m.name, "model.name")
    if m.reference:
        gguf.check(m.reference, "model.reference")
    if m.name == "tiny":
        tiny = m.tiny
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "max_position_embeddings"):
            _require(getattr(tiny, key) >= 1, f"model.tiny.{key}", getattr(tiny, key), "must be >= 1")
        _require(tiny.hidden_size % tiny.num_attention_heads == 0, "model.tiny.hidden_size", tiny.hidden_size,
                 f"must be divisible by model.tiny.num_attention_heads ({tiny.num_attention_heads})")
        _require(tiny.num_attention_heads % tiny.num_key_value_heads == 0, "model.tiny.num_key_value_heads",
                 tiny.num_key_value_heads,
                 f"must divide model.tiny.num_attention_heads ({tiny.num_attention_heads})")
        _require(d.max_length <= tiny.max_position_embeddings, "data.max_length", d.max_length,
                 f"exceeds the tiny model's model.tiny.max_position_embeddings ({tiny.max_position_embeddings})")
    if m.lora is not None:
        _require(m.lora.r >= 1, "model.lora.r", m.lora.r, "must be >= 1")
        _require(m.lora.alpha > 0, "model.lora.alpha", m.lora.alpha, "must be > 0")
        _require(0 <= m.lora.dropout < 1, "model.lora.dropout", m.lora.dropout, "must be in [0, 1)")
        _require(bool(m.lora.target_modules), "model.lora.target_modules", m.lora.target_modules,
                 "must name at least one module")
    r = config.reward
    if r is not None and r.args and not (r.function or r.model):
        raise ConfigError("reward.args is set but neither reward.function nor reward.model is: "
                          "the arguments would be ignored.")
