"""Malformed data: every bad row is a DataError naming file, row and field, or, with
``data.on_bad_rows: skip``, a counted and reported skip. Never a crash deep in torch, never a silent drop.
"""
from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest
import yaml

from zoo import cli
from zoo.config import DataConfig
from zoo.data.dataset import load_examples
from zoo.errors import ConfigError, DataError, ZooError

PAIR = {"prompt": "Review the soup:", "chosen": " It was great.", "rejected": " It was awful."}
RANKED = {"prompt": "Review the soup:", "responses": [" Great.", " Fine.", " Awful."], "scores": [2, 1, 0]}
SFT = {"prompt": "Review the soup:", "completion": " It was great."}
UNPAIRED = {"prompt": "Review the soup:", "completion": " It was great.", "label": True}
GOOD = {"pairwise": PAIR, "ranked": RANKED, "sft": SFT, "unpaired": UNPAIRED}


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _load(path: Path, shape: str = "pairwise", tokenizer=None, **config):
    config = DataConfig(**{"max_length": 64, "max_prompt_length": 32, **config})
    return load_examples(str(path), "train", shape, config, tokenizer)


def _error(path: Path, tokenizer, shape: str = "pairwise", **config) -> str:
    with pytest.raises(DataError) as error:
        _load(path, shape, tokenizer, **config)
    return str(error.value)


BAD_ROWS = [
    # (shape, the row, the field the message must name, words it must contain)
    ("pairwise", {"prompt": "p", "chosen": " a"}, "rejected", "missing field"),
    ("pairwise", {**PAIR, "chosen": 5}, "chosen", "expected a string, got int"),
    ("pairwise", {**PAIR, "rejected": ["a"]}, "rejected[0]", "expected a message"),
    ("pairwise", {**PAIR, "prompt": ""}, "prompt", "empty or whitespace-only"),
    ("pairwise", {**PAIR, "chosen": " \n\t "}, "chosen", "empty or whitespace-only"),
    ("pairwise", {**PAIR, "rejected": PAIR["chosen"]}, "rejected", "identical to chosen"),
    ("pairwise", {"chosen": "Human: hi", "rejected": "Human: ho"}, "chosen", "no prompt column"),
    ("pairwise", {**PAIR, "chosen": [{"role": "user", "content": "x"}]}, "chosen", "must be one assistant message"),
    ("pairwise", {**PAIR, "chosen": [{"role": "assistant", "content": "  "}]}, "chosen[0].content", "empty"),
    ("pairwise", {"text": "no pair here"}, "prompt", "missing fields"),
    ("ranked", {**RANKED, "scores": [1, 0]}, "scores", "has 2 values for 3 responses"),
    ("ranked", {**RANKED, "scores": [1, "high", 0]}, "scores[1]", "expected a finite number"),
    ("ranked", {**RANKED, "scores": [1, float("nan"), 0]}, "scores[1]", "expected a finite number"),
    ("ranked", {**RANKED, "scores": [1, True, 0]}, "scores[1]", "expected a finite number"),
    ("ranked", {**RANKED, "responses": [" only one"], "scores": [1]}, "responses", "at least 2"),
    ("ranked", {**RANKED, "responses": [" a", 7, " c"]}, "responses[1]", "non-empty string"),
    ("ranked", {**RANKED, "scores": None}, "scores", "not a list"),
    ("ranked", {**RANKED, "responses": [" same", " same", " other"]}, "responses[1]", "identical to responses[0]"),
    ("sft", {"prompt": "p"}, "completion", "missing fields"),
    ("sft", {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}, "messages",
     "must be the assistant's"),
    ("sft", {"text": 3.5}, "text", "expected a string, got float"),
    ("unpaired", {"prompt": "p", "completion": " a"}, "label", "missing field: true for a desirable completion"),
    ("unpaired", {**UNPAIRED, "label": "yes"}, "label", "expected true (desirable) or false (undesirable), got 'yes'"),
    ("unpaired", {**UNPAIRED, "label": 2}, "label", "got 2"),
    ("unpaired", {**UNPAIRED, "label": None}, "label", "got None"),
    ("unpaired", {"completion": " a", "label": True}, "prompt", "missing field: unpaired rows need prompt"),
    ("unpaired", {**UNPAIRED, "completion": 5}, "completion", "expected a string, got int"),
    ("unpaired", {**UNPAIRED, "completion": [{"role": "user", "content": "x"}]}, "completion",
     "must be one assistant message"),
    ("unpaired", {"prompt": "p", "chosen": " a"}, "rejected", "missing field"),  # a pair, read as two completions
    # A JSON "\udc80" escape decodes to a lone surrogate, which no tokenizer can encode.
    ("pairwise", {**PAIR, "chosen": "fine \udc80 then"}, "chosen", "lone surrogate"),
    ("pairwise", {**PAIR, "prompt": "\ud83d"}, "prompt", "'\\ud83d' at character 0, a lone surrogate"),
    ("pairwise", {**PAIR, "chosen": [{"role": "assistant", "content": "x\udc80"}]}, "chosen[0].content",
     "lone surrogate"),
    ("ranked", {**RANKED, "responses": [" a", " b\udfff", " c"]}, "responses[1]", "lone surrogate"),
]


