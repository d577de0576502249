"""``zoo pairs``: sample responses, score them with a reward source, write preference data.

The written JSON Lines file uses the TRL columns the offline algorithms read, so a run points
``data.train`` at it:

* ``mode: best_vs_random`` (Zephyr's dDPO recipe, Tunstall et al. 2023, arXiv:2310.16944):
  ``prompt``, ``chosen`` (the highest-scored sample), ``rejected`` (a random sample with a lower
  score), plus ``score_chosen`` / ``score_rejected``. For DPO, IPO, SLiC-HF.
* ``mode: ranked``: ``prompt``, ``responses`` (every distinct sample), ``scores``. For RRHF,
  SLiC-HF sample-rank and reward models.
* ``mode: strong_vs_weak`` (Orca-style pairs, Mukherjee et al. 2023): two models; sample ``j``
  of the first (strong) model is chosen over sample ``j`` of the second (weak). The reward
  source is optional here; with one, the scores are written alongside.

Prompts whose samples carry no preference (all scores tied, fewer than two distinct non-empty
responses, identical chosen and rejected) are skipped and counted. Models are loaded one at a
time, so the peak memory is one model plus the reward source.

Config (YAML, validated like run configs; see ``configs/tiny/pairs.yaml``)::

    prompts: builtin:tiny_prompts      # any data with a prompt column (builtin:, file, hub name)
    models: [{name: runs/tiny-sft/model}]
    sampling: {samples_per_prompt: 4, max_new_tokens: 48}   # zoo.rollout.Sampling; a model may set its own count
    reward: {function: tiny_sentiment}
    mode: ranked
    output: runs/tiny-pairs/ranked.jsonl

An application on the training core, and its own front module: the ``pairs`` command imports
what ``__all__`` lists.
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from zoo.config import DataConfig, ModelConfig, RewardConfig, apply_overrides, build_dataclass, read_yaml
from zoo.errors import ConfigError
from zoo.rollout.settings import Sampling

if TYPE_CHECKING:
    from zoo.data.truncation import PromptPolicy

__all__ = ["PairsConfig", "PairsModel", "PairsResult", "Sample", "load_pairs_config", "make_pairs",
           "samples_per_prompt"]


@dataclasses.dataclass
class PairsModel:
    """A model to sample from: ``tiny``, a hub id or a local directory."""

    renamed_keys: ClassVar[dict[str, str]] = {"samples": "samples_per_prompt"}
    name: str
    #: Responses sampled per prompt from this model (None: ``sampling.samples_per_prompt``).
    samples_per_prompt: int | None = None
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    trust_remote_code: bool = False

    def model_config(self) -> ModelConfig:
        return ModelConfig(name=self.name, revision=self.revision, dtype=self.dtype,
                           trust_remote_code=self.trust_remote_code)


@dataclasses.dataclass
class PairsConfig:
    #: Prompt data: ``builtin:NAME``, a local file or directory, or a hub data set name.
    prompts: str
    #: Where the JSON Lines file is written.
    output: str
    models: list[PairsModel] = dataclasses.field(default_factory=list)
    mode: Literal["best_vs_random", "ranked", "strong_vs_weak"] = "best_vs_random"
    reward: RewardConfig | None = None
    split: str = "train"
    #: Use the first N usable prompts and stop reading there (None: all).
    max_prompts: int | None = None
    #: ``error``: a malformed prompt row stops the command naming file, row and field. ``skip``:
    #: it is dropped and counted.
    on_bad_rows: Literal["error", "skip"] = "error"
    builtin_size: int = 512
    max_prompt_length: int = 128
    #: How message-list prompts are rendered for sampling (as ``data.chat_template``). Such prompts are
    #: written back as their messages, so that training applies the template once.
    chat_template: Literal["auto", "on", "off"] = "auto"
    #: ``keep``: a response cut at ``sampling.max_new_tokens`` (no EOS) is compared as if it had
    #: ended there (the count is reported); ``drop``: it takes no part in a pair.
    unfinished: Literal["keep", "drop"] = "keep"
    sampling: Sampling = dataclasses.field(default_factory=lambda: Sampling(samples_per_prompt=4, max_new_tokens=64))
    batch_size: int = 16
    seed: int = 0


def validate_pairs_config(config: PairsConfig) -> None:
    if not config.models:
        raise ConfigError("models: list at least one model to sample from, e.g. [{name: runs/tiny-sft/model}]")
    for i, model in enumerate(config.models):
        if model.samples_per_prompt is not None and model.samples_per_prompt < 1:
            raise ConfigError(f"models[{i}].samples_per_prompt = {model.samples_per_prompt!r}: must be >= 1 "
                              f"(or null: sampling.samples_per_prompt)")
    greedy_repeats = [i for i in range(len(config.models)) if samples_per_prompt(config, i) > 1]
    if config.sampling.temperature == 0 and greedy_repeats:
        first = greedy_repeats[0]
        raise ConfigError(f"sampling.temperature = 0 is greedy decoding: the {samples_per_prompt(config, first)} "
                          f"samples per prompt of models[{first}] would all be the same response, so no "
                          f"pair could state a preference. Use a temperature above 0 (e.g. 0.7), or one sample per "
                          f"model (samples_per_prompt: 1) with mode: strong_vs_weak.")
    has_reward = config.reward is not None and bool(config.reward.function or config.reward.model)
    if config.mode == "strong_vs_weak":
        if len(config.models) != 2:
            raise ConfigError(f"mode: strong_vs_weak needs exactly two models (strong first, weak second); "
                              f"models lists {len(config.models)}")
    else:
        if not has_reward:
            raise ConfigError(f"mode: {config.mode} ranks samples by a reward: set reward.function or reward.model")
        if sum(samples_per_prompt(config, i) for i in range(len(config.models))) < 2:
            raise ConfigError(f"mode: {config.mode} needs at least two samples per prompt in all; "
                              f"raise sampling.samples_per_prompt")
    if config.batch_size < 1 or config.max_prompt_length < 1:
        raise ConfigError("batch_size and max_prompt_length must be >= 1")
    if config.max_prompts is not None and config.max_prompts < 1:
        raise ConfigError(f"max_prompts = {config.max_prompts!r}: must be >= 1 (or null: all)")
    if not config.output.endswith(".jsonl"):
        raise ConfigError(f"output = {config.output!r}: must be a .jsonl file")


def prompt_policy(config: PairsConfig) -> PromptPolicy:
    """How the prompts are fitted to ``max_prompt_length`` for sampling, and for a reward model scoring them."""
    from zoo.data.truncation import PromptPolicy

    return PromptPolicy(config.max_prompt_length, "keep_end", "max_prompt_length")


def samples_per_prompt(config: PairsConfig, model_index: int) -> int:
    """Responses sampled per prompt from ``models[model_index]``."""
    own = config.models[model_index].samples_per_prompt
    return config.sampling.samples_per_prompt if own is None else own


def load_pairs_config(path: str | Path | None = None, overrides: list[str] | None = None,
                      raw: dict[str, Any] | None = None) -> PairsConfig:
    data = dict(raw or {}) if path is None else read_yaml(path)
    data = apply_overrides(data, list(overrides or []))
    config = build_dataclass(PairsConfig, data)
    validate_pairs_config(config)
    return config


@dataclasses.dataclass
class Sample:
    text: str
    model: int
    score: float | None = None
    #: Whether the response ended with EOS (False: cut at max_new_tokens).
    finished: bool = True


@dataclasses.dataclass
class PairsResult:
    output: Path
    rows: int
    prompts: int
    skipped: int
    mean_scores: dict[str, float]
    #: Malformed prompt rows dropped by ``on_bad_rows: skip``.
    bad_rows: int = 0
    #: Prompts longer than ``max_prompt_length``: their samples answer a shortened prompt, so no row is written.
    truncated_prompts: int = 0
    #: Samples cut at ``sampling.max_new_tokens`` left out (``unfinished: drop``) or kept (``keep``).
    unfinished: int = 0


def _sample_model(config: PairsConfig, model_index: int, prompts: list[str] | None
                  ) -> tuple[list[str], list[list[Sample]], int, list[Any]]:
    """Prompts (the data set's, or the given ones), ``samples`` responses per prompt, bad rows skipped,
    and what each prompt is written as: its messages, its text, or None when it was truncated."""
    from zoo.data.collate import Collator
    from zoo.data.dataset import load_examples
    from zoo.rollout.sampler import Sampler
    from zoo.models import load_causal_lm, load_tokenizer
    from zoo.progress import track

    spec = config.models[model_index]
    model_config = spec.model_config()
    tokenizer = load_tokenizer(model_config)
    policy = prompt_policy(config)
    data = DataConfig(train=config.prompts, builtin_size=config.builtin_size, seed=config.seed,
                      max_prompt_length=policy.max_prompt_length, prompt_truncation=policy.truncation,
                      max_length=config.max_prompt_length + config.sampling.max_new_tokens,
                      on_bad_rows=config.on_bad_rows, chat_template=config.chat_template)
    examples, report = load_examples(config.prompts, config.split, "prompt", data, tokenizer,
                                     limit=config.max_prompts, bad_rows_key="on_bad_rows")
    texts = [e.prompt for e in examples]
    if prompts is not None and texts != prompts:
        raise ConfigError(f"models[{model_index}] ({spec.name}) reads the prompts differently from models[0]")
    model = load_causal_lm(model_config, tokenizer)
    if torch.cuda.is_available():
        model.to("cuda")
    sampler = Sampler(model, tokenizer)
    collate = Collator(sampler.pad_id)
    n = samples_per_prompt(config, model_index)
    sampling = dataclasses.replace(config.sampling, samples_per_prompt=n)
    responses: list[list[Sample]] = []
    batches = range(0, len(examples), config.batch_size)
    for start in track(batches, f"sampling {spec.name} ({n} per prompt)", unit="batches"):
        batch = collate(examples[start: start + config.batch_size])
        generation = sampler(batch.prompt_ids, batch.prompt_attention_mask, sampling,
                             seed=config.seed * 1_000_003 + 7919 * model_index + start)
        finished = _ended_with_eos(generation, sampler.eos_ids)
        for b in range(batch.num_examples):
            responses.append([Sample(text, model_index, finished=done) for text, done in
                              zip(generation.texts[b * n:(b + 1) * n], finished[b * n:(b + 1) * n])])
    written = [None if e.prompt_cut is not None else e.prompt_messages if e.prompt_messages is not None
               else e.prompt for e in examples]
    return texts, responses, len(report.skipped), written


def _ended_with_eos(generation: Any, eos_ids: list[int]) -> list[bool]:
    """Per sampled row: whether its last kept token is an EOS (False: it was cut at max_new_tokens)."""
    response = generation.sequences[:, generation.prompt_length:]
    mask = generation.response_mask[:, generation.prompt_length:]
    lengths = mask.sum(-1)
    out = []
    for row, length in zip(response.tolist(), lengths.tolist()):
        out.append(length > 0 and row[length - 1] in eos_ids)
    return out


def _distinct(samples: list[Sample]) -> list[Sample]:
    seen, out = set(), []
    for sample in samples:
        if sample.text.strip() and sample.text not in seen:
            seen.add(sample.text)
            out.append(sample)
    return out


def best_vs_random_row(prompt: str, samples: list[Sample], rng: random.Random) -> dict[str, Any] | None:
    """Chosen = the best-scored sample, rejected = a random sample scored strictly lower."""
    samples = _distinct(samples)
    if len(samples) < 2:
        return None
    best = max(samples, key=lambda s: s.score)
    worse = [s for s in samples if s.score < best.score]
    if not worse:
        return None
    rejected = rng.choice(worse)
    return {"prompt": prompt, "chosen": best.text, "rejected": rejected.text,
            "score_chosen": best.score, "score_rejected": rejected.score}


def ranked_row(prompt: str, samples: list[Sample]) -> dict[str, Any] | None:
    """Every distinct sample with its score; None when all scores tie."""
    samples = _distinct(samples)
    if len(samples) < 2 or len({s.score for s in samples}) < 2:
        return None
    return {"prompt": prompt, "responses": [s.text for s in samples], "scores": [s.score for s in samples]}


def strong_vs_weak_rows(prompt: Any, samples: list[Sample], names: list[str], *,
                        drop_unfinished: bool = False) -> list[dict[str, Any]]:
    """Sample ``j`` of model 0 (chosen) against sample ``j`` of model 1 (rejected); with ``drop_unfinished``,
    a pair where either was cut at max_new_tokens is left out."""
    strong = [s for s in samples if s.model == 0]
    weak = [s for s in samples if s.model == 1]
    rows = []
    for chosen, rejected in zip(strong, weak):
        if not chosen.text.strip() or not rejected.text.strip() or chosen.text == rejected.text:
            continue
        if drop_unfinished and not (chosen.finished and rejected.finished):
            continue
        row = {"prompt": prompt, "chosen": chosen.text, "rejected": rejected.text,
               "chosen_model": names[0], "rejected_model": names[1]}
        if chosen.score is not None:
            row.update(score_chosen=chosen.score, score_rejected=rejected.score)
        rows.append(row)
    return rows


def score_with_progress(reward: Any, prompts: list[str], responses: list[str]) -> list[float]:
    """``reward.score`` of every (prompt, response), in the source's batches, with progress."""
    from zoo.progress import track

    size = max(1, int(getattr(reward, "batch_size", 0) or 256))
    scores: list[float] = []
    for start in track(range(0, len(responses), size), f"scoring with {reward.name}", unit="batches"):
        scores.extend(reward.score(prompts[start: start + size], responses[start: start + size]).tolist())
    return scores


def make_pairs(config: PairsConfig) -> PairsResult:
    """Sample, score and write the pairs file as configured."""
    from zoo.rewards.loading import load_reward_source
    from zoo.writable import check_writable_file

    check_writable_file(config.output, "output")  # before any sampling, not after

    prompts: list[str] | None = None
    per_prompt: list[list[Sample]] = []
    for m in range(len(config.models)):
        prompts, responses, bad_rows, written = _sample_model(config, m, prompts)
        if not per_prompt:
            per_prompt = [[] for _ in prompts]
        for samples, drawn in zip(per_prompt, responses):
            samples.extend(drawn)
    assert prompts is not None
    unfinished = sum(not s.finished for samples in per_prompt for s in samples)
    if config.unfinished == "drop" and config.mode != "strong_vs_weak":  # a cut response is neither scored nor paired
        per_prompt = [[s for s in samples if s.finished] for samples in per_prompt]

    mean_scores: dict[str, list[float]] = {model.name: [] for model in config.models}
    if config.reward is not None and (config.reward.function or config.reward.model):
        # A reward model cuts prompts as the sampling did (max_prompt_length, keep_end, chat prompts in turns).
        reward = load_reward_source(config.reward, prompts=prompt_policy(config))
        if torch.cuda.is_available():
            reward.to("cuda")
        flat = [(prompt, sample) for prompt, samples in zip(prompts, per_prompt) for sample in samples]
        scores = score_with_progress(reward, [p for p, _ in flat], [s.text for _, s in flat])
        for (_, sample), score in zip(flat, scores):
            sample.score = float(score)
            mean_scores[config.models[sample.model].name].append(sample.score)

    rng = random.Random(config.seed)
    names = [model.name for model in config.models]
    rows: list[dict[str, Any]] = []
    skipped = 0
    truncated = 0
    for prompt, samples in zip(written, per_prompt):
        if prompt is None:  # the samples answer a shortened prompt: writing the whole one would misattribute them
            truncated += 1
            continue
        if config.mode == "strong_vs_weak":
            made = strong_vs_weak_rows(prompt, samples, names, drop_unfinished=config.unfinished == "drop")
        elif config.mode == "best_vs_random":
            made = [row] if (row := best_vs_random_row(prompt, samples, rng)) is not None else []
        else:
            made = [row] if (row := ranked_row(prompt, samples)) is not None else []
        skipped += not made
        rows.extend(made)

    output = Path(config.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        partial.replace(output)  # readers never see a half-written file
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return PairsResult(output, len(rows), len(prompts), skipped,
                       {name: sum(v) / len(v) for name, v in mean_scores.items() if v}, bad_rows,
                       truncated_prompts=truncated, unfinished=unfinished)
