"""Preference data from SFT samples labelled by the gold reward (the stand-in for human raters).

For every training prompt the SFT model is sampled ``samples_per_prompt`` times. Empty and
duplicate responses are dropped. The rest are ranked by one Plackett–Luce draw on the gold
reward (:func:`plackett_luce_order`) and written as

* a ranked set (``prompt``, ``responses``, ``scores``: k − 1 for the top response down to 0),
  what RRHF and SLiC-HF's sample-rank variant train on;
* a preference pair (``prompt``, ``chosen``, ``rejected``): the first two samples drawn, ordered
  as the same ranking orders them, so the pair's label is the Bradley–Terry draw
  P(a ≻ b) = σ((r_a − r_b)/T). DPO, IPO and the proxy reward model train on these.

Held-out pairs come from the test prompts, labelled without noise (the higher gold reward
wins; ties are dropped): preference accuracy is measured against the gold preference itself.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import torch

from zoo.bench.cache import write_jsonl
from zoo.bench.config import PreferenceConfig
from zoo.config import RewardConfig


def sample_responses(model_dir: str | Path, prompts: list[str], *, n: int, temperature: float, max_new_tokens: int,
                     seed: int, batch_size: int = 64) -> list[list[str]]:
    """``n`` sampled responses per prompt from the model saved in ``model_dir``."""
    from zoo.bench.evaluate import load_policy
    from zoo.rollout.sampler import Sampler, sample_texts

    model, tokenizer = load_policy(model_dir)
    chunks = sample_texts(Sampler(model, tokenizer), prompts, n=n, batch_size=batch_size, seed=seed,
                          temperature=temperature, max_new_tokens=max_new_tokens)
    return [group for _, groups in chunks for group in groups]


def distinct_responses(samples: list[str]) -> list[str]:
    """Non-empty responses in sampling order, without repeats."""
    return list(dict.fromkeys(s for s in samples if s.strip()))


def plackett_luce_order(rewards: list[float], temperature: float, rng: random.Random) -> list[int]:
    """Indices of ``rewards`` from best to worst in one Plackett–Luce draw.

    Sorting by ``r/T + Gumbel`` noise draws a ranking with probability ∏ softmax(r/T) over the
    remaining items, whose marginal on any two items is Bradley–Terry: P(a ≻ b) = σ((r_a − r_b)/T).
    ``temperature`` 0 ranks by reward, ties broken at random.
    """
    keys = []
    for reward in rewards:
        noise = -math.log(-math.log(max(rng.random(), 1e-300)))
        keys.append((reward / temperature + noise) if temperature > 0 else (reward, rng.random()))
    return sorted(range(len(rewards)), key=lambda i: keys[i], reverse=True)


def label(prompt: str, samples: list[str], gold: Any, temperature: float, rng: random.Random
          ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[float]]:
    """The ranked row and the pair row for one prompt (None when fewer than 2 distinct samples)."""
    responses = distinct_responses(samples)
    if len(responses) < 2:
        return None, None, []
    rewards = gold.score([prompt] * len(responses), responses).tolist()
    order = plackett_luce_order(rewards, temperature, rng)
    position = {index: rank for rank, index in enumerate(order)}
    k = len(responses)
    ranked = {"prompt": prompt, "responses": [responses[i] for i in order],
              "scores": [float(k - 1 - rank) for rank in range(k)]}
    first, second = (0, 1) if position[0] < position[1] else (1, 0)
    pair = {"prompt": prompt, "chosen": responses[first], "rejected": responses[second],
            "gold_chosen": rewards[first], "gold_rejected": rewards[second]}
    return ranked, pair, rewards


def heldout_pairs(prompts: list[str], samples: list[list[str]], gold: Any, limit: int) -> list[dict[str, Any]]:
    """Noise-free pairs: consecutive distinct samples with different gold rewards, the higher one chosen."""
    pairs: list[dict[str, Any]] = []
    for prompt, drawn in zip(prompts, samples):
        responses = distinct_responses(drawn)
        if len(responses) < 2:
            continue
        rewards = gold.score([prompt] * len(responses), responses).tolist()
        for i in range(0, len(responses) - 1, 2):
            a, b = (i, i + 1) if rewards[i] > rewards[i + 1] else (i + 1, i)
            if rewards[a] != rewards[b]:
                pairs.append({"prompt": prompt, "chosen": responses[a], "rejected": responses[b]})
    return pairs[:limit]


def build_preferences(folder: Path, sft_model: str, data: Any, gold_config: RewardConfig, p: PreferenceConfig, *,
                      max_new_tokens: int) -> dict[str, Any]:
    """Write ``pairs.jsonl``, ``ranked.jsonl`` and ``heldout_pairs.jsonl`` into ``folder``; return statistics."""
    from zoo.rewards.loading import load_reward_source

    gold = load_reward_source(gold_config).to("cuda" if torch.cuda.is_available() else "cpu")
    train_prompts = [json.loads(line)["prompt"] for line in open(data.path / "prompts.jsonl", encoding="utf-8")]
    eval_prompts = json.loads((data.path / "test_prompts.json").read_text())
    rng = random.Random(p.seed)
    samples = sample_responses(sft_model, train_prompts, n=p.samples_per_prompt, temperature=p.temperature,
                               max_new_tokens=max_new_tokens, seed=p.seed)
    ranked_rows, pair_rows, all_rewards = [], [], []
    for prompt, drawn in zip(train_prompts, samples):
        ranked, pair, rewards = label(prompt, drawn, gold, p.label_temperature, rng)
        all_rewards += rewards
        if ranked is not None:
            ranked_rows.append(ranked)
            pair_rows.append(pair)
    per_prompt = max(2, 2 * -(-p.heldout_pairs // max(1, len(eval_prompts))))
    heldout_samples = sample_responses(sft_model, eval_prompts, n=per_prompt, temperature=p.temperature,
                                       max_new_tokens=max_new_tokens, seed=p.seed + 10_000_019)
    heldout = heldout_pairs(eval_prompts, heldout_samples, gold, p.heldout_pairs)
    write_jsonl(folder / "ranked.jsonl", ranked_rows)
    write_jsonl(folder / "pairs.jsonl", pair_rows)
    write_jsonl(folder / "heldout_pairs.jsonl", heldout)
    agree = [row["gold_chosen"] > row["gold_rejected"] for row in pair_rows if row["gold_chosen"] != row["gold_rejected"]]
    return {
        "pairs": len(pair_rows), "ranked_sets": len(ranked_rows), "heldout_pairs": len(heldout),
        "sft_sample_gold_mean": sum(all_rewards) / max(1, len(all_rewards)),
        "tied_pairs": sum(row["gold_chosen"] == row["gold_rejected"] for row in pair_rows) / max(1, len(pair_rows)),
        "label_agreement_with_gold": sum(agree) / max(1, len(agree)),
    }