@pytest.mark.parametrize(("shape", "row", "field", "words"), BAD_ROWS)
def test_bad_row_names_file_row_and_field(tmp_path, tokenizer, shape, row, field, words):
    path = _jsonl(tmp_path / "data.jsonl", [GOOD[shape], GOOD[shape], row, GOOD[shape]])
    message = _error(path, tokenizer, shape)
    assert message.startswith(f"{path}, row 3, field {field!r}: ")
    assert words in message
    assert "data.on_bad_rows: skip" in message  # the way out is part of the message


@pytest.mark.parametrize(("shape", "row", "field", "words"), BAD_ROWS)
def test_skipped_bad_row_is_counted_and_reported(tmp_path, tokenizer, shape, row, field, words):
    path = _jsonl(tmp_path / "data.jsonl", [GOOD[shape], GOOD[shape], row, GOOD[shape]])
    examples, report = _load(path, shape, tokenizer, on_bad_rows="skip")
    assert [e.row for e in examples] == [1, 2, 4]
    assert report.rows == 4 and report.kept == 3
    assert len(report.skipped) == 1 and f"row 3, field {field!r}" in report.skipped[0]
    assert "1 skipped" in report.summary()


def test_extra_fields_are_ignored(tmp_path, tokenizer):
    plain = _jsonl(tmp_path / "plain.jsonl", [PAIR])
    extra = _jsonl(tmp_path / "extra.jsonl", [{**PAIR, "id": 17, "meta": {"source": "web"}, "score": None}])
    (a,), _ = _load(plain, tokenizer=tokenizer)
    (b,), _ = _load(extra, tokenizer=tokenizer)
    assert (a.prompt_ids, a.response_ids, a.scores) == (b.prompt_ids, b.response_ids, b.scores)


def test_responses_that_become_identical_after_truncation(tmp_path, tokenizer):
    shared = " and so on" * 10
    row = {"prompt": "Go:", "chosen": shared + " yes", "rejected": shared + " no"}
    path = _jsonl(tmp_path / "data.jsonl", [PAIR, row])
    message = _error(path, tokenizer, max_length=40, max_prompt_length=8)
    assert message.startswith(f"{path}, row 2, field 'rejected': identical to chosen after truncation")
    assert "raise data.max_length" in message
    _, report = _load(path, tokenizer=tokenizer, max_length=40, max_prompt_length=8, on_bad_rows="skip")
    assert report.kept == 1 and len(report.skipped) == 1
    examples, _ = _load(path, tokenizer=tokenizer, max_length=200, max_prompt_length=8)
    assert len(examples) == 2 and not examples[1].truncated  # with room for both, the pair is usable


