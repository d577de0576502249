"""``data.sft_from``: SFT on the chosen side of pairwise data, or the best of ranked data."""
from __future__ import annotations

import json

import pytest

from zoo.config import DataConfig, load_config
from zoo.data.dataset import load_examples
from zoo.errors import ConfigError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def test_chosen_side_of_pairs_and_hh_dialogues(tmp_path, tokenizer):
    path = _jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": "Q1 ", "chosen": "right answer", "rejected": "wrong answer"},
        {"chosen": "\n\nHuman: hi\n\nAssistant: hello friend", "rejected": "\n\nHuman: hi\n\nAssistant: go away"},
    ])
    examples, report = load_examples(path, "train", "sft", DataConfig(sft_from="chosen"), tokenizer)
    assert [e.response_ids for e in examples] == [[_ids(tokenizer, "right answer")], [_ids(tokenizer, " hello friend")]]
    assert examples[1].prompt == "\n\nHuman: hi\n\nAssistant:"
    assert "(SFT on the chosen response, data.sft_from: chosen)" in report.summary()
    # Without the option the same rows are not SFT rows.
    with pytest.raises(Exception, match="SFT rows need prompt"):
        load_examples(path, "train", "sft", DataConfig(), tokenizer)


def test_best_of_ranked_rows_first_on_a_tie(tmp_path, tokenizer):
    path = _jsonl(tmp_path / "ranked.jsonl", [
        {"prompt": "Q ", "responses": ["poor", "good", "also good"], "scores": [0.1, 0.9, 0.9]},
        {"prompt": "R ", "chosen": "yes", "rejected": "no"},  # pairwise rows count as k = 2
    ])
    examples, _ = load_examples(path, "train", "sft", DataConfig(sft_from="best"), tokenizer)
    assert [e.response_ids for e in examples] == [[_ids(tokenizer, "good")], [_ids(tokenizer, "yes")]]


def test_only_sft_takes_the_option():
    from zoo.planning import plan_run

    plan = plan_run(load_config(raw={"algorithm": "sft", "data": {"sft_from": "chosen"}}))
    assert plan.config.data.sft_from == "chosen"
    with pytest.raises(ConfigError, match=r"data.sft_from = 'chosen'.*algorithm 'dpo' reads 'pairwise' data"):
        plan_run(load_config(raw={"algorithm": "dpo", "data": {"sft_from": "chosen"}}))
    with pytest.raises(ConfigError, match="data.sft_from"):
        load_config(raw={"algorithm": "sft", "data": {"sft_from": "chosn"}})
