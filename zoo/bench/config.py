"""Benchmark configuration: typed dataclasses, validated like run configs.

A bench config names a task, the model to start from, the stages that build the shared starting
point (pretraining, SFT, preference data, proxy reward model), the alignment runs to compare and
how every model is evaluated. Every key is checked (an unknown key is an error naming it, with a
suggestion); algorithm names, their ``algorithm_args`` and the task's ``args`` are checked
against the registry before anything trains.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo.config import ModelConfig, apply_overrides, build_dataclass, load_config, read_yaml
from zoo.errors import ConfigError, did_you_mean
from zoo.model_output import OUTPUT_KINDS, output_kind

#: Bench-config keys a sweep may vary (besides ``algorithm_args.*`` and ``train.*``).
SWEEPABLE = ("best_of_n",)


@dataclass
class TaskSection:
    #: A task registered through ``zoo_register_tasks`` (``zoo plugins`` lists them).
    name: str = "fables"
    #: The task's own arguments, validated against its ``Args`` dataclass.
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageConfig:
    """A training stage: overrides merged into the run config it trains with."""

    #: False skips the stage (e.g. pretraining a hub model that is already pretrained).
    enabled: bool = True
    algorithm: str = "sft"
    algorithm_args: dict[str, Any] = field(default_factory=dict)
    #: ``train`` keys of a run config (batch_size, learning_rate, max_steps, ...).
    train: dict[str, Any] = field(default_factory=dict)
    #: ``data`` keys of a run config (max_length, eval_fraction, ...); ``data.train`` is set by the stage.
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlignmentConfig:
    """What every alignment run shares: the same step budget and data settings for all."""

    #: ``train`` keys of a run config; a run's own ``train`` overrides them.
    train: dict[str, Any] = field(default_factory=dict)
    #: ``data`` keys of a run config (max_length, ...); the data file follows from the algorithm.
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreferenceConfig:
    """How samples of the SFT model become preference pairs and ranked sets.

    For each training prompt the SFT model is sampled ``samples_per_prompt`` times; the samples
    are ranked by a Plackett–Luce draw on the gold reward (sort by r/T + Gumbel noise), whose
    marginal on any two samples is the Bradley–Terry draw P(a ≻ b) = σ((r_a − r_b)/T). The
    ranked set is the whole ranking; the pair is the first two distinct samples drawn, ordered as
    that ranking orders them. ``label_temperature`` T = 0 labels without noise.
    """

    samples_per_prompt: int = 4
    temperature: float = 1.0
    label_temperature: float = 1.0
    #: Held-out pairs (from the evaluation prompts) that preference accuracy is measured on.
    heldout_pairs: int = 256
    seed: int = 0


@dataclass
class EvalConfig:
    """The evaluation every model gets."""

    samples_per_prompt: int = 2
    #: 1.0 samples from the policy itself, which the KL estimate needs.
    temperature: float = 1.0
    #: None: the task's response length.
    max_new_tokens: int | None = None
    batch_size: int = 64
    #: Score the task's knowledge probes (MMLU format) before and after alignment.
    probes: bool = True
    #: Extra ``zoo.eval`` suites (e.g. mmlu, arc_easy, hh_preference), run on every model.
    suites: list[str] = field(default_factory=list)
    #: Options for the suites, ``SUITE.KEY: value`` as ``zoo eval --option`` takes them.
    suite_options: dict[str, Any] = field(default_factory=dict)
    #: Where the suites find local copies of their data (None: the Hugging Face Hub).
    data_dir: str | None = None
    #: Items per suite (None: all).
    suite_limit: int | None = None


@dataclass
class FailureConfig:
    """When a run counts as collapsed (:func:`zoo.bench.stats.is_failure`): reported as a failure
    rate, left out of the means and the tests rather than averaged in."""

    #: KL(π‖π_SFT) on the test prompts above this many nats per response is a collapse.
    max_kl: float = 20.0
    #: Mean gold reward more than this many standard deviations (of the SFT model's per-sample
    #: gold reward, same seed) below the SFT model's is a collapse.
    max_gold_drop_sd: float = 1.0


@dataclass
class Claim:
    """A published result the run can test: row ``better`` has a higher gold reward than row ``worse``.

    results.md's findings section says, for each claim, whether the pairwise test reproduces it
    (significantly better), contradicts it (significantly worse) or cannot tell (not significant).
    """

    #: The claim in words, with its source (e.g. "RRHF improves on SFT (Yuan et al. 2023)").
    text: str = ""
    better: str = ""
    worse: str = ""


@dataclass
class RunSpec:
    """One contender. Without ``algorithm`` it is a decoding strategy applied to the SFT model."""

    label: str = ""
    algorithm: str | None = None
    algorithm_args: dict[str, Any] = field(default_factory=dict)
    #: ``train`` overrides on top of ``alignment.train`` (the shared step budget).
    train: dict[str, Any] = field(default_factory=dict)
    #: The reward an algorithm that ``needs_reward`` (or best-of-n) optimises: the learnt proxy
    #: reward model or the task's gold reward. Default: proxy.
    reward: Literal["proxy", "gold"] | None = None
    #: Best-of-n decoding from the SFT model (no training).
    best_of_n: int | None = None
    #: Keys (``algorithm_args.NAME``, ``train.NAME`` or ``best_of_n``) and the values to sweep;
    #: every combination becomes one run (a grid when several keys are given), and the frontier
    #: plot joins them into one curve.
    sweep: dict[str, list[Any]] | None = None
    #: With a sweep: train every setting on the tuning seed(s), keep the one with the highest gold
    #: reward on the *validation* prompts, and report only that setting, on the *test* prompts,
    #: for every seed. Without: every setting is its own row.
    select: bool = False


@dataclass
class BenchConfig:
    task: TaskSection = field(default_factory=TaskSection)
    #: The model every stage starts from: ``tiny`` (a from-scratch model with the task's
    #: tokenizer, sized by ``model.tiny``), a hub id or a local directory.
    model: ModelConfig = field(default_factory=ModelConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    #: What a seed redraws. ``pipeline``: everything (initial weights, pretraining, SFT, the
    #: preference data, the proxy reward model, the alignment run, the evaluation samples), so
    #: the intervals cover the whole pipeline. ``alignment``: the alignment run and the
    #: evaluation samples only; the shared stages are built once, with seed 0.
    seed_scope: Literal["pipeline", "alignment"] = "pipeline"
    #: Seeds whose validation scores pick a selected sweep's setting (None: the first seed).
    tuning_seeds: list[int] | None = None
    failure: FailureConfig = field(default_factory=FailureConfig)
    #: KL(π‖π_SFT) budgets (nats per response) at which every sweep's gold reward is read off its
    #: frontier, so that methods are compared at equal KL.
    kl_budgets: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    #: Published shapes to check against the pairwise tests (the findings section of results.md).
    claims: list[Claim] = field(default_factory=list)
    output_dir: str = "runs/bench"
    #: Where stage outputs are cached (None: OUTPUT_DIR/cache).
    cache_dir: str | None = None
    #: torch intra-op threads (None: torch's default). One thread is fastest for tiny models on
    #: a busy CPU, where several threads per process contend for the same cores.
    threads: int | None = None
    pretrain: StageConfig = field(default_factory=StageConfig)
    sft: StageConfig = field(default_factory=StageConfig)
    preferences: PreferenceConfig = field(default_factory=PreferenceConfig)
    reward_model: StageConfig = field(default_factory=lambda: StageConfig(algorithm="reward"))
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    runs: list[RunSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Contender:
    """One expanded run: a :class:`RunSpec` with its sweep setting applied."""

    label: str
    group: str
    spec: RunSpec
    sweep_key: str | None = None
    sweep_value: Any = None
    #: The swept keys and their values in this run (empty without a sweep).
    setting: dict[str, Any] = field(default_factory=dict)

    @property
    def trains(self) -> bool:
        return self.spec.algorithm is not None

    @property
    def is_trial(self) -> bool:
        """A setting of a selected sweep: trained and scored on validation to pick one."""
        return self.spec.select and bool(self.setting)


# ----- loading and validation ----------------------------------------------------------------------


def load_bench_config(path: str | Path | None = None, overrides: list[str] | None = None,
                      raw: dict[str, Any] | None = None) -> BenchConfig:
    """Read, validate and cross-check a bench config (nothing is trained or downloaded)."""
    data = copy.deepcopy(raw or {}) if path is None else read_yaml(path)
    data = apply_overrides(data, list(overrides or []))
    config = build_dataclass(BenchConfig, data)
    validate_bench(config)
    return config


def _set_path(target: RunSpec, key: str, value: Any) -> RunSpec:
    spec = copy.deepcopy(target)
    section, _, name = key.partition(".")
    if section in ("algorithm_args", "train"):
        getattr(spec, section)[name] = value
    else:
        setattr(spec, section, value)
    return spec


def sweep_settings(spec: RunSpec) -> list[dict[str, Any]]:
    """Every combination of a sweep's values, first key slowest, as ``{key: value}``."""
    if not spec.sweep:
        return []
    keys = list(spec.sweep)
    return [dict(zip(keys, values)) for values in itertools.product(*(spec.sweep[k] for k in keys))]


