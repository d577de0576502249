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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.bench.cache import Stage, StageCache, fingerprint
from zoo.bench.config import BenchConfig, Contender, expand_runs
from zoo.bench.evaluate import EvalInputs, evaluate_model, load_policy
from zoo.bench.stages import MODEL, Stages


@dataclass
class BenchRun:
    """What one ``zoo bench`` invocation produced."""

    config: BenchConfig
    output_dir: Path
    shared: dict[str, dict[str, Any]]
    #: contender label → seed → evaluation record (plus the training record under ``"training"``).
    records: dict[str, dict[int, dict[str, Any]]]
    contenders: list[Contender]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    #: contender label → seed → the folder of its training run (for training curves).
    run_dirs: dict[str, dict[int, Path]] = field(default_factory=dict)
    shared_dirs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    #: CPU time of this process (all threads), a load-independent measure of the work done.
    cpu_seconds: float = 0.0


class _LazyInputs:
    """Loads the evaluation inputs (models, rewards) only if some evaluation has to run."""

    def __init__(self, load: Callable[[], EvalInputs]):
        self._load = load
        self._value: EvalInputs | None = None

    def get(self) -> EvalInputs:
        if self._value is None:
            self._value = self._load()
        return self._value


def _eval_inputs(config: BenchConfig, stages: Stages, data: Stage, sft_model: str, preferences: Stage,
                 reward_model: Stage) -> EvalInputs:
    from zoo.rewards import load_reward_source

    model, tokenizer = load_policy(sft_model)
    probes = json.loads((data.path / "probes.json").read_text())
    proxy = load_reward_source(stages.reward_source("proxy", reward_model)).to(model.device)
    return EvalInputs(
        prompts=json.loads((data.path / "eval_prompts.json").read_text()),
        probes=probes["items"], probe_fewshot=probes["fewshot"],
        heldout_pairs=preferences.path / "heldout_pairs.jsonl",
        sft_model=model, tokenizer=tokenizer,
        gold=load_reward_source(stages.task.gold_reward()).to(model.device), proxy=proxy,
        config=config.evaluation, max_new_tokens=stages.max_new_tokens(data),
    )


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
    start, cpu_start = time.perf_counter(), time.process_time()
    announce = announce or (lambda text: None)
    quiet_training_logs()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    out = Path(output_dir or config.output_dir)
    cache = StageCache(Path(config.cache_dir) if config.cache_dir else out / "cache")
    stages = Stages(config, cache, announce)

    data = stages.task_data()
    model, upstream = stages.initial_model(data)
    model, upstream = stages.pretrain(data, model, upstream)
    sft = stages.sft(data, model, upstream)
    if sft is not None:
        sft_model, sft_key = str(sft.path / MODEL), sft.key
    else:
        sft_model, sft_key = model, fingerprint("start", {}, upstream)
    preferences = stages.preferences(data, sft_model, sft_key)
    reward_model = stages.reward_model(preferences, sft_model, sft_key)
    inputs = _LazyInputs(lambda: _eval_inputs(config, stages, data, sft_model, preferences, reward_model))

    shared = {kind: stage.record for kind, stage in stages.shared.items()}
    shared_dirs = {kind: stage.path / "run" for kind, stage in stages.shared.items()
                   if (stage.path / "run" / "logs").is_dir()}

    contenders = expand_runs(config)
    records: dict[str, dict[int, dict[str, Any]]] = {c.label: {} for c in contenders}
    run_dirs: dict[str, dict[int, Path]] = {c.label: {} for c in contenders}
    for seed in config.seeds:
        for contender in contenders:
            aligned = None
            if contender.trains:
                aligned = stages.align(contender, seed, data=data, sft_model=sft_model, sft_key=sft_key,
                                       preferences=preferences, reward_model=reward_model)
                run_dirs[contender.label][seed] = aligned.path / "run"
            evaluated = _evaluate(contender, seed, aligned, stages, inputs, [data.key, sft_key, preferences.key],
                                  reward_model, announce)
            records[contender.label][seed] = {**evaluated.record, "training": aligned.record if aligned else None}
    return BenchRun(config, out, shared, records, contenders, list(cache.events), run_dirs, shared_dirs,
                    time.perf_counter() - start, time.process_time() - cpu_start)


def _evaluate(contender: Contender, seed: int, aligned: Stage | None, stages: Stages, inputs: _LazyInputs,
              upstream: list[str], reward_model: Stage, announce: Callable[[str], None]) -> Stage:
    """The cached evaluation of one contender and seed: its policy, or best-of-n from the SFT model."""
    spec = contender.spec
    config = stages.config
    what = {"evaluation": dataclasses.asdict(config.evaluation), "gold": dataclasses.asdict(stages.task.gold_reward()),
            "kind": "policy" if aligned else "best_of_n" if spec.best_of_n else "sft",
            "best_of_n": spec.best_of_n, "reward": spec.reward, "seed": seed}
    upstream = upstream + [reward_model.key] + ([aligned.key] if aligned else [])

    def build(folder: Path) -> dict[str, Any]:
        from zoo.rewards import load_reward_source

        model = load_policy(aligned.path / MODEL)[0] if aligned else None
        shared = inputs.get()
        reward = None
        if spec.best_of_n is not None:
            reward = load_reward_source(stages.reward_source(spec.reward, reward_model)).to(shared.sft_model.device)
        return evaluate_model(model, shared, seed, best_of=spec.best_of_n, best_of_reward=reward)

    return stages.cache.get_or_build("eval", fingerprint("eval", what, upstream), build,
                                     on_build=lambda _: announce(f"evaluating {contender.label} (seed {seed})"))
