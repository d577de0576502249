"""Benchmark configuration: typed dataclasses, validated like run configs.

A bench config names a task, the model to start from, the stages that build the shared starting
point (pretraining, SFT, preference data, proxy reward model), the alignment runs to compare and
how every model is evaluated. Every key is checked (an unknown key is an error naming it, with a
suggestion); algorithm names, their ``algorithm_args`` and the task's ``args`` are checked
against the registry before anything trains (:mod:`zoo.bench.checks`). This module holds the
dataclasses, the expansion of sweeps into contenders and :func:`run_config`; reading a file and
running the checks is :func:`zoo.bench.loading.load_bench_config`.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from zoo.bench.protocol import (BudgetConfig, CanaryConfig, Claim, DeclaredRun, FailureConfig, PerturbationConfig,
                                SelectionConfig)
from zoo.config import ModelConfig, load_config
from zoo.errors import ConfigError

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
class RewardModelConfig(StageConfig):
    """The proxy reward model's stage: a :class:`StageConfig` and what it learns from."""

    algorithm: str = "reward"
    #: ``pairs``: one pair per training prompt (the labels DPO sees); ``rankings``: the whole
    #: Plackett–Luce ranking of each prompt's samples, K(K−1)/2 comparisons of K samples (InstructGPT's
    #: use of rankings), for an algorithm that reads ranked data.
    preferences: Literal["pairs", "rankings"] = "pairs"


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
    #: Seeds whose validation scores pick a selected sweep's setting; never among ``seeds``, so no
    #: reported seed was also tuned on (None: one seed, 1000 + the largest reported seed).
    tuning_seeds: list[int] | None = None
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    failure: FailureConfig = field(default_factory=FailureConfig)
    #: KL(π‖π_SFT) budgets (nats per response) at which every sweep's gold reward is read off its
    #: frontier, so that methods are compared at equal KL.
    kl_budgets: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    #: Published shapes to check against the pairwise tests (the findings section of results.md).
    #: Declared before the run: results.json records a hash of them with the seeds, selection and
    #: budgets, and a changed declaration keeps the earlier verdicts in results.md's history.
    claims: list[Claim] = field(default_factory=list)
    #: A row whose difference from the best row is shown to lie within ± this gold reward (two
    #: one-sided tests) is "equivalent" to it; None: no row is ever called equivalent.
    equivalence_margin: float | None = None
    #: Earlier declarations of this protocol and their verdicts (see :class:`DeclaredRun`).
    history: list[DeclaredRun] = field(default_factory=list)
    output_dir: str = "runs/bench"
    #: Where stage outputs are cached (None: OUTPUT_DIR/cache).
    cache_dir: str | None = None
    #: torch intra-op threads (None: torch's default). One thread is fastest for tiny models on
    #: a busy CPU, where several threads per process contend for the same cores.
    threads: int | None = None
    pretrain: StageConfig = field(default_factory=StageConfig)
    sft: StageConfig = field(default_factory=StageConfig)
    preferences: PreferenceConfig = field(default_factory=PreferenceConfig)
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    perturbation: PerturbationConfig = field(default_factory=PerturbationConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    runs: list[RunSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tuning_seeds(config: BenchConfig) -> list[int]:
    """The seeds selection trains on (:attr:`BenchConfig.tuning_seeds`, disjoint from the reported ones)."""
    return list(config.tuning_seeds) if config.tuning_seeds is not None else [1000 + max(config.seeds)]


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


# ----- expanding sweeps ----------------------------------------------------------------------------


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


def run_config(config: BenchConfig, algorithm: str, algorithm_args: dict[str, Any], train: dict[str, Any],
               data: dict[str, Any], *, where: str, model: str = "model", data_file: str = "data.jsonl",
               eval_file: str | None = None, output_dir: str = "out", reward: dict[str, Any] | None = None,
               seed: int = 0):
    """The :class:`zoo.config.RunConfig` one stage trains with, checked against its algorithm
    (:func:`zoo.planning.plan_run`), errors naming ``where``."""
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
    from zoo.planning import plan_run  # the registry and the algorithms: only when a stage is checked

    try:
        stage_config = load_config(raw=raw)
        plan_run(stage_config)
        return stage_config
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