def setting_label(setting: dict[str, Any]) -> str:
    return ", ".join(f"{key.rpartition('.')[2]}={value}" for key, value in setting.items())


def apply_setting(spec: RunSpec, setting: dict[str, Any]) -> RunSpec:
    for key, value in setting.items():
        spec = _set_path(spec, key, value)
    return spec


def expand_runs(config: BenchConfig) -> list[Contender]:
    """Every run, sweeps expanded, in config order (a selected sweep's settings are trials)."""
    out: list[Contender] = []
    for spec in config.runs:
        if not spec.sweep:
            out.append(Contender(spec.label, spec.label, spec))
            continue
        for setting in sweep_settings(spec):
            one_key = len(setting) == 1
            out.append(Contender(f"{spec.label} ({setting_label(setting)})", spec.label, apply_setting(spec, setting),
                                 next(iter(setting)) if one_key else ", ".join(setting),
                                 next(iter(setting.values())) if one_key else setting_label(setting), setting))
    return out


def headline_labels(config: BenchConfig) -> list[str]:
    """The rows of the table: every run that is not a trial of a selected sweep, and one row per
    selected sweep (its label), in config order."""
    out: list[str] = []
    for contender in expand_runs(config):
        name = contender.group if contender.is_trial else contender.label
        if name not in out:
            out.append(name)
    return out


