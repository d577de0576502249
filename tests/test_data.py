"""Data loading: real HH-RLHF rows, chat messages, CSV/Parquet files, and malformed rows."""
from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

import pytest

from zoo.config import DataConfig
from zoo.data.dataset import chat_renderer, load_examples
from zoo.data.examples import normalise
from zoo.data.sources import read_rows
from zoo.errors import DataError

HH_ASSISTANT = "\n\nAssistant:"


def config(path: Path | str, **overrides) -> DataConfig:
    return DataConfig(train=str(path), max_length=4096, max_prompt_length=4000, **overrides)


def write_jsonl(path: Path, rows: list) -> Path:
    lines = [row if isinstance(row, bytes) else json.dumps(row).encode() for row in rows]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# ----- Anthropic HH-RLHF (real rows) ------------------------------------------------------------


def test_hh_rows_split_at_the_last_assistant_turn(shared_data, tmp_path, tokenizer):
    """The prompt is the common prefix of chosen and rejected, cut after its last Assistant turn.

    Computed independently here with ``os.path.commonprefix``; prompt + response must give back
    each original dialogue.
    """
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rb") as handle:
        lines = [next(handle) for _ in range(20)]
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.writelines(lines)

    examples, report = load_examples(str(path), "train", "pairwise", config(path), tokenizer)
    assert report.rows == report.kept == 20 and not report.skipped
    rows = read_rows(str(path)).rows
    for (row_no, row), example in zip(rows, examples):
        common = os.path.commonprefix([row["chosen"], row["rejected"]])
        prompt = common[: common.rindex(HH_ASSISTANT) + len(HH_ASSISTANT)]
        parsed = normalise(row, row_no, str(path), "pairwise")
        assert parsed.prompt == prompt
        assert parsed.prompt.startswith("\n\nHuman:")
        assert parsed.prompt + parsed.responses[0] == row["chosen"]
        assert parsed.prompt + parsed.responses[1] == row["rejected"]
        assert HH_ASSISTANT not in parsed.responses[0]
        assert example.row == row_no
        # tokenised: [BOS] prompt | response EOS, each response in its own slot
        assert tokenizer.decode(example.prompt_ids, skip_special_tokens=True) == prompt
        assert tokenizer.decode(example.response_ids[0], skip_special_tokens=True) == parsed.responses[0]


def test_hh_rows_as_ranked_data_become_k2_with_scores_1_0(shared_data):
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as handle:
        row = json.loads(handle.readline())
    example = normalise(row, 1, "hh", "ranked")
    assert example.scores == [1.0, 0.0]
    assert example.prompt + example.responses[0] == row["chosen"]


def test_pairwise_rows_feed_ranked_algorithms_as_k2(tmp_path, tokenizer):
    """rrhf and slic_hf read ``ranked`` data; a prompt/chosen/rejected file becomes k = 2, scores (1, 0)."""
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD_PAIR])
    (example,), _ = load_examples(str(path), "train", "ranked", config(path), tokenizer)
    assert example.scores == [1.0, 0.0]
    assert tokenizer.decode(example.response_ids[0], skip_special_tokens=True) == GOOD_PAIR["chosen"]
    assert tokenizer.decode(example.response_ids[1], skip_special_tokens=True) == GOOD_PAIR["rejected"]


# ----- chat messages with the tiny model's template ----------------------------------------------


def test_message_list_rows_render_with_the_chat_template(tokenizer):
    """The tiny template renders each message as ``<|role|>\\ncontent</s>\\n``, then ``<|assistant|>\\n``."""
    render = chat_renderer(tokenizer)
    user = {"role": "user", "content": "Hi"}
    expected_prompt = "<|user|>\nHi</s>\n<|assistant|>\n"

    pair = {"prompt": [user], "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}]}
    example = normalise(pair, 1, "mem", "pairwise", render)
    assert (example.prompt, example.responses) == (expected_prompt, ["Hello!", "Go away."])

    conversations = {"chosen": [user, {"role": "assistant", "content": "Hello!"}],
                     "rejected": [user, {"role": "assistant", "content": "Go away."}]}
    example = normalise(conversations, 2, "mem", "pairwise", render)
    assert (example.prompt, example.responses) == (expected_prompt, ["Hello!", "Go away."])

    chat = {"messages": [{"role": "system", "content": "Be brief."}, user, {"role": "assistant", "content": "Hey."}]}
    example = normalise(chat, 3, "mem", "sft", render)
    assert example.prompt == "<|system|>\nBe brief.</s>\n" + expected_prompt
    assert example.responses == ["Hey."]


def test_conversations_that_differ_before_the_last_turn_are_rejected(tokenizer):
    row = {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "A"}],
           "rejected": [{"role": "user", "content": "Yo"}, {"role": "assistant", "content": "B"}]}
    with pytest.raises(DataError, match=r"mem, row 4, field 'rejected'"):
        normalise(row, 4, "mem", "pairwise", chat_renderer(tokenizer))


# ----- CSV and Parquet files ---------------------------------------------------------------------


def test_csv_file(tmp_path, tokenizer):
    path = tmp_path / "prefs.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "chosen", "rejected"])
        writer.writerow(["Review the soup:", " It was great.", " It was awful."])
        writer.writerow(["Say hi, with a comma", " Hi, there.", " No."])
    examples, report = load_examples(str(path), "train", "pairwise", config(path), tokenizer)
    assert report.kept == 2
    assert [e.row for e in examples] == [1, 2]
    assert tokenizer.decode(examples[1].response_ids[0], skip_special_tokens=True) == " Hi, there."


