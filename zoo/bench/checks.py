"""The bench config's checks that need the registry: tasks, stage algorithms, contenders, sweeps.

Run by :func:`zoo.bench.loading.load_bench_config` before anything trains: every stage and every
contender is turned into the run config it will train with (:func:`zoo.bench.config.run_config`,
which checks it like ``zoo train`` does, the algorithm's arguments included), so a bad value in
any of them fails here, naming where it is.
"""
from __future__ import annotations

from typing import Any

from zoo.bench.config import (SWEEPABLE, BenchConfig, Contender, RunSpec, StageConfig, expand_runs, headline_labels,
                              run_config)
from zoo.config import build_dataclass
from zoo.errors import ConfigError, did_you_mean
from zoo.model_output import OUTPUT_KINDS, output_kind


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


def _check_stage(config: BenchConfig, section: str, stage: StageConfig, shapes: tuple[str, ...], output: str):
    """Check one training stage; return its algorithm (looked up once)."""
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
    return algorithm


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
        reported = [s for s in config.tuning_seeds if s in config.seeds]
        if not config.tuning_seeds or reported or len(set(config.tuning_seeds)) != len(config.tuning_seeds):
            raise ConfigError(f"tuning_seeds = {config.tuning_seeds}: must list distinct seeds that are not among "
                              f"the reported seeds {config.seeds} (a seed that picks the setting would also grade "
                              f"it); e.g. tuning_seeds: [{1000 + max(config.seeds)}]")
    if config.equivalence_margin is not None and not config.equivalence_margin > 0:
        raise ConfigError(f"equivalence_margin = {config.equivalence_margin}: must be > 0 (a gold-reward "
                          f"difference) or null")
    if config.failure.max_kl <= 0 or config.failure.max_gold_drop_sd <= 0:
        raise ConfigError("failure.max_kl and failure.max_gold_drop_sd must be > 0")
    if config.threads is not None and config.threads < 1:
        raise ConfigError(f"threads = {config.threads}: must be >= 1 (or null)")
    _check_stage(config, "pretrain", config.pretrain, ("sft",), "logprobs")
    _check_stage(config, "sft", config.sft, ("sft",), "logprobs")
    # The proxy learns from the preference pairs, the labels DPO sees; ranked-data algorithms read
    # a pair as a ranking of two.
    algorithm = _check_stage(config, "reward_model", config.reward_model, ("pairwise", "ranked"), "scores")
    if config.reward_model.preferences == "rankings":
        if algorithm.data_shape != "ranked":
            raise ConfigError(f"reward_model.preferences = 'rankings': reward_model.algorithm = "
                              f"{config.reward_model.algorithm!r} reads {algorithm.data_shape} data, not rankings; "
                              f"use preferences: pairs or an algorithm that reads ranked data (e.g. reward)")
    if not config.reward_model.enabled:
        raise ConfigError("reward_model.enabled = false: the proxy reward model cannot be skipped (best-of-n, the "
                          "reward-model score column and runs with reward: proxy need it)")
    _check_train_overrides("alignment", config.alignment.train, config.alignment.data)
    if config.perturbation.seed_offset < 1:
        raise ConfigError(f"perturbation.seed_offset = {config.perturbation.seed_offset}: must be >= 1 (the shifted "
                          f"seeds must differ from the reported ones)")
    b = config.budget
    if b.calibration_steps < 1 or b.max_steps < 1 or (b.target is not None and not b.target > 0):
        raise ConfigError("budget.calibration_steps and budget.max_steps must be >= 1 and budget.target > 0 (or null)")
    if b.matched == "steps" and b.target is not None:
        raise ConfigError("budget.target is only read with budget.matched: flops or samples (with steps, set "
                          "alignment.train.max_steps); remove it")
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
    for index, entry in enumerate(config.history):
        where = f"history[{index}]"
        if not entry.when.strip() or not entry.change.strip():
            raise ConfigError(f"{where}: say when it was declared (when) and what changed afterwards (change)")
        for number, claim in enumerate(entry.claims):
            if not isinstance(claim, dict) or set(claim) != {"text", "rows", "verdict"}:
                raise ConfigError(f"{where}.claims[{number}] must have exactly the keys text, rows and verdict "
                                  f"(the claim as then declared and the verdict that run gave)")
    b, steps = config.budget, config.alignment.train.get("max_steps")
    if b.matched != "steps" and b.target is None and not (isinstance(steps, int) and steps >= 1):
        raise ConfigError(f"budget.matched = {b.matched!r} with no budget.target: the target is the median run's cost "
                          f"of alignment.train.max_steps steps, so set alignment.train.max_steps (or budget.target)")
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
    if config.budget.matched != "steps" and "max_steps" in spec.train:
        raise ConfigError(f"{where}.train.max_steps: with budget.matched = {config.budget.matched!r} the harness fits "
                          f"each run's steps to the budget; remove it, or set budget.matched: steps")
    if config.budget.matched == "samples" and not algorithm.generates_online:
        raise ConfigError(f"{where}: budget.matched = 'samples' matches samples generated while training, and "
                          f"{spec.algorithm!r} generates none (it trains on the shared preference data); match "
                          f"flops instead")
    merged_train = {**config.alignment.train, **spec.train}
    # The proxy reward model does not exist yet; any reward section passes the run-config check,
    # which also checks the algorithm's arguments.
    reward = {"function": "validation"} if algorithm.needs_reward else None
    run_config(config, spec.algorithm, spec.algorithm_args, merged_train, config.alignment.data,
               where=where, reward=reward)
