"""``sentiment``: controlled sentiment generation on real text, the DPO paper's §6.1 task.

Rafailov et al. (2023) prompt a model with the first few tokens of an IMDb review and reward
continuations a sentiment classifier calls positive; gold reward against KL from the reference
is their Fig. 2. Here the prompts are the first ``min_prefix_words``–``max_prefix_words`` words
of real documents read from ``data`` (the Hub's ``stanfordnlp/imdb`` by default, or any local
file with a text column), continued as plain text for ``max_new_tokens`` tokens, and the gold
reward is a programmatic classifier anyone can recompute: VADER's compound score
(Hutto & Gilbert 2014; ``vaderSentiment``'s lexicon and rules), in [−1, 1], of the response::

    compound = s / sqrt(s² + 15),   s = Σ rule-adjusted lexicon valences of the response's words

The continuation alone is scored: the prefix is fixed per prompt, so scoring it would only add a
per-prompt offset.

A single lexicon can be gamed ("great great great" scores 0.92). Two more measures are reported
beside it (:meth:`Sentiment.judges`), never optimised: TextBlob's polarity (the Pattern
lexicon, averaged adjectives with their own negation and intensifier rules: an independent
judge of the same property), and distinct-2, the share of a response's word bigrams that are
distinct (a repetitive or collapsed response scores low). A win on VADER that TextBlob does not
share, or that comes with a fall in distinct-2, is lexicon hacking rather than sentiment.

Splits are disjoint in content: documents are deduplicated and ordered by a hash of their
normalised text (:func:`zoo.bench.split_order`), test prompts are taken first, then
validation, then train, and a prefix whose normalised words already serve another document is
skipped. Demonstrations (for an SFT stage, when a config enables one) are the documents' own
next words.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from zoo import ConfigError, RewardConfig, RewardFunction, hookimpl
from zoo.bench import Judge, Task, TaskData, content_key, split_order
from zoo.data import read_rows

GOLD_REWARD = "vader_compound"
SECOND_JUDGE = "textblob_polarity"
DEGENERACY = "distinct_n"
#: HTML line breaks in IMDb reviews, and every run of whitespace: one space each.
_BREAKS = re.compile(r"<br\s*/?>|\s+", re.IGNORECASE)


@dataclass
class SentimentArgs:
    #: Documents to take prefixes of: a hub data set (``OWNER/NAME`` or ``OWNER/NAME/DIR``) or a local file or directory.
    data: str = "stanfordnlp/imdb"
    split: str = "train"
    #: The column holding each document's text.
    field: str = "text"
    train_prompts: int = 512
    validation_prompts: int = 64
    test_prompts: int = 128
    split_seed: int = 0
    #: A prompt is the document's first k words, k drawn per document from this range (the DPO paper: 2–8 tokens).
    min_prefix_words: int = 2
    max_prefix_words: int = 8
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        for key in ("train_prompts", "validation_prompts", "test_prompts", "min_prefix_words", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(f"task.args.{key} = {getattr(self, key)!r}: must be >= 1")
        if self.max_prefix_words < self.min_prefix_words:
            raise ConfigError(f"task.args.max_prefix_words = {self.max_prefix_words}: must be >= "
                              f"task.args.min_prefix_words ({self.min_prefix_words})")


# ----- the gold reward and the judges beside it ---------------------------------------------------

@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=1)
def _pattern():
    # PatternAnalyzer reads en-sentiment.xml from the textblob wheel; it needs no NLTK corpus.
    from textblob.en.sentiments import PatternAnalyzer

    return PatternAnalyzer()


def vader_compound(prompts: list[str], responses: list[str]) -> list[float]:
    """VADER's compound score of each response, in [−1, 1] (0 for an empty response)."""
    analyzer = _vader()
    return [float(analyzer.polarity_scores(response)["compound"]) for response in responses]


def textblob_polarity(prompts: list[str], responses: list[str]) -> list[float]:
    """TextBlob's (Pattern lexicon) polarity of each response, in [−1, 1] (0 for an empty response)."""
    analyzer = _pattern()
    return [float(analyzer.analyze(response).polarity) for response in responses]


