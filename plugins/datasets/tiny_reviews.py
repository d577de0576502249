"""The built-in tiny review world: five data sets generated deterministically on the fly, and
``tiny_sentiment``, the programmatic reward that scores them (CPU demos and tests).

Short product reviews: a prompt names a subject; good responses praise it with words from
``POSITIVE``, bad ones use ``NEGATIVE``. The preference is learnable from the words alone, so a
tiny model shows measurable progress in seconds, and held-out rows (a different seed) use
unseen combinations of the same words.

* ``tiny_sft``: ``prompt`` + ``completion`` (a positive review).
* ``tiny_prefs``: ``prompt`` + ``chosen`` (positive) + ``rejected`` (negative).
* ``tiny_ranked``: ``prompt`` + 4 ``responses`` + ``scores`` (the number of positive words).
* ``tiny_unpaired``: ``prompt`` + ``completion`` + ``label`` (TRL's unpaired format): rows alternate
  a positive review labelled true (desirable) and a negative one labelled false.
* ``tiny_prompts``: ``prompt`` only, for online algorithms.

``tiny_sentiment``, the reward of these reviews: for a response with words w_1..w_n (lower-cased runs of letters):

    R = #{w_i ∈ POSITIVE} − #{w_i ∈ NEGATIVE}
        − repeat_penalty · #{i : w_i repeats an earlier word}      (ignoring "it", "was", "and")
        − period_penalty · [the response does not end with "."]
        − length_penalty · (max(0, n − max_words) + max(0, min_words − n))

The penalties make the obvious hacks lose: repeating a praise word costs more than it earns, a truncated
response misses its period, and stretching past ``max_words`` or stopping short of ``min_words``
(a bare "." would otherwise be a safe 0) costs a point per word. A
``tiny_sft`` completion (" It was great and lovely.") scores 2.
"""
from __future__ import annotations

import random
import re

from zoo import RewardFunction, hookimpl
from zoo.data import BuiltinDataset

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


def unpaired_rows(size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(size):
        subject, desirable = rng.choice(SUBJECTS), i % 2 == 0
        rows.append({"prompt": _prompt(subject), "completion": _review(rng, subject, 2 if desirable else 0),
                     "label": desirable})
    return rows


def prompt_rows(size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"prompt": _prompt(rng.choice(SUBJECTS))} for _ in range(size)]


@hookimpl
def zoo_register_datasets(register):
    register(BuiltinDataset("tiny_sft", "sft", sft_rows, "tiny reviews: prompt + positive completion"))
    register(BuiltinDataset("tiny_prefs", "pairwise", preference_rows, "tiny reviews: positive chosen, negative rejected"))
    register(BuiltinDataset("tiny_ranked", "ranked", ranked_rows, "tiny reviews: 4 responses scored by positive words"))
    register(BuiltinDataset("tiny_unpaired", "unpaired", unpaired_rows,
                            "tiny reviews: positive completions desirable, negative undesirable, alternating"))
    register(BuiltinDataset("tiny_prompts", "prompt", prompt_rows, "tiny review prompts for online algorithms"))


WORD = re.compile(r"[a-z]+")
#: Words the review template repeats by design.
CONNECTIVES = frozenset({"it", "was", "and"})


def sentiment_score(response: str, *, repeat_penalty: float = 1.5, period_penalty: float = 1.0,
                    max_words: int = 12, min_words: int = 3, length_penalty: float = 1.0) -> float:
    """The reward of one response (see the module docstring)."""
    words = WORD.findall(response.lower())
    positive, negative = set(POSITIVE), set(NEGATIVE)
    score = float(sum(w in positive for w in words) - sum(w in negative for w in words))
    seen: set[str] = set()
    repeats = 0
    for word in words:
        if word in CONNECTIVES:
            continue
        repeats += word in seen
        seen.add(word)
    score -= repeat_penalty * repeats
    if not response.rstrip().endswith("."):
        score -= period_penalty
    score -= length_penalty * (max(0, len(words) - max_words) + max(0, min_words - len(words)))
    return score


def tiny_sentiment(prompts: list[str], responses: list[str], *, repeat_penalty: float = 1.5,
                   period_penalty: float = 1.0, max_words: int = 12, min_words: int = 3,
                   length_penalty: float = 1.0) -> list[float]:
    return [sentiment_score(r, repeat_penalty=repeat_penalty, period_penalty=period_penalty, max_words=max_words,
                            min_words=min_words, length_penalty=length_penalty) for r in responses]


@hookimpl
def zoo_register_rewards(register):
    register(RewardFunction("tiny_sentiment", tiny_sentiment,
                            "tiny reviews: +1 per positive word, −1 per negative word, penalties for "
                            "repetition, a missing final period and length"))
