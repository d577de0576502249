"""``run_bench``: build the shared stages, train and evaluate every contender for every seed, report.

Everything the harness does differently between contenders follows from the config (an
``algorithm`` or not, ``best_of_n``, ``reward``) and the algorithm's declared ``data_shape`` and
``needs_reward``; it never looks at algorithm names.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from statistics import fmean, pstdev
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.bench.cache import Stage, StageCache, fingerprint
from zoo.bench.config import BenchConfig, Contender, RunSpec, apply_setting, expand_runs
from zoo.bench.evaluate import EvalInputs, evaluate_model, load_policy
from zoo.bench.stages import MODEL, Pipeline, Stages, plugin_module
from zoo.writable import check_writable_dir


@dataclass
class BenchRun:
    """What one ``zoo bench`` invocation produced."""

    config: BenchConfig
    output_dir: Path
    #: The first seed's shared stages (kind → record); every pipeline's are in ``pipelines``.
    shared: dict[str, dict[str, Any]]
    #: contender label → seed → test-split evaluation record (plus the training record under ``"training"``).
    records: dict[str, dict[int, dict[str, Any]]]
    #: The table's rows: plain runs, and for each selected sweep the setting it selected.
    contenders: list[Contender]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    #: contender label → seed → the folder of its training run (for training curves).
    run_dirs: dict[str, dict[int, Path]] = field(default_factory=dict)
    shared_dirs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    #: CPU time of this process (all threads), a load-independent measure of the work done.
    cpu_seconds: float = 0.0
    #: pipeline seed → kind → record of its shared stages.
    pipelines: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: selected sweep's label → its trials: setting, validation scores per tuning seed, the choice.
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``commit``, ``clean``, ``dirty`` and ``source_hash`` as they were when the run started.
    provenance: dict[str, Any] = field(default_factory=dict)


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
    from zoo.rewards import load_reward_source

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
              announce: Callable[[str], None] | None = None) -> BenchRun:
    """Run (or reuse) every stage of ``config`` and collect the evaluation records."""
    from zoo.bench.provenance import git_state, source_hash

    start, cpu_start = time.perf_counter(), time.process_time()
    # Taken before anything runs: a commit made while the benchmark trains must not be credited with it.
    provenance = {**git_state(), "source_hash": source_hash()}
    announce = announce or (lambda text: None)
    quiet_training_logs()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    out = Path(output_dir or config.output_dir)
    check_writable_dir(out, "output_dir")  # before any stage trains, not when its results are written
    check_writable_dir(config.cache_dir or out / "cache", "cache_dir")
    cache = StageCache(Path(config.cache_dir) if config.cache_dir else out / "cache")
    stages = Stages(config, cache, announce)
    inputs: dict[int, _LazyInputs] = {}

    def pipeline_of(seed: int) -> tuple[Pipeline, _LazyInputs]:
        pipeline = stages.pipeline(seed)
        if pipeline.seed not in inputs:
            inputs[pipeline.seed] = _LazyInputs(lambda p=pipeline: _eval_inputs(config, stages, p))
        return pipeline, inputs[pipeline.seed]

    def run_one(contender: Contender, seed: int, split: str) -> tuple[Stage, Stage | None]:
        pipeline, lazy = pipeline_of(seed)
        aligned = stages.align(contender, seed, pipeline) if contender.trains else None
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
                    provenance)


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

    The score is the mean gold reward on the validation prompts over the tuning seeds; a trial
    that collapses on any tuning seed (:func:`zoo.bench.stats.is_failure` against the SFT model's
    validation samples of that seed) is not eligible unless every trial does.
    """
    from zoo.bench.stats import is_failure

    tuning = config.tuning_seeds or config.seeds[:1]
    failure = config.failure
    base = {seed: run_one(baseline, seed, "validation")[0].record for seed in tuning}
    trials = []
    for contender in (c for c in expand_runs(config) if c.is_trial and c.group == spec.label):
        scores = {}
        for seed in tuning:
            record = run_one(contender, seed, "validation")[0].record
            gold, kl = fmean(record["gold"]), fmean(record["kl"])
            failed = is_failure(gold, kl, fmean(base[seed]["gold"]), pstdev(base[seed]["gold"]),
                                max_kl=failure.max_kl, max_gold_drop_sd=failure.max_gold_drop_sd)
            scores[seed] = {"gold": gold, "kl": kl, "failed": failed}
        trials.append({"label": contender.label, "setting": contender.setting, "validation": scores,
                       "gold": fmean(s["gold"] for s in scores.values()),
                       "failed": any(s["failed"] for s in scores.values())})
    eligible = [t for t in trials if not t["failed"]] or trials
    best = max(eligible, key=lambda t: t["gold"])  # first of equals: config order
    return {"trials": trials, "selected": best["setting"], "selected_label": best["label"],
            "tuning_seeds": list(tuning), "criterion": "mean gold reward on the validation prompts"}


def _evaluate(contender: Contender, seed: int, aligned: Stage | None, stages: Stages, inputs: _LazyInputs,
              pipeline: Pipeline, split: str, announce: Callable[[str], None]) -> Stage:
    """The cached evaluation of one contender and seed on ``split``: its policy, or best-of-n from the SFT model."""
    spec = contender.spec
    config = stages.config
    what = {"evaluation": dataclasses.asdict(config.evaluation), "gold": stages.judge_identity(),
            "kind": "policy" if aligned else "best_of_n" if spec.best_of_n else "sft",
            "best_of_n": spec.best_of_n, "reward": spec.reward, "seed": seed, "split": split}
    upstream = [pipeline.data.key, pipeline.sft_key, pipeline.preferences.key, pipeline.reward_model.key]
    upstream += [aligned.key] if aligned else []
    suites = tuple(plugin_module("suites", name) for name in ("preference", *config.evaluation.suites))

    def build(folder: Path) -> dict[str, Any]:
        from zoo.rewards import load_reward_source

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
