"""Built-in tiny data sets for CPU demos and tests, generated deterministically on the fly.

Short product reviews: a prompt names a subject; good responses praise it with words from
``POSITIVE``, bad ones use ``NEGATIVE``. The preference is learnable from the words alone, so a
tiny model shows measurable progress in seconds, and held-out rows (a different seed) use
unseen combinations of the same words.

* ``tiny_sft``: ``prompt`` + ``completion`` (a positive review).
* ``tiny_prefs``: ``prompt`` + ``chosen`` (positive) + ``rejected`` (negative).
* ``tiny_ranked``: ``prompt`` + 4 ``responses`` + ``scores`` (the number of positive words).
* ``tiny_prompts``: ``prompt`` only, for online algorithms.
"""
from __future__ import annotations

import random

from zoo import BuiltinDataset, hookimpl

SUBJECTS = ["the soup", "this phone", "the hotel", "my new shoes", "the film", "that book", "the train",
            "our garden", "the concert", "this laptop", "the coffee", "the museum", "the bike", "the game"]
POSITIVE = ["great", "lovely", "superb", "excellent", "wonderful", "bright", "pleasant", "fine", "good", "nice"]
NEGATIVE = ["awful", "dull", "broken", "terrible", "poor", "bland", "noisy", "ugly", "bad", "sad"]


def _review(rng: random.Random, subject: str, n_positive: int, n_words: int = 2) -> str:
    words = rng.sample(POSITIVE, n_positive) + rng.sample(NEGATIVE, n_words - n_positive)
    rng.shuffle(words)
    return f" It was {' and '.join(words)}."


def _prompt(subject: str) -> str:
    return f"Review {subject}:"


def sft_rows(size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        subject = rng.choice(SUBJECTS)
        rows.append({"prompt": _prompt(subject), "completion": _review(rng, subject, 2)})
    return rows


def preference_rows(size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        subject = rng.choice(SUBJECTS)
        rows.append({"prompt": _prompt(subject), "chosen": _review(rng, subject, 2),
                     "rejected": _review(rng, subject, 0)})
    return rows


def ranked_rows(size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        subject = rng.choice(SUBJECTS)
        counts = [2, 1, 1, 0]
        rng.shuffle(counts)
        rows.append({"prompt": _prompt(subject), "responses": [_review(rng, subject, c) for c in counts],
                     "scores": [float(c) for c in counts]})
    return rows


def prompt_rows(size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"prompt": _prompt(rng.choice(SUBJECTS))} for _ in range(size)]


@hookimpl
def zoo_register_datasets(register):
    register(BuiltinDataset("tiny_sft", "sft", sft_rows, "tiny reviews: prompt + positive completion"))
    register(BuiltinDataset("tiny_prefs", "pairwise", preference_rows, "tiny reviews: positive chosen, negative rejected"))
    register(BuiltinDataset("tiny_ranked", "ranked", ranked_rows, "tiny reviews: 4 responses scored by positive words"))
    register(BuiltinDataset("tiny_prompts", "prompt", prompt_rows, "tiny review prompts for online algorithms"))
