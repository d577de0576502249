"""``tiny_sentiment``: the programmatic reward of the built-in tiny review data.

For a response with words w_1..w_n (lower-cased runs of letters):

    R = #{w_i ∈ POSITIVE} − #{w_i ∈ NEGATIVE}
        − repeat_penalty · #{i : w_i repeats an earlier word}      (ignoring "it", "was", "and")
        − period_penalty · [the response does not end with "."]
        − length_penalty · (max(0, n − max_words) + max(0, min_words − n))

``POSITIVE`` and ``NEGATIVE`` are the word lists of :mod:`zoo_plugins.tiny_data`. The penalties
make the obvious hacks lose: repeating a praise word costs more than it earns, a truncated
response misses its period, and stretching past ``max_words`` or stopping short of ``min_words``
(a bare "." would otherwise be a safe 0) costs a point per word. A
``tiny_sft`` completion (" It was great and lovely.") scores 2.
"""
from __future__ import annotations

import re

from zoo import RewardFunction, hookimpl
from zoo_plugins.tiny_data import NEGATIVE, POSITIVE

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