def test_long_prompts_are_truncated_keeping_the_end_and_counted(tmp_path, tokenizer):
    long_prompt = "Start. " + "blah " * 40 + "Review the soup:"
    path = _jsonl(tmp_path / "data.jsonl", [PAIR, {**PAIR, "prompt": long_prompt}])
    (short, long), report = _load(path, tokenizer=tokenizer, max_length=48, max_prompt_length=16)
    assert report.truncated == 1 and "1 truncated" in report.summary()
    assert long.truncated and len(long.prompt_ids) == 16
    assert tokenizer.decode(long.prompt_ids).endswith("Review the soup:")
    assert all(len(long.prompt_ids) + len(r) <= 48 for r in long.response_ids)
    assert not short.truncated


def test_response_longer_than_max_length_is_cut_but_kept(tmp_path, tokenizer):
    path = _jsonl(tmp_path / "data.jsonl", [{**PAIR, "chosen": " great" * 50}])
    (example,), report = _load(path, tokenizer=tokenizer, max_length=32, max_prompt_length=16)
    assert report.truncated == 1 and len(example.prompt_ids) + len(example.response_ids[0]) == 32


def _gzip_jsonl(rows: int) -> bytes:
    return gzip.compress("".join(json.dumps(PAIR) + "\n" for _ in range(rows)).encode())


@pytest.mark.parametrize(("name", "content", "words"), [
    ("truncated.jsonl.gz", _gzip_jsonl(200)[:80], "cannot read the file"),
    ("corrupt.jsonl.gz", _gzip_jsonl(200)[:30] + b"\x00" * 20 + _gzip_jsonl(200)[50:], "cannot read the file"),
    ("not-gzip.jsonl.gz", b'{"prompt": "p"}\n', "cannot read the file (BadGzipFile"),
    ("truncated.json.gz", gzip.compress(json.dumps([PAIR] * 50).encode())[:40], "cannot read the file"),
    ("syntax.json", b'[{"prompt": "p",]', "invalid JSON"),
    ("scalar.json", b'"just text"', "expected a JSON list of objects"),
    ("header.csv", b"prompt,ch\xffsen,rejected\np,a,b\n", "invalid UTF-8 in the header"),
    ("garbage.parquet", b"PAR1 not really", "cannot read the Parquet file"),
    ("notes.txt", b"prompt: hi", "unsupported file type"),
    ("empty.jsonl", b"", "no usable rows"),
    ("blank.jsonl", b"\n  \n", "no usable rows"),
])
def test_unreadable_files_name_the_file(tmp_path, tokenizer, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    message = _error(path, tokenizer, on_bad_rows="skip")  # skipping rows cannot rescue a damaged file
    assert message.startswith(str(path)) and words in message


@pytest.mark.parametrize(("name", "content", "row", "field", "words"), [
    ("line.jsonl", b'{"prompt": "p", "chosen": " a", "rejected": " b"}\n{"prompt": "p", "chosen": \n', 2, None,
     "invalid JSON"),
    ("utf8.jsonl", json.dumps(PAIR).encode() + b'\n{"prompt": "\xff\xfe"}\n', 2, None, "invalid UTF-8"),
    ("utf8.json", b'[' + json.dumps(PAIR).encode() + b', {"prompt": "p", "chosen": " a\xc3", "rejected": " b"}]', 2,
     "chosen", "invalid UTF-8"),
    ("utf8.csv", b"prompt,chosen,rejected\np,a,b\nq,c\xffd,e\n", 2, "chosen", "invalid UTF-8"),
    ("columns.csv", b"prompt,chosen,rejected\np,a,b\nq,c,d,e\n", 2, None, "has 4 columns"),
    ("short.csv", b"prompt,chosen,rejected\np,a,b\nq,c\n", 2, "rejected", "missing field"),
    ("list.jsonl", json.dumps(PAIR).encode() + b"\n[1, 2]\n", 2, None, "expected an object"),
])
def test_unreadable_rows_name_the_row(tmp_path, tokenizer, name, content, row, field, words):
    path = tmp_path / name
    path.write_bytes(content)
    message = _error(path, tokenizer)
    where = f"{path}, row {row}" + (f", field {field!r}" if field else "")
    assert message.startswith(where + ": ") and words in message
    examples, report = _load(path, tokenizer=tokenizer, on_bad_rows="skip")
    assert [e.row for e in examples] == [1] and len(report.skipped) == 1 and report.rows == 2


def test_missing_file_is_a_config_error(tmp_path, tokenizer):
    with pytest.raises(ConfigError, match="does not exist"):
        _load(tmp_path / "nope.jsonl", tokenizer=tokenizer)


def _mutations(rng: random.Random, row: dict) -> list[dict]:
    values = [None, 0, -1.5, float("inf"), True, "", "   ", "\x00", "ü" * 3, [], [""], ["a", 1], {}, {"role": 1},
              [{"role": "assistant", "content": "ok"}], " x" * 200]
    out = []
    for key in row:
        out.append({k: v for k, v in row.items() if k != key})
        for value in rng.sample(values, 6):
            out.append({**row, key: value})
    return out


@pytest.mark.parametrize("shape", ["pairwise", "ranked", "sft", "unpaired"])
def test_fuzzed_rows_either_load_or_raise_a_data_error_naming_the_row(tmp_path, tokenizer, shape):
    """Random field deletions and type swaps: each row loads, or fails as a DataError naming row 1."""
    rng = random.Random(shape)
    for i, row in enumerate(_mutations(rng, GOOD[shape])):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps([row]), encoding="utf-8")
        try:
            (example,), _ = _load(path, shape, tokenizer)
        except DataError as exc:
            assert str(exc).startswith(f"{path}, row 1"), (row, str(exc))
        else:
            assert example.response_ids and all(example.response_ids)