def test_csv_row_with_extra_columns(tmp_path, tokenizer):
    path = tmp_path / "sft.csv"
    path.write_text("prompt,completion\nA,b\nC,d,e\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"sft.csv, row 2: has 3 columns, the header has 2"):
        load_examples(str(path), "train", "sft", config(path), tokenizer)
    examples, report = load_examples(str(path), "train", "sft", config(path, on_bad_rows="skip"), tokenizer)
    assert (report.rows, report.kept, len(report.skipped)) == (2, 1, 1)


def test_parquet_file_with_list_columns(tmp_path, tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "ranked.parquet"
    pq.write_table(pa.table({
        "prompt": ["Review the film:", "Review the bike:"],
        "responses": [[" Great.", " Dull.", " Fine."], [" Broken.", " Superb."]],
        "scores": [[2.0, 0.0, 1.0], [0.0, 3.0]],
    }), path)
    examples, report = load_examples(str(path), "train", "ranked", config(path), tokenizer)
    assert report.kept == 2
    assert [len(e.response_ids) for e in examples] == [3, 2]
    assert examples[1].scores == [0.0, 3.0]


def test_directory_picks_the_split_file(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"prompt": "a", "completion": "b"}])
    write_jsonl(tmp_path / "test.jsonl", [{"prompt": "c", "completion": "d"}, {"prompt": "e", "completion": "f"}])
    assert len(read_rows(str(tmp_path), split="test").rows) == 2
    assert read_rows(str(tmp_path), split="train").rows[0][1]["prompt"] == "a"


# ----- malformed rows: named by file, row and field; skippable ----------------------------------

GOOD_PAIR = {"prompt": "Review the soup:", "chosen": " It was great.", "rejected": " It was awful."}
GOOD_RANKED = {"prompt": "Review the soup:", "responses": [" A.", " B."], "scores": [1, 0]}

MALFORMED = [
    # (case, data shape, bad line, field named, message fragment)
    ("missing field", "pairwise", {"prompt": "p", "chosen": " a"}, "rejected", "missing field"),
    ("wrong type", "pairwise", {"prompt": "p", "chosen": 5, "rejected": " b"}, "chosen", "expected a string, got int"),
    ("whitespace only", "pairwise", {"prompt": " \n\t", "chosen": " a", "rejected": " b"}, "prompt",
     "whitespace-only"),
    ("chosen equals rejected", "pairwise", {"prompt": "p", "chosen": " same", "rejected": " same"}, "rejected",
     "identical to chosen"),
    ("scores length", "ranked", {"prompt": "p", "responses": [" a", " b", " c"], "scores": [1, 0]}, "scores",
     "has 2 values for 3 responses"),
    ("score not a number", "ranked", {"prompt": "p", "responses": [" a", " b"], "scores": [1, "high"]}, "scores[1]",
     "expected a finite number"),
    ("invalid JSON", "pairwise", b'{"prompt": "p", "chosen": " a",', None, "invalid JSON"),
    ("invalid UTF-8", "pairwise", b'{"prompt": "caf\xe9", "chosen": " a", "rejected": " b"}', None, "invalid UTF-8"),
    ("not an object", "pairwise", b'["p", " a", " b"]', None, "expected an object"),
]


@pytest.mark.parametrize("case,shape,bad,field,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_row_is_named_then_skippable(case, shape, bad, field, message, tmp_path, tokenizer):
    good = GOOD_PAIR if shape == "pairwise" else GOOD_RANKED
    path = write_jsonl(tmp_path / "data.jsonl", [good, good, bad, good])  # the bad row is line 3
    where = f"{path}, row 3" + (f", field '{field}'" if field else "")
    with pytest.raises(DataError) as info:
        load_examples(str(path), "train", shape, config(path), tokenizer)
    text = str(info.value)
    assert text.startswith(where + ":"), text
    assert message in text
    assert "on_bad_rows: skip" in text  # says how to carry on

    examples, report = load_examples(str(path), "train", shape, config(path, on_bad_rows="skip"), tokenizer)
    assert (report.rows, report.kept, len(report.skipped)) == (4, 3, 1)
    assert report.skipped[0].startswith(where)
    assert [e.row for e in examples] == [1, 2, 4]
    assert "1 skipped" in report.summary()


def test_only_bad_rows_is_an_error_even_when_skipping(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p"}, {"prompt": "q"}])
    with pytest.raises(DataError, match=r"bad.jsonl: no usable rows \(2 read, 2 skipped\)"):
        load_examples(str(path), "train", "pairwise", config(path, on_bad_rows="skip"), tokenizer)


def test_invalid_utf8_is_blamed_on_its_own_line(tmp_path):
    """Many good lines before the bad byte: the error names the bad line, not an earlier one."""
    rows = [{"prompt": f"prompt {i}", "completion": " x" * 50} for i in range(400)]
    path = write_jsonl(tmp_path / "big.jsonl", [*rows, b'{"prompt": "\xff", "completion": "y"}'])
    with pytest.raises(DataError, match=r"big.jsonl, row 401: invalid UTF-8"):
        read_rows(str(path))