def _check_sweep(spec: RunSpec, where: str) -> None:
    if spec.sweep is None:
        if spec.select:
            raise ConfigError(f"{where}.select = true needs a sweep (the settings to select from)")
        return
    if not spec.sweep:
        raise ConfigError(f"{where}.sweep must name at least one key")
    for key, values in spec.sweep.items():
        section, dot, name = key.partition(".")
        known = ("algorithm_args", "train")
        if not ((section in known and dot and name) or key in SWEEPABLE):
            choices = [f"{s}.NAME" for s in known] + list(SWEEPABLE)
            raise ConfigError(f"{where}.sweep key {key!r} cannot be swept{did_you_mean(key, SWEEPABLE)}; "
                              f"sweep one of {', '.join(choices)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.sweep.{key} must be a non-empty list of values")


def _check_train_overrides(section: str, train: dict[str, Any], data: dict[str, Any] | None = None) -> None:
    from zoo.config import DataConfig, TrainConfig

    build_dataclass(TrainConfig, dict(train), prefix=f"{section}.train")
    if data is not None:
        if "train" in data or "eval" in data:
            raise ConfigError(f"{section}.data.train / data.eval are chosen by the benchmark (the stage's own data); "
                              f"remove them")
        build_dataclass(DataConfig, dict(data), prefix=f"{section}.data")


