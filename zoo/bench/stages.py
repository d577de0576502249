"""The benchmark's stages, each cached by a fingerprint of its inputs (:mod:`zoo.bench.cache`).

    task data → initial model → pretraining → SFT → preference data → proxy reward model
                                                  └──────────→ one alignment run per contender and seed

Every training stage is an ordinary ``zoo train`` run (:func:`zoo.training_guard.train`) of the algorithm
the config names, so a stage's folder holds the usual ``run/model``, ``run/metrics.json`` and
``run/logs/metrics.csv``. Which data file an alignment run gets follows from its algorithm's
``data_shape``; which reward it gets, from ``needs_reward`` and the run's ``reward`` key.
With ``seed_scope: pipeline`` (the default) each seed builds its own pipeline: the initial
weights, pretraining, SFT, the preference data and the reward model are redrawn with the seed,
and every contender of that seed starts from that pipeline's SFT model. With ``seed_scope:
alignment`` the shared stages are built once (seed 0) and the seed varies the alignment runs and
the evaluation samples only. Either way, the contenders of one seed share their pipeline, so
comparisons between them are paired by seed.

One class, :class:`Stages`, with one method per stage in pipeline order; a little over 300 lines.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.bench.cache import Stage, StageCache, fingerprint, read_json, write_jsonl
from zoo.bench.config import BenchConfig, Contender, StageConfig, run_config
from zoo.bench.memory import PeakMemory
from zoo.bench.task import Task, TaskData, check_splits
from zoo.config import RewardConfig
from zoo.errors import ConfigError
from zoo.gguf import file_digest, gguf_file, is_gguf
from zoo.registry import get_registry

#: The file each data shape reads; ``sft`` and ``prompt`` files come from the task data stage.
#: Unpaired algorithms read the pairs as a desirable chosen and an undesirable rejected completion.
DATA_FILES = {"sft": "demonstrations.jsonl", "pairwise": "pairs.jsonl", "ranked": "ranked.jsonl",
              "unpaired": "pairs.jsonl", "prompt": "prompts.jsonl"}
TASK_FILES = ("sft", "prompt")
#: The preference file the proxy reward model learns from, by ``reward_model.preferences``.
REWARD_DATA = {"pairs": "pairwise", "rankings": "ranked"}
SHARED = ("task", "init", "pretrain", "sft", "preferences", "reward_model")
MODEL = "run/model"


def stage_inputs(stage: StageConfig, seed: int = 0) -> dict[str, Any]:
    return {**dataclasses.asdict(stage), "pipeline_seed": seed}


HUMAN_PAIRS = ("human_pairs.jsonl", "human_heldout_pairs.jsonl")


def write_human_pairs(folder: Path, data: TaskData) -> None:
    write_jsonl(folder / HUMAN_PAIRS[0], data.preference_pairs or [])
    write_jsonl(folder / HUMAN_PAIRS[1], data.heldout_pairs or [])


def copy_human_pairs(task_folder: Path, folder: Path) -> dict[str, Any]:
    """The preference stage of a task with human labels: its pairs as they are, and as ranked sets
    (chosen scored 1, rejected 0) for the algorithms that read ranked data."""
    pairs = [json.loads(line) for line in (task_folder / HUMAN_PAIRS[0]).read_text().splitlines() if line]
    heldout = [json.loads(line) for line in (task_folder / HUMAN_PAIRS[1]).read_text().splitlines() if line]
    rows = [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]
    write_jsonl(folder / DATA_FILES["pairwise"], rows)
    write_jsonl(folder / DATA_FILES["ranked"], [{"prompt": r["prompt"], "responses": [r["chosen"], r["rejected"]],
                                                 "scores": [1.0, 0.0]} for r in rows])
    write_jsonl(folder / "heldout_pairs.jsonl", [{"prompt": p["prompt"], "chosen": p["chosen"],
                                                  "rejected": p["rejected"]} for p in heldout])
    return {"pairs": len(rows), "ranked_sets": len(rows), "heldout_pairs": len(heldout), "labels": "human"}


def plugin_module(kind: str, name: str) -> Any:
    """The module of the plugin that registered ``name`` (its source is part of fingerprints)."""
    registry = get_registry()
    entry = registry.entries(kind).get(name)
    return None if entry is None else registry.pm.get_plugin(entry.plugin)


@dataclass
class Pipeline:
    """One realisation of the shared stages: what every contender of a seed starts from."""

    seed: int
    data: Stage
    sft_model: str
    sft_key: str
    preferences: Stage
    reward_model: Stage
    stages: dict[str, Stage] = field(default_factory=dict)


class Stages:
    """Builds (or reuses) every stage of one bench config. ``announce`` is told each stage it builds."""

    def __init__(self, config: BenchConfig, cache: StageCache, announce: Callable[[str], None] | None = None):
        self.config = config
        self.cache = cache
        self.announce = announce or (lambda text: None)
        registry = get_registry()
        task_cls = registry.get("tasks", config.task.name)
        self.task: Task = task_cls(task_cls.parse_args(config.task.args))
        #: The shared stages of the pipeline being built, by kind.
        self.shared: dict[str, Stage] = {}
        self._pipelines: dict[int, Pipeline] = {}

    def pipeline_seed(self, seed: int) -> int:
        """The seed the shared stages of ``seed`` are built with (0 when only alignment is reseeded)."""
        return seed if self.config.seed_scope == "pipeline" else 0

    def pipeline(self, seed: int) -> Pipeline:
        """The shared stages for ``seed``, built or reused (once per pipeline seed)."""
        seed = self.pipeline_seed(seed)
        if seed not in self._pipelines:
            self.shared = {}
            data = self.task_data()
            suffix = f" (pipeline seed {seed})"
            model, upstream = self.initial_model(data, seed, suffix)
            model, upstream = self.pretrain(data, model, upstream, seed, suffix)
            sft = self.sft(data, model, upstream, seed, suffix)
            if sft is not None:
                sft_model, sft_key = str(sft.path / MODEL), sft.key
            else:
                sft_model, sft_key = model, fingerprint("start", {"pipeline_seed": seed}, upstream)
            preferences = self.preferences(data, sft_model, sft_key, seed, suffix)
            reward_model = self.reward_model(preferences, sft_model, sft_key, seed, suffix)
            self._pipelines[seed] = Pipeline(seed, data, sft_model, sft_key, preferences, reward_model,
                                             dict(self.shared))
        return self._pipelines[seed]

    # ----- helpers -----------------------------------------------------------------------------
    def _stage(self, kind: str, inputs: Any, upstream: list[str], build: Callable[[Path], dict[str, Any]],
               title: str, sources: tuple[Any, ...] = ()) -> Stage:
        key = fingerprint(kind, inputs, upstream, (type(self.task), *sources))
        stage = self.cache.get_or_build(kind, key, build, on_build=lambda _: self.announce(title))
        if kind in SHARED:
            self.shared[kind] = stage
        return stage

    def algorithm_sources(self, algorithm: str) -> tuple[Any, ...]:
        return (plugin_module("algorithms", algorithm),)

    def _train(self, folder: Path, where: str, algorithm: str, algorithm_args: dict[str, Any], train: dict[str, Any],
               data: dict[str, Any], model: str, data_file: Path, *, reward: RewardConfig | None = None,
               seed: int = 0) -> dict[str, Any]:
        """One ``zoo train`` run into ``folder/run``; its cost, for the report."""
        from zoo.rollout.sampler import count_generation
        from zoo.training_guard import train as run_training

        config = run_config(self.config, algorithm, algorithm_args, train, data, where=where, model=model,
                            data_file=str(data_file), output_dir=str(folder / "run"),
                            reward=None if reward is None else dataclasses.asdict(reward), seed=seed)
        with PeakMemory() as peak, count_generation() as generated:
            result = run_training(config)
        summary = read_json(folder / "run" / "metrics.json")
        tokens = result.tokens_seen
        parameters = sum(p.numel() for p in result.module.policy.parameters())  # with any LoRA adapter
        return {"model": MODEL, "steps": summary.get("steps"), "train_seconds": result.train_seconds,
                "parameters": parameters,
                "tokens": tokens, "tokens_per_second": tokens / result.train_seconds if result.train_seconds else None,
                "peak_memory_mib": peak.mib, "memory_kind": peak.kind,
                "samples_generated": generated["sequences"], "tokens_generated": generated["tokens"]}

    # ----- the shared starting point -------------------------------------------------------------
    def task_data(self) -> Stage:
        task = self.task
        inputs = {"task": task.name, "version": task.version, "args": task.args_dict()}

        def build(folder: Path) -> dict[str, Any]:
            data: TaskData = task.build()
            if data.pretraining is not None:
                write_jsonl(folder / "pretraining.jsonl", data.pretraining)
            write_jsonl(folder / DATA_FILES["sft"], data.demonstrations)
            check_splits(task.name, data)
            write_jsonl(folder / DATA_FILES["prompt"], [{"prompt": p} for p in data.train_prompts])
            (folder / "validation_prompts.json").write_text(json.dumps(data.validation_prompts))
            (folder / "test_prompts.json").write_text(json.dumps(data.test_prompts))
            (folder / "probes.json").write_text(json.dumps({"items": data.probes, "fewshot": data.probe_fewshot,
                                                            "heldout": data.heldout_probes}))
            if data.preference_pairs is not None:
                write_human_pairs(folder, data)
            tokenizer = task.tokenizer()
            if tokenizer is not None:
                tokenizer.save_pretrained(folder / "tokenizer")
            return {"has_pretraining": data.pretraining is not None, "has_tokenizer": tokenizer is not None,
                    "max_new_tokens": data.max_new_tokens, "demonstrations": len(data.demonstrations),
                    "train_prompts": len(data.train_prompts), "validation_prompts": len(data.validation_prompts),
                    "test_prompts": len(data.test_prompts),
                    "probes": len(data.probes), "heldout_probes": len(data.heldout_probes),
                    "human_pairs": None if data.preference_pairs is None else len(data.preference_pairs)}

        return self._stage("task", inputs, [], build, f"generating the {task.name!r} task data")

    def initial_model(self, data: Stage, seed: int = 0, suffix: str = "") -> tuple[str, list[str]]:
        """The model pretraining (or SFT) starts from, and the fingerprints it depends on."""
        model = self.config.model
        if model.name != "tiny":
            if data.record["has_tokenizer"]:
                raise ConfigError(f"model.name = {model.name!r}: task {self.task.name!r} brings its own tokenizer and "
                                  f"trains from scratch; use model.name: tiny (sized by model.tiny)")
            identity = {"name": model.name, "revision": model.revision}
            if is_gguf(model.name):  # a file's name says little: its content does
                identity["gguf_sha256"] = file_digest(gguf_file(model.name))
            return model.name, [fingerprint("model", identity)]
        inputs = {"tiny": dataclasses.asdict(model.tiny), "dtype": model.dtype, "pipeline_seed": seed}

        def build(folder: Path) -> dict[str, Any]:
            from transformers import AutoTokenizer

            from zoo.tiny import tiny_model, tiny_tokenizer

            tokenizer = (AutoTokenizer.from_pretrained(data.path / "tokenizer") if data.record["has_tokenizer"]
                         else tiny_tokenizer())
            t = model.tiny
            network = tiny_model(tokenizer, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                                 num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                                 num_key_value_heads=t.num_key_value_heads,
                                 max_position_embeddings=t.max_position_embeddings, seed=t.seed + seed)
            network.save_pretrained(folder / MODEL)
            tokenizer.save_pretrained(folder / MODEL)
            return {"model": MODEL, "parameters": sum(p.numel() for p in network.parameters())}

        stage = self._stage("init", inputs, [data.key], build, "initialising the model" + suffix)
        return str(stage.path / MODEL), [stage.key]

    def pretrain(self, data: Stage, model: str, upstream: list[str], seed: int = 0, suffix: str = ""
                 ) -> tuple[str, list[str]]:
        stage_config = self.config.pretrain
        if not stage_config.enabled:
            return model, upstream
        if not data.record["has_pretraining"]:
            raise ConfigError(f"pretrain.enabled is true but task {self.task.name!r} has no pretraining corpus; "
                              f"set pretrain.enabled: false")

        def build(folder: Path) -> dict[str, Any]:
            return self._train(folder, "pretrain", stage_config.algorithm, stage_config.algorithm_args,
                               stage_config.train, stage_config.data, model, data.path / "pretraining.jsonl", seed=seed)

        stage = self._stage("pretrain", stage_inputs(stage_config, seed), upstream + [data.key], build,
                            "pretraining" + suffix, self.algorithm_sources(stage_config.algorithm))
        return str(stage.path / MODEL), [stage.key]

    def sft(self, data: Stage, model: str, upstream: list[str], seed: int = 0, suffix: str = "") -> Stage | None:
        stage_config = self.config.sft
        if not stage_config.enabled:
            return None

        def build(folder: Path) -> dict[str, Any]:
            return self._train(folder, "sft", stage_config.algorithm, stage_config.algorithm_args, stage_config.train,
                               stage_config.data, model, data.path / DATA_FILES["sft"], seed=seed)

        return self._stage("sft", stage_inputs(stage_config, seed), upstream + [data.key], build,
                           "supervised fine-tuning" + suffix, self.algorithm_sources(stage_config.algorithm))

    def preferences(self, data: Stage, sft_model: str, sft_key: str, seed: int = 0, suffix: str = "") -> Stage:
        from zoo.bench.preferences import build_preferences

        if data.record.get("human_pairs") is not None:
            return self._stage("preferences", {"human_pairs": data.record["human_pairs"]}, [data.key],
                               lambda folder: copy_human_pairs(data.path, folder),
                               "taking the task's human-labelled preference pairs" + suffix)
        p = dataclasses.replace(self.config.preferences, seed=self.config.preferences.seed + seed)
        inputs = {"preferences": dataclasses.asdict(p), "gold": dataclasses.asdict(self.task.gold_reward()),
                  "max_new_tokens": self.max_new_tokens(data)}

        def build(folder: Path) -> dict[str, Any]:
            return build_preferences(folder, sft_model, data, self.task.gold_reward(), p,
                                     max_new_tokens=self.max_new_tokens(data))

        return self._stage("preferences", inputs, [data.key, sft_key], build,
                           "sampling the SFT model and labelling preferences with the gold reward" + suffix)

    def reward_model(self, preferences: Stage, sft_model: str, sft_key: str, seed: int = 0, suffix: str = ""
                     ) -> Stage:
        from zoo.bench.evaluate import reward_model_accuracy

        stage_config = self.config.reward_model

        def build(folder: Path) -> dict[str, Any]:
            record = self._train(folder, "reward_model", stage_config.algorithm, stage_config.algorithm_args,
                                 stage_config.train, stage_config.data, sft_model,
                                 preferences.path / DATA_FILES[REWARD_DATA[stage_config.preferences]], seed=seed)
            record["heldout_accuracy"] = reward_model_accuracy(folder / MODEL, preferences.path / "heldout_pairs.jsonl")
            return record

        return self._stage("reward_model", stage_inputs(stage_config, seed), [preferences.key, sft_key], build,
                           "training the proxy reward model" + suffix, self.algorithm_sources(stage_config.algorithm))

    def max_new_tokens(self, data: Stage) -> int:
        return self.config.evaluation.max_new_tokens or int(data.record["max_new_tokens"])

    # ----- alignment runs ---------------------------------------------------------------------
    def reward_source(self, choice: str | None, reward_model: Stage) -> RewardConfig:
        """The reward a contender optimises: the proxy reward model (default) or the task's gold reward
        (the proxy too, for a task without one: :meth:`Task.gold_reward`)."""
        if choice == "gold" and self.task.gold_reward() is not None:
            return self.task.gold_reward()
        return RewardConfig(model=str(reward_model.path / MODEL))

    def judge_identity(self) -> dict[str, Any]:
        """What identifies the gold reward in fingerprints (the reward model itself is upstream)."""
        gold = self.task.gold_reward()
        return {"judge": "reward_model"} if gold is None else dataclasses.asdict(gold)

    def align(self, contender: Contender, seed: int, pipeline: Pipeline, max_steps: int | None = None,
              kind: str = "align") -> Stage:
        """One alignment run (``max_steps``: the budget's fitted steps; ``kind="calibrate"``: the short
        run that measures a contender's cost per step, :mod:`zoo.bench.budget`)."""
        spec = contender.spec
        data, sft_model, sft_key = pipeline.data, pipeline.sft_model, pipeline.sft_key
        preferences, reward_model = pipeline.preferences, pipeline.reward_model
        algorithm = get_registry().algorithm(spec.algorithm)
        shape = algorithm.data_shape
        folder_of_data = data if shape in TASK_FILES else preferences
        upstream = [sft_key, folder_of_data.key]
        reward = None
        if algorithm.needs_reward:
            reward = self.reward_source(spec.reward, reward_model)
            upstream.append(reward_model.key if spec.reward != "gold" or self.task.gold_reward() is None
                            else fingerprint("gold", dataclasses.asdict(reward)))
        alignment = self.config.alignment
        train = {**alignment.train, **spec.train}
        if max_steps is not None:
            train["max_steps"] = max_steps
        if kind == "calibrate":  # a cost per step needs no warm-up longer than the few steps measured
            train["warmup_steps"] = min(int(train.get("warmup_steps", 0)), max_steps or 0)
        inputs = {"algorithm": spec.algorithm, "algorithm_args": spec.algorithm_args, "train": train,
                  "data": alignment.data, "reward": spec.reward if algorithm.needs_reward else None, "seed": seed}

        def build(folder: Path) -> dict[str, Any]:
            return self._train(folder, f"runs[{contender.label!r}]", spec.algorithm, spec.algorithm_args, train,
                               alignment.data, sft_model, folder_of_data.path / DATA_FILES[shape], reward=reward,
                               seed=seed)

        title = (f"training {contender.label} (seed {seed})" if kind == "align"
                 else f"calibrating the cost per step of {contender.label} (seed {seed})")
        return self._stage(kind, inputs, upstream, build, title, self.algorithm_sources(spec.algorithm))