def test_fuzzed_bytes_either_load_or_raise_a_data_error(tmp_path, tokenizer):
    """Random byte damage to a JSON Lines file never escapes as anything but a DataError."""
    rng = random.Random(0)
    clean = "".join(json.dumps(PAIR) + "\n" for _ in range(4)).encode()
    for i in range(60):
        damaged = bytearray(clean)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path = tmp_path / f"{i}.jsonl"
        path.write_bytes(bytes(damaged))
        try:
            _load(path, tokenizer=tokenizer, on_bad_rows=rng.choice(["error", "skip"]))
        except DataError as exc:
            assert str(exc).startswith(str(path))


def test_cli_reports_a_bad_row_in_one_paragraph_before_loading_a_model(tmp_path, capsys, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the data was checked")

    monkeypatch.setattr("zoo.models.load_causal_lm", no_model)
    data = _jsonl(tmp_path / "data.jsonl", [PAIR, {**PAIR, "chosen": 5}])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"algorithm": "dpo", "model": {"name": "tiny"}, "output_dir": str(tmp_path / "out"),
                                      "data": {"train": str(data), "max_length": 64, "max_prompt_length": 32}}))
    assert cli.main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "row 2, field 'chosen': expected a string, got int" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "config.yaml").exists()


def test_cli_run_with_skipped_rows_reports_them_on_screen_and_in_metrics(tmp_path, capsys, tiny_run):
    rows = [PAIR] * 10 + [{**PAIR, "rejected": PAIR["chosen"]}, {"prompt": "only"}]
    data = _jsonl(tmp_path / "data.jsonl", rows)
    raw = tiny_run("dpo", tmp_path / "out", steps=1, data={"train": str(data), "on_bad_rows": "skip",
                                                            "eval_fraction": 0.2})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert cli.main(["train", str(config)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long paths at its width
    assert "10/12 rows kept" in out and "2 skipped" in out
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert summary["skipped_rows"] == 2 and "2 skipped" in summary["data"][0]


def test_all_rows_bad_under_skip_is_still_an_error(tmp_path, tokenizer):
    path = _jsonl(tmp_path / "data.jsonl", [{"prompt": "p"}, {"prompt": "q"}])
    with pytest.raises(ZooError, match=r"no usable rows \(2 read, 2 skipped\)"):
        _load(path, tokenizer=tokenizer, on_bad_rows="skip")