def _check_stage(config: BenchConfig, section: str, stage: StageConfig, shapes: tuple[str, ...], output: str) -> None:
    from zoo.registry import get_registry

    try:
        algorithm = get_registry().algorithm(stage.algorithm)
    except ConfigError as exc:
        raise ConfigError(f"{section}.algorithm: {exc}") from None
    if algorithm.data_shape not in shapes or output_kind(algorithm) is not OUTPUT_KINDS[output]:
        raise ConfigError(f"{section}.algorithm = {stage.algorithm!r}: this stage needs an algorithm that trains a "
                          f"{OUTPUT_KINDS[output].role} on {shapes[0]} data")
    _check_train_overrides(section, stage.train, stage.data)
    run_config(config, stage.algorithm, stage.algorithm_args, stage.train, stage.data, where=section)


def validate_bench(config: BenchConfig) -> None:
    """Cross-field checks that need the registry."""
    from zoo.registry import get_registry

    registry = get_registry()
    try:
        task_cls = registry.get("tasks", config.task.name)
    except ConfigError as exc:
        raise ConfigError(f"task.name: {exc}") from None
    task_cls.parse_args(config.task.args)
    if not config.seeds:
        raise ConfigError("seeds must list at least one seed")
    if len(set(config.seeds)) != len(config.seeds):
        raise ConfigError(f"seeds = {config.seeds}: a seed is listed twice")
    if config.tuning_seeds is not None:
        unknown = [s for s in config.tuning_seeds if s not in config.seeds]
        if not config.tuning_seeds or unknown:
            raise ConfigError(f"tuning_seeds = {config.tuning_seeds}: must be a non-empty subset of seeds "
                              f"{config.seeds}")
    if config.failure.max_kl <= 0 or config.failure.max_gold_drop_sd <= 0:
        raise ConfigError("failure.max_kl and failure.max_gold_drop_sd must be > 0")
    if config.threads is not None and config.threads < 1:
        raise ConfigError(f"threads = {config.threads}: must be >= 1 (or null)")
    _check_stage(config, "pretrain", config.pretrain, ("sft",), "logprobs")
    _check_stage(config, "sft", config.sft, ("sft",), "logprobs")
    # The proxy learns from the preference pairs, the labels DPO sees; ranked-data algorithms read
    # a pair as a ranking of two.
    _check_stage(config, "reward_model", config.reward_model, ("pairwise", "ranked"), "scores")
    if not config.reward_model.enabled:
        raise ConfigError("reward_model.enabled = false: the proxy reward model cannot be skipped (best-of-n, the "
                          "reward-model score column and runs with reward: proxy need it)")
    _check_train_overrides("alignment", config.alignment.train, config.alignment.data)
    p = config.preferences
    if p.samples_per_prompt < 2:
        raise ConfigError(f"preferences.samples_per_prompt = {p.samples_per_prompt}: must be >= 2 (a pair)")
    if p.temperature <= 0 or p.label_temperature < 0:
        raise ConfigError("preferences.temperature must be > 0 and preferences.label_temperature >= 0")
    e = config.evaluation
    if e.samples_per_prompt < 1 or e.batch_size < 1:
        raise ConfigError("evaluation.samples_per_prompt and evaluation.batch_size must be >= 1")
    if e.temperature != 1.0:
        raise ConfigError(f"evaluation.temperature = {e.temperature}: must be 1.0, the KL(π‖π_SFT) estimate "
                          f"needs samples from the policy itself")
    if e.suites:
        suites = registry.names("suites")
        for name in e.suites:
            if name not in suites:
                raise ConfigError(f"evaluation.suites: unknown suite {name!r}{did_you_mean(name, suites)}. "
                                  f"Available: {', '.join(suites)}.")
    if not config.runs:
        raise ConfigError("runs must list at least one contender (e.g. {label: SFT} for the SFT baseline)")
    for index, spec in enumerate(config.runs):
        _check_spec(spec, f"runs[{index}]", registry)
    contenders = expand_runs(config)
    labels = [c.label for c in contenders] + [spec.label for spec in config.runs if spec.select]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise ConfigError(f"runs: the label {duplicated[0]!r} is used twice; labels name the table's rows")
    for contender in contenders:
        _check_contender(config, contender, registry)
    rows = headline_labels(config)
    for index, claim in enumerate(config.claims):
        if not claim.text.strip():
            raise ConfigError(f"claims[{index}].text is missing: say what the claim is and where it comes from")
        for key in ("better", "worse"):
            label = getattr(claim, key)
            if label not in rows:
                raise ConfigError(f"claims[{index}].{key} = {label!r} is not a row of the table"
                                  f"{did_you_mean(label, rows)}; rows: {', '.join(rows)}")
    if not any(not c.trains and c.spec.best_of_n is None for c in contenders):
        raise ConfigError("runs must include the SFT baseline (an entry with a label and no algorithm): win rates "
                          "and significance are measured against it")


