"""``run_bench``: build the shared stages, train and evaluate every contender for every seed, report.

Everything the harness does differently between contenders follows from the config (an
``algorithm`` or not, ``best_of_n``, ``reward``) and the algorithm's declared ``data_shape`` and
``needs_reward``; it never looks at algorithm names.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from statistics import fmean, pstdev
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from zoo.bench.budget import calibrate_all, fit_steps, spec_key
from zoo.bench.cache import Stage, StageBusy, StageCache, fingerprint
from zoo.bench.config import BenchConfig, Contender, RunSpec, apply_setting, expand_runs, tuning_seeds
from zoo.bench.evaluate import EvalInputs, evaluate_model, load_policy
from zoo.bench.record import BenchRun
from zoo.bench.schedule import Schedule
from zoo.bench.stages import MODEL, Pipeline, Stages, plugin_module
from zoo.errors import ConfigError
from zoo.writable import check_writable_dir


class _LazyInputs:
    """Loads the evaluation inputs (models, rewards) only if some evaluation has to run."""

    def __init__(self, load: Callable[[], EvalInputs]):
        self._load = load
        self._value: EvalInputs | None = None

    def get(self) -> EvalInputs:
        if self._value is None:
            self._value = self._load()
        return self._value


def _eval_inputs(config: BenchConfig, stages: Stages, pipeline: Pipeline) -> dict[str, EvalInputs]:
    """The evaluation inputs of one pipeline, by split (``test`` and ``validation``)."""
    from zoo.rewards.loading import load_reward_source

    data = pipeline.data
    model, tokenizer = load_policy(pipeline.sft_model)
    probes = json.loads((data.path / "probes.json").read_text())
    proxy = load_reward_source(stages.reward_source("proxy", pipeline.reward_model)).to(model.device)
    test = EvalInputs(
        prompts=json.loads((data.path / "test_prompts.json").read_text()),
        probes=probes["items"], probe_fewshot=probes["fewshot"], heldout_probes=probes.get("heldout", []),
        heldout_pairs=pipeline.preferences.path / "heldout_pairs.jsonl",
        sft_model=model, tokenizer=tokenizer,
        gold=proxy if stages.task.gold_reward() is None else load_reward_source(stages.task.gold_reward()).to(
            model.device),
        proxy=proxy,
        config=config.evaluation, max_new_tokens=stages.max_new_tokens(data),
        judges={name: load_reward_source(judge.reward).to(model.device)
                for name, judge in stages.task.judges().items()},
    )
    validation = dataclasses.replace(test, prompts=json.loads((data.path / "validation_prompts.json").read_text()))
    return {"test": test, "validation": validation}


def quiet_training_logs() -> None:
    """Keep the stage announcements readable: no per-load progress bars or Lightning banners."""
    import lightning  # noqa: F401  # it sets its loggers' levels on import, so this must come first
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_bench(config: BenchConfig, *, output_dir: str | Path | None = None,
              announce: Callable[[str], None] | None = None, workers: int = 1) -> BenchRun:
    """Run (or reuse) every stage of ``config`` and collect the evaluation records (``workers``:
    how many processes built the stages first, :func:`build_as_worker`, recorded with the result)."""
    from zoo.bench.provenance import git_state, run_source_hash
    from zoo.bench.sources import applied_canary, code_source_hash, core_source_hash, use_aliases
    from zoo.bench.versions import package_versions

    start, cpu_start = time.perf_counter(), time.process_time()
    out = Path(output_dir or config.output_dir)
    check_writable_dir(out, "output_dir")  # before any stage trains, not when its results are written
    check_writable_dir(config.cache_dir or out / "cache", "cache_dir")
    cache = StageCache(Path(config.cache_dir) if config.cache_dir else out / "cache")
    use_aliases(cache.root)
    # Taken before anything runs: a commit made while the benchmark trains must not be credited with it.
    provenance = {**git_state(), "source_hash": run_source_hash(config.to_dict()), "packages": package_versions(),
                  "code_hash": code_source_hash(), "core_hash": core_source_hash(), "canary": applied_canary()}
    report = announce or (lambda text: None)
    quiet_training_logs()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    provenance.update(workers=workers, torch_threads=torch.get_num_threads())
    schedule = plan(config)

    def announce(text: str) -> None:
        report(f"{schedule.prefix()}: {text}")

    stages = Stages(config, cache, announce)
    inputs: dict[int, _LazyInputs] = {}

    def pipeline_of(seed: int) -> tuple[Pipeline, _LazyInputs]:
        if stages.pipeline_seed(seed) in stages._pipelines:
            pipeline = stages.pipeline(seed)
        else:
            with schedule.pipeline():
                pipeline = stages.pipeline(seed)
        if pipeline.seed not in inputs:
            inputs[pipeline.seed] = _LazyInputs(lambda p=pipeline: _eval_inputs(config, stages, p))
        return pipeline, inputs[pipeline.seed]

    budgets = _fit_budgets(config, stages, lambda: pipeline_of(config.seeds[0])[0], schedule.start)

    def run_one(contender: Contender, seed: int, split: str) -> tuple[Stage, Stage | None]:
        schedule.start((contender.label, seed, split))
        pipeline, lazy = pipeline_of(seed)
        aligned = None
        if contender.trains:
            fitted = budgets["contenders"].get(_key(contender.spec)) if budgets else None
            aligned = stages.align(contender, seed, pipeline, fitted["steps"] if fitted else None)
        evaluated = _evaluate(contender, seed, aligned, stages, lazy, pipeline, split, announce)
        return evaluated, aligned

    baseline = next(c for c in expand_runs(config) if not c.trains and c.spec.best_of_n is None)
    selections = {spec.label: _select(config, spec, baseline, run_one) for spec in config.runs if spec.select}
    contenders = _headline(config, selections)
    records: dict[str, dict[int, dict[str, Any]]] = {c.label: {} for c in contenders}
    run_dirs: dict[str, dict[int, Path]] = {c.label: {} for c in contenders}
    for seed in config.seeds:
        for contender in contenders:
            evaluated, aligned = run_one(contender, seed, "test")
            if aligned is not None:
                run_dirs[contender.label][seed] = aligned.path / "run"
            records[contender.label][seed] = {**evaluated.record, "training": aligned.record if aligned else None}
    pipelines = {seed: {kind: stage.record for kind, stage in pipeline.stages.items()}
                 for seed, pipeline in sorted(stages._pipelines.items())}
    first = stages.pipeline(config.seeds[0])
    shared_dirs = {kind: stage.path / "run" for kind, stage in first.stages.items()
                   if (stage.path / "run" / "logs").is_dir()}
    return BenchRun(config, out, pipelines[first.seed], records, contenders, list(cache.events), run_dirs,
                    shared_dirs, time.perf_counter() - start, time.process_time() - cpu_start, pipelines, selections,
                    provenance, _budget_record(config, budgets, contenders))


def build_as_worker(config: BenchConfig, index: int, workers: int, *, output_dir: str | Path | None = None,
                    announce: Callable[[str], None] | None = None, pause: float = 2.0) -> int:
    """Worker ``index`` of ``workers`` processes building one run's stages at once (``zoo bench --workers``).

    Each worker walks the whole run in the order :func:`run_bench` does, starting at its own seed
    (the seeds rotated by ``index``): each seed's shared stages, then the budget calibrations, then
    every row and seed. It builds what no other process is building and passes over what one is
    (:class:`~zoo.bench.cache.StageBusy`), coming back to it until everything is built, so the
    work spreads over the workers without a plan. It writes no report: the ordinary run that
    follows finds every stage in the cache, and the stages are the ones a single process would
    build. Selected sweeps' trials are left to that run. Returns the number of stages built.
    """
    from zoo.bench.sources import use_aliases

    out = Path(output_dir or config.output_dir)
    check_writable_dir(config.cache_dir or out / "cache", "cache_dir")
    cache = StageCache(Path(config.cache_dir) if config.cache_dir else out / "cache", wait=False)
    use_aliases(cache.root)
    quiet_training_logs()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    stages = Stages(config, cache, announce or (lambda text: None))
    shift = index % len(config.seeds)
    seeds = config.seeds[shift:] + config.seeds[:shift]
    _until_built(seeds, stages.pipeline, pause)
    budgets = None
    if config.budget.matched != "steps":
        trained = [c for c in expand_runs(config) if c.trains]
        by_key: dict[str, Contender] = {}
        for c in trained:
            by_key.setdefault(_key(c.spec), c)  # the contender _fit_budgets calibrates: the first of each setting
        first = list(by_key.values())
        first = first[index % max(1, len(first)):] + first[:index % max(1, len(first))]
        pipeline = stages.pipeline(config.seeds[0])  # built above, by this worker or another
        _until_built(first, lambda c: stages.align(c, pipeline.seed, pipeline, config.budget.calibration_steps,
                                                   kind="calibrate"), pause)
        budgets = _fit_budgets(config, stages, lambda: pipeline)
    inputs: dict[int, _LazyInputs] = {}
    rows = [c for c in expand_runs(config) if not c.is_trial]

    def build_unit(unit: tuple[Contender, int]) -> None:
        contender, seed = unit
        pipeline = stages.pipeline(seed)
        lazy = inputs.setdefault(pipeline.seed, _LazyInputs(lambda p=pipeline: _eval_inputs(config, stages, p)))
        aligned = None
        if contender.trains:
            fitted = budgets["contenders"].get(_key(contender.spec)) if budgets else None
            aligned = stages.align(contender, seed, pipeline, fitted["steps"] if fitted else None)
        _evaluate(contender, seed, aligned, stages, lazy, pipeline, "test", stages.announce)

    _until_built([(c, seed) for seed in seeds for c in rows], build_unit, pause)
    built = sum(1 for _, _, status in cache.events if status == "built")
    stages.announce(f"done: built {built} stage(s); the others were built by another worker or earlier")
    return built


def _until_built(items: list[Any], build: Callable[[Any], Any], pause: float) -> None:
    """``build`` every item, passing over those another process is building (:class:`StageBusy`) and
    coming back to them, with a ``pause`` in seconds whenever a whole pass built nothing."""
    pending = list(items)
    while pending:
        left = []
        for item in pending:
            try:
                build(item)
            except StageBusy:
                left.append(item)
        if len(left) == len(pending):
            time.sleep(pause)
        pending = left


def _key(spec: RunSpec) -> str:
    return spec_key(spec.algorithm, spec.algorithm_args, spec.train, spec.reward)


def _fit_budgets(config: BenchConfig, stages: Stages, first_pipeline: Callable[[], Pipeline],
                 start: Callable[[Any], None] = lambda unit: None) -> dict[str, Any] | None:
    """Calibrate every trained contender (selection trials included) on the first reported seed's
    pipeline and fit its steps to the matched budget; None when steps are what is matched."""
    budget = config.budget
    if budget.matched == "steps":
        return None
    pipeline = first_pipeline()
    trained = [c for c in expand_runs(config) if c.trains]

    def calibrate(contender: Contender) -> dict[str, Any]:
        start((contender.label, pipeline.seed, "calibrate"))
        return stages.align(contender, pipeline.seed, pipeline, budget.calibration_steps, kind="calibrate").record

    records = calibrate_all(((_key(c.spec), c) for c in trained), calibrate)
    try:
        return fit_steps(records, budget.matched, int(config.alignment.train.get("max_steps", 1)), budget.max_steps,
                         budget.target)
    except ValueError as exc:
        raise ConfigError(f"budget.matched = {budget.matched!r}: {exc}") from None


def _budget_record(config: BenchConfig, budgets: dict[str, Any] | None, contenders: list[Contender]
                   ) -> dict[str, Any]:
    """results.json's budget: what is matched, the target and each trained row's fitted steps."""
    if budgets is None:
        return {"matched": "steps", "target": config.alignment.train.get("max_steps"), "rows": {}}
    rows = {c.label: budgets["contenders"][_key(c.spec)] for c in contenders if c.trains}
    return {"matched": budgets["matched"], "target": budgets["target"], "rows": rows,
            "calibration_steps": config.budget.calibration_steps}


def plan(config: BenchConfig) -> Schedule:
    """Every unit :func:`run_bench` will run (contender, seed, split), in order, and the pipelines."""
    tuning = tuning_seeds(config)
    runs = expand_runs(config)
    baseline = next(c for c in runs if not c.trains and c.spec.best_of_n is None)
    units: list[tuple[str, int, str]] = []
    if config.budget.matched != "steps":  # one calibration run per distinct trained setting, on the first seed
        first: dict[str, str] = {}
        for c in runs:
            if c.trains:
                first.setdefault(_key(c.spec), c.label)
        units += [(label, config.seeds[0], "calibrate") for label in first.values()]
    for spec in (s for s in config.runs if s.select):
        units += [(baseline.label, seed, "validation") for seed in tuning]
        units += [(c.label, seed, "validation") for c in runs if c.is_trial and c.group == spec.label
                  for seed in tuning]
    # The table's rows: a selected sweep's trials give way to one row named for the sweep (see _headline).
    rows = list(dict.fromkeys(c.group if c.is_trial else c.label for c in runs))
    units += [(label, seed, "test") for seed in config.seeds for label in rows]
    seeds = set(config.seeds) | (set(tuning) if any(s.select for s in config.runs) else set())
    return Schedule(units, pipelines=len({seed if config.seed_scope == "pipeline" else 0 for seed in seeds}))


def _headline(config: BenchConfig, selections: dict[str, dict[str, Any]]) -> list[Contender]:
    """The table's rows: every run except a selected sweep's trials, which give way to the selected setting."""
    out: list[Contender] = []
    for contender in expand_runs(config):
        if not contender.is_trial:
            out.append(contender)
        elif contender.group not in {c.label for c in out}:
            setting = selections[contender.group]["selected"]
            spec = dataclasses.replace(apply_setting(contender.spec, setting), select=False, sweep=None)
            out.append(Contender(contender.group, contender.group, spec, setting=setting))
    return out


def _select(config: BenchConfig, spec: RunSpec, baseline: Contender,
            run_one: Callable[[Contender, int, str], tuple[Stage, Stage | None]]) -> dict[str, Any]:
    """Train every setting of a selected sweep on the tuning seeds; keep the best on validation.

    The tuning seeds are not among the reported ones (:func:`zoo.bench.config.tuning_seeds`). With
    ``selection.criterion: proxy`` (the default) the score is the mean proxy reward-model score on
    the validation prompts over the tuning seeds, and a trial whose validation KL exceeds
    ``failure.max_kl`` on any tuning seed is not eligible: both are what a user has. With ``gold``
    (an oracle ablation) the score is the mean gold reward and a trial that collapses on any tuning
    seed (:func:`zoo.bench.stats.is_failure` against the SFT model's validation samples of that
    seed) is not eligible. When no trial is eligible, every trial is.
    """
    from zoo.bench.stats import is_failure

    tuning = tuning_seeds(config)
    failure = config.failure
    criterion = config.selection.criterion
    base = {seed: run_one(baseline, seed, "validation")[0].record for seed in tuning}
    trials = []
    for contender in (c for c in expand_runs(config) if c.is_trial and c.group == spec.label):
        scores = {}
        for seed in tuning:
            record = run_one(contender, seed, "validation")[0].record
            gold, kl, proxy = fmean(record["gold"]), fmean(record["kl"]), fmean(record["proxy"])
            if criterion == "proxy":
                failed = math.isnan(kl) or kl > failure.max_kl
            else:
                failed = is_failure(gold, kl, fmean(base[seed]["gold"]), pstdev(base[seed]["gold"]),
                                    max_kl=failure.max_kl, max_gold_drop_sd=failure.max_gold_drop_sd)
            scores[str(seed)] = {"gold": gold, "proxy": proxy, "kl": kl, "failed": failed}
        trials.append({"label": contender.label, "setting": contender.setting, "validation": scores,
                       "gold": fmean(s["gold"] for s in scores.values()),
                       "proxy": fmean(s["proxy"] for s in scores.values()),
                       "failed": any(s["failed"] for s in scores.values())})
    eligible = [t for t in trials if not t["failed"]] or trials
    best = max(eligible, key=lambda t: t[criterion])  # first of equals: config order
    words = {"proxy": "mean proxy reward-model score on the validation prompts (KL within failure.max_kl)",
             "gold": "mean gold reward on the validation prompts (an oracle no user has: an ablation)"}
    return {"trials": trials, "selected": best["setting"], "selected_label": best["label"],
            "tuning_seeds": list(tuning), "criterion": criterion, "criterion_text": words[criterion]}


def _evaluate(contender: Contender, seed: int, aligned: Stage | None, stages: Stages, inputs: _LazyInputs,
              pipeline: Pipeline, split: str, announce: Callable[[str], None]) -> Stage:
    """The cached evaluation of one contender and seed on ``split``: its policy, or best-of-n from the SFT model."""
    spec = contender.spec
    config = stages.config
    what = {"evaluation": dataclasses.asdict(config.evaluation), "gold": stages.judge_identity(),
            "kind": "policy" if aligned else "best_of_n" if spec.best_of_n else "sft",
            "best_of_n": spec.best_of_n, "reward": spec.reward, "seed": seed, "split": split}
    if stages.task.judges():  # only then: the fingerprints of tasks without judges stay as they were
        what["judges"] = {name: dataclasses.asdict(judge.reward) for name, judge in stages.task.judges().items()}
    upstream = [pipeline.data.key, pipeline.sft_key, pipeline.preferences.key, pipeline.reward_model.key]
    upstream += [aligned.key] if aligned else []
    suites = tuple(plugin_module("suites", name) for name in ("preference", *config.evaluation.suites))

    def build(folder: Path) -> dict[str, Any]:
        from zoo.rewards.loading import load_reward_source

        model = load_policy(aligned.path / MODEL)[0] if aligned else None
        shared = inputs.get()[split]
        reward = None
        if spec.best_of_n is not None:
            reward = load_reward_source(stages.reward_source(spec.reward, pipeline.reward_model)).to(
                shared.sft_model.device)
        return evaluate_model(model, shared, seed, best_of=spec.best_of_n, best_of_reward=reward,
                              full=split == "test")

    key = fingerprint("eval", what, upstream, (type(stages.task), *suites))
    return stages.cache.get_or_build("eval", key, build,
                                     on_build=lambda _: announce(f"evaluating {contender.label} (seed {seed}, "
                                                                 f"{split})"))
