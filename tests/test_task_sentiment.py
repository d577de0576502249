"""The ``sentiment`` task: VADER's compound score as gold reward, TextBlob and distinct-2 beside it,
prompts that are prefixes of real text, split by content."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from zoo.bench.prompts import content_key
from zoo.bench.task import check_splits
from zoo.errors import ConfigError
from zoo_plugins.tasks.sentiment import Sentiment, distinct_n, textblob_polarity, vader_compound


def _vader_lexicon() -> dict[str, float]:
    import vaderSentiment

    path = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"
    return {line.split("\t")[0]: float(line.split("\t")[1])
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def _normalise(score: float) -> float:
    """VADER's normaliser: s / sqrt(s² + 15), rounded to 4 places as the library reports it."""
    return round(score / math.sqrt(score * score + 15), 4)


def test_vader_compound_equals_hand_worked_scores():
    """Valences from the wheel's lexicon (good 1.9, great 3.1, kind 2.4):

    * "The food was good."        s = 1.9                      → 1.9/√18.61   = 0.4404
    * "great great great"         s = 3 × 3.1 = 9.3            → 9.3/√101.49  = 0.9231
    * "The food was not good."    negation × −0.74: s = −1.406 → −0.3412
    * "Café was GOOD!"            capitals +0.733, "!" +0.292: s = 2.925 → 0.6027
    * "naïve but kind"            after "but" × 1.5 ("naïve" is no lexicon word): s = 3.6 → 0.6808
    * ""                          0
    """
    lexicon = _vader_lexicon()
    assert (lexicon["good"], lexicon["great"], lexicon["kind"]) == (1.9, 3.1, 2.4)
    texts = ["The food was good.", "great great great", "The food was not good.", "Café was GOOD!",
             "naïve but kind", ""]
    expected = [_normalise(1.9), _normalise(9.3), _normalise(1.9 * -0.74), _normalise(1.9 + 0.733 + 0.292),
                _normalise(2.4 * 1.5), 0.0]
    assert expected == [0.4404, 0.9231, -0.3412, 0.6027, 0.6808, 0.0]
    assert vader_compound(["prefix"] * len(texts), texts) == expected


def test_vader_compound_is_the_library_score_of_the_response_alone():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    responses = [" and it was the worst film I have ever seen :(", " truly wonderful 😀", "  \n"]
    assert vader_compound(["I loved it, but"] * 3, responses) == [analyzer.polarity_scores(r)["compound"]
                                                                  for r in responses]
    assert vader_compound(["terrible, awful"], [" fine"]) == vader_compound(["wonderful"], [" fine"])


def test_textblob_polarity_equals_hand_worked_scores():
    """Pattern's lexicon (en-sentiment.xml in the wheel): good 0.7, great 0.8 (means over senses);
    "not" multiplies by −0.5, "very" by 1.3; repeats of one word average to the word."""
    texts = ["The food was good.", "The food was not good.", "very good", "great great great", "", "the table"]
    got = textblob_polarity(["x"] * len(texts), texts)
    assert got == pytest.approx([0.7, -0.35, 0.91, 0.8, 0.0, 0.0])