def _check_spec(spec: RunSpec, where: str, registry: Any) -> None:
    if not spec.label.strip():
        raise ConfigError(f"{where}.label is missing: every run needs a label (its row in the table)")
    _check_sweep(spec, where)
    if spec.algorithm is not None:
        try:
            registry.algorithm(spec.algorithm)
        except ConfigError as exc:
            raise ConfigError(f"{where}.algorithm: {exc}") from None


def _check_contender(config: BenchConfig, contender: Contender, registry: Any) -> None:
    spec, where = contender.spec, f"runs[{contender.label!r}]"
    if spec.best_of_n is not None:
        if spec.algorithm is not None:
            raise ConfigError(f"{where}: best_of_n decodes from the SFT model; it cannot be combined with an "
                              f"algorithm")
        if isinstance(spec.best_of_n, bool) or not isinstance(spec.best_of_n, int) or spec.best_of_n < 1:
            raise ConfigError(f"{where}.best_of_n = {spec.best_of_n!r}: must be an integer >= 1")
        return
    if spec.algorithm is None:
        if spec.algorithm_args or spec.train or spec.reward:
            raise ConfigError(f"{where}: algorithm_args, train and reward need an algorithm (a run without one is the "
                              f"SFT model itself)")
        return
    algorithm = registry.algorithm(spec.algorithm)
    if not output_kind(algorithm).is_policy:
        raise ConfigError(f"{where}.algorithm = {spec.algorithm!r} does not train a policy (its output is "
                          f"{algorithm.output!r}); the benchmark compares policies")
    if spec.reward is not None and not algorithm.needs_reward:
        raise ConfigError(f"{where}.reward = {spec.reward!r}: algorithm {spec.algorithm!r} uses no reward source; "
                          f"remove the key")
    merged_train = {**config.alignment.train, **spec.train}
    # The proxy reward model does not exist yet; any reward section passes the run-config check,
    # which also checks the algorithm's arguments.
    reward = {"function": "validation"} if algorithm.needs_reward else None
    run_config(config, spec.algorithm, spec.algorithm_args, merged_train, config.alignment.data,
               where=where, reward=reward)


def run_config(config: BenchConfig, algorithm: str, algorithm_args: dict[str, Any], train: dict[str, Any],
               data: dict[str, Any], *, where: str, model: str = "model", data_file: str = "data.jsonl",
               eval_file: str | None = None, output_dir: str = "out", reward: dict[str, Any] | None = None,
               seed: int = 0):
    """The :class:`zoo.config.RunConfig` one stage trains with, validated, errors naming ``where``."""
    model_section = {k: v for k, v in dataclasses.asdict(config.model).items() if k not in ("name", "tiny")}
    model_section["name"] = model
    raw = {
        "algorithm": algorithm, "algorithm_args": dict(algorithm_args),
        "model": model_section,
        "data": {"eval_fraction": 0.0, **data, "train": data_file, "eval": eval_file, "seed": seed},
        "train": {**train, "seed": seed},
        "output_dir": output_dir,
    }
    if reward is not None:
        raw["reward"] = reward
    try:
        return load_config(raw=raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