def distinct(text: str, n: int) -> float:
    """Distinct n-grams over n-grams of the lower-cased words of ``text``; 0 when it has no n-gram."""
    tokens = re.findall(r"\w+", text.lower())
    grams = [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(prompts: list[str], responses: list[str], n: int = 2) -> list[float]:
    """Distinct-``n`` of each response (Li et al. 2016, per response): 1 means no repeated n-gram."""
    if n < 1:
        raise ConfigError(f"reward.args.n = {n!r}: must be >= 1")
    return [distinct(response, n) for response in responses]


# ----- the task -----------------------------------------------------------------------------------

def clean(text: str) -> str:
    return _BREAKS.sub(" ", text).strip()


class Sentiment(Task):
    name = "sentiment"
    description = "continue prefixes of real text positively; VADER is the gold reward, TextBlob a second judge"
    version = "1"
    Args = SentimentArgs

    def documents(self) -> list[str]:
        a = self.args
        raw = read_rows(a.data, split=a.split, skip_bad=True)
        texts = []
        for row_no, row in raw.rows:
            value = row.get(a.field) if isinstance(row, dict) else None
            if value is None:
                raise ConfigError(f"{raw.source} row {row_no}: no field {a.field!r} (it has "
                                  f"{', '.join(map(repr, row)) if isinstance(row, dict) else 'no fields'}); "
                                  f"set task.args.field to the column holding the text")
            if not isinstance(value, str):
                raise ConfigError(f"{raw.source} row {row_no}: field {a.field!r} is a {type(value).__name__}, "
                                  f"not text; set task.args.field to the column holding the text")
            text = clean(value)
            if len(text.split()) > a.max_prefix_words:  # a prefix must leave something to continue
                texts.append(text)
        return texts

    def prefix_length(self, document: str) -> int:
        a = self.args
        span = a.max_prefix_words - a.min_prefix_words + 1
        digest = hashlib.sha256(f"{a.split_seed}\0{document}".encode()).digest()
        return a.min_prefix_words + int.from_bytes(digest[:8], "big") % span

    def build(self) -> TaskData:
        a = self.args
        documents = split_order(self.documents(), content_key, a.split_seed)
        need = {"test": a.test_prompts, "validation": a.validation_prompts, "train": a.train_prompts}
        splits: dict[str, list[str]] = {name: [] for name in need}
        demonstrations = []
        used: set[str] = set()
        for document in documents:
            name = next((n for n in need if len(splits[n]) < need[n]), None)
            if name is None:
                break
            words = document.split()
            k = self.prefix_length(document)
            prompt = " ".join(words[:k])
            if content_key(prompt) in used or not content_key(prompt):
                continue
            used.add(content_key(prompt))
            splits[name].append(prompt)
            if name == "train":
                demonstrations.append({"prompt": prompt, "completion": " " + " ".join(words[k: k + a.max_new_tokens])})
        if len(splits["train"]) < 1 or len(splits["test"]) < a.test_prompts or \
                len(splits["validation"]) < a.validation_prompts:
            have = sum(len(v) for v in splits.values())
            raise ConfigError(f"task.args.data = {a.data!r}: {have} documents with distinct prefixes longer than "
                              f"task.args.max_prefix_words; test_prompts + validation_prompts + 1 = "
                              f"{a.test_prompts + a.validation_prompts + 1} are needed")
        return TaskData(pretraining=None, demonstrations=demonstrations, train_prompts=splits["train"],
                        validation_prompts=splits["validation"], test_prompts=splits["test"],
                        max_new_tokens=a.max_new_tokens)

    def gold_reward(self) -> RewardConfig:
        return RewardConfig(function=GOLD_REWARD)

    def judges(self) -> dict[str, Judge]:
        return {"textblob": Judge(RewardConfig(function=SECOND_JUDGE), True,
                                  "TextBlob (Pattern lexicon) polarity of the response, in [-1, 1]"),
                "distinct_2": Judge(RewardConfig(function=DEGENERACY, args={"n": 2}), False,
                                    "distinct word bigrams over bigrams of the response (low: repetitive)")}


@hookimpl
def zoo_register_tasks(register):
    register(Sentiment)


@hookimpl
def zoo_register_rewards(register):
    register(RewardFunction(GOLD_REWARD, vader_compound,
                            "VADER compound sentiment of the response, in [-1, 1] (vaderSentiment's lexicon)"))
    register(RewardFunction(SECOND_JUDGE, textblob_polarity,
                            "TextBlob (Pattern lexicon) polarity of the response, in [-1, 1]"))
    register(RewardFunction(DEGENERACY, distinct_n,
                            "distinct-n of the response: distinct word n-grams over n-grams (args: n, default 2)"))