def test_textblob_needs_no_nltk_corpus(tmp_path, monkeypatch):
    """The second judge must work offline on a machine that never downloaded NLTK data."""
    import subprocess
    import sys

    code = ("from zoo_plugins.tasks.sentiment import textblob_polarity; "
            "print(textblob_polarity(['x'], ['A truly good film.'])[0])")
    env = {"NLTK_DATA": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(0.7)


def test_distinct_2_counts_repeated_bigrams():
    """"the cat the cat": bigrams (the cat), (cat the), (the cat): 2 distinct of 3. One word or an
    empty text has no bigram: 0 (a collapsed response is the degenerate end)."""
    got = distinct_n(["p"] * 5, ["the cat the cat", "The cat sat on the mat", "great", "", "great great great"])
    assert got == pytest.approx([2 / 3, 1.0, 0.0, 0.0, 0.5])
    assert distinct_n(["p"], ["a b a b"], n=1) == [0.5]
    with pytest.raises(ConfigError, match="reward.args.n"):
        distinct_n(["p"], ["a"], n=0)


def _write(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"review": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def _task(**args) -> Sentiment:
    return Sentiment(Sentiment.parse_args(args))


def test_splits_are_disjoint_in_content_and_deterministic(tmp_path):
    texts = [f"Review number {i} says the film was fine and the actors did their work well enough" for i in range(60)]
    # the same review again with other capitals, spacing and an HTML break: one document, not two
    texts += [t.upper().replace(" ", "  <br /> ") for t in texts[:20]]
    data = _write(tmp_path / "reviews.jsonl", texts)
    task = _task(data=str(data), field="review", train_prompts=100, validation_prompts=8, test_prompts=16,
                 min_prefix_words=4, max_prefix_words=6)
    built = task.build()
    check_splits("sentiment", built)
    assert (len(built.test_prompts), len(built.validation_prompts), len(built.train_prompts)) == (16, 8, 36)
    keys = [{content_key(p) for p in split} for split in (built.train_prompts, built.validation_prompts,
                                                          built.test_prompts)]
    assert sum(map(len, keys)) == 60 and not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert all(4 <= len(p.split()) <= 6 and "<br" not in p for p in built.test_prompts)
    for demo in built.demonstrations:  # the document's own next words
        source = next(t for t in texts if t.startswith(demo["prompt"] + " "))
        assert source.startswith(demo["prompt"] + demo["completion"])
    assert task.build().test_prompts == built.test_prompts
    other = _task(data=str(data), field="review", train_prompts=100, validation_prompts=8, test_prompts=16,
                  split_seed=1).build()
    assert other.test_prompts != built.test_prompts


def test_documents_that_open_alike_give_one_prompt(tmp_path):
    """Different reviews whose first three words differ only in case and punctuation would be one
    prompt in two splits: the second is skipped."""
    texts = [f"The film was {word} and more words follow here" for word in ("great", "awful", "fine")]
    texts[1] = "the FILM, was " + texts[1][len("The film was "):]
    texts += [f"Review {i} of many more words that follow here" for i in range(20)]
    data = _write(tmp_path / "reviews.jsonl", texts)
    built = _task(data=str(data), field="review", train_prompts=100, validation_prompts=2, test_prompts=4,
                  min_prefix_words=3, max_prefix_words=3).build()
    prompts = built.train_prompts + built.validation_prompts + built.test_prompts
    assert sum(content_key(p) == "the film was" for p in prompts) == 1
    assert len(prompts) == 21


def test_bad_arguments_and_data_name_the_key(tmp_path):
    data = _write(tmp_path / "reviews.jsonl", ["one two three four five six seven eight nine ten"] * 3)
    with pytest.raises(ConfigError, match=r"reviews.jsonl row 1: no field 'text'.*task.args.field"):
        _task(data=str(data)).build()
    with pytest.raises(ConfigError, match=r"task.args.data = .*1 documents.*are needed"):
        _task(data=str(data), field="review").build()
    with pytest.raises(ConfigError, match=r"task.args.max_prefix_words = 1: must be >= task.args.min_prefix_words"):
        _task(min_prefix_words=2, max_prefix_words=1)


def test_prefixes_of_real_text(shared_data):
    """HellaSwag's contexts (real ActivityNet and WikiHow text) as the documents."""
    task = _task(data=str(shared_data / "hellaswag" / "hellaswag_val_1000.jsonl"), field="ctx", train_prompts=200,
                 validation_prompts=32, test_prompts=64)
    built = task.build()
    check_splits("sentiment", built)
    assert len(built.train_prompts) == 200
    assert all(2 <= len(p.split()) <= 8 for p in built.train_prompts + built.test_prompts)
    keys = [{content_key(p) for p in split} for split in (built.train_prompts, built.validation_prompts,
                                                          built.test_prompts)]
    assert not (keys[0] & keys[2] or keys[1] & keys[2] or keys[0] & keys[1])
    assert task.gold_reward().function == "vader_compound"
    assert {name: judge.same_property for name, judge in task.judges().items()} == {"textblob": True,
                                                                                    "distinct_2": False}
