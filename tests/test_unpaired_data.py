"""The ``unpaired`` data shape: TRL's prompt / completion / label rows, pairs read as two labelled
completions, the mismatched pair each example carries for a KL reference point, the split, the errors."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

from zoo import cli
from zoo.config import DataConfig, load_config
from zoo.data.datamodule import AlignmentDataModule
from zoo.data.examples import normalise
from zoo.data.unpaired import mismatched_sources
from zoo.errors import DataError


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def datamodule(path: Path, tokenizer, **config) -> AlignmentDataModule:
    data = DataConfig(**{"train": str(path), "max_length": 64, "max_prompt_length": 32, "eval_fraction": 0.0,
                         **config})
    module = AlignmentDataModule(data, tokenizer, "unpaired", batch_size=4)
    module.setup("fit")
    return module


def text(tokenizer, ids) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)


def test_rows_in_trls_unpaired_format_and_pairs_normalise():
    row = normalise({"prompt": "P", "completion": " c", "label": False}, 1, "f", "unpaired")
    assert (row.prompt, row.responses, row.scores) == ("P", [" c"], [0.0])
    assert normalise({"prompt": "P", "completion": " c", "label": "True"}, 1, "f.csv", "unpaired").scores == [1.0]
    assert normalise({"prompt": "P", "completion": " c", "label": 1}, 1, "f", "unpaired").scores == [1.0]
    pair = normalise({"prompt": "P", "chosen": " a", "rejected": " b"}, 1, "f", "unpaired")
    assert (pair.responses, pair.scores, pair.fields) == ([" a", " b"], [1.0, 0.0], ["chosen", "rejected"])


def test_pairs_become_two_labelled_completions_each_with_a_mismatched_pair(tmp_path, tokenizer):
    """Pairs A, B, C give completions (A c_A +), (A r_A −), (B c_B +), (B r_B −), (C c_C +), (C r_C −).
    A shift by one would score r_A after A; the shift is 2, so each completion's mismatched pair is the
    same-label completion of the previous prompt: c_C, r_C, c_A, r_A, c_B, r_B, the matched set again."""
    rows = [{"prompt": f"Review {x}:", "chosen": f" good {x}.", "rejected": f" bad {x}."} for x in "ABC"]
    examples = datamodule(jsonl(tmp_path / "pairs.jsonl", rows), tokenizer).train_examples
    assert [(text(tokenizer, e.prompt_ids), text(tokenizer, e.response_ids[0]), e.scores) for e in examples] == [
        ("Review A:", " good A.", [1.0]), ("Review A:", " bad A.", [0.0]), ("Review B:", " good B.", [1.0]),
        ("Review B:", " bad B.", [0.0]), ("Review C:", " good C.", [1.0]), ("Review C:", " bad C.", [0.0])]
    assert [text(tokenizer, e.response_ids[1]) for e in examples] == [
        " good C.", " bad C.", " good A.", " bad A.", " good B.", " bad B."]


def test_unpaired_rows_with_distinct_neighbours_shift_by_one_as_trl_does(tmp_path, tokenizer):
    rows = [{"prompt": f"Q{i}:", "completion": f" a{i}.", "label": i != 1} for i in range(3)]
    examples = datamodule(jsonl(tmp_path / "u.jsonl", rows), tokenizer).train_examples
    assert [text(tokenizer, e.response_ids[1]) for e in examples] == [" a2.", " a0.", " a1."]
    assert [e.scores for e in examples] == [[1.0], [0.0], [1.0]]


def test_long_runs_of_one_prompt_fall_back_to_the_nearest_other_prompt():
    """Keys A A A B: no shift of 1..3 avoids every collision (B is the only other prompt), so each example
    takes the nearest earlier one of another prompt: 0 → 3 (cyclically), 1 → 3, 2 → 3, 3 → 2."""
    assert mismatched_sources(torch.tensor([0, 0, 0, 1])) == [3, 3, 3, 2]
    assert mismatched_sources(torch.tensor([0, 1, 0, 1])) == [3, 0, 1, 2]  # shift 1 works


def test_the_mismatched_completion_is_cut_to_fit_after_a_longer_prompt(tmp_path, tokenizer):
    """Byte tokens, max_length 24: " a long answer here." and its end token (21) fit after "Q:" (2), and
    are cut to the 11 tokens left after "A longer one:" (13)."""
    rows = [{"prompt": "Q:", "completion": " a long answer here.", "label": True},
            {"prompt": "A longer one:", "completion": " b.", "label": False}]
    examples = datamodule(jsonl(tmp_path / "u.jsonl", rows), tokenizer, max_length=24).train_examples
    long_prompt = examples[1]
    assert len(long_prompt.prompt_ids) + len(long_prompt.response_ids[1]) == 24
    assert text(tokenizer, long_prompt.response_ids[1]) == " a long ans"
    assert all(len(e.prompt_ids) + max(map(len, e.response_ids)) <= 24 for e in examples)


def test_the_two_completions_of_a_pair_stay_in_one_split(tmp_path, tokenizer):
    rows = [{"prompt": f"Review {i}:", "chosen": f" good {i}.", "rejected": f" bad {i}."} for i in range(10)]
    module = datamodule(jsonl(tmp_path / "pairs.jsonl", rows), tokenizer, eval_fraction=0.3)
    train = [text(tokenizer, e.prompt_ids) for e in module.train_examples]
    held = [text(tokenizer, e.prompt_ids) for e in module.eval_examples]
    assert (len(train), len(held)) == (14, 6) and not set(train) & set(held)
    assert all(train.count(p) == 2 for p in train) and all(held.count(p) == 2 for p in held)
    assert module.summary().desirable == module.summary().undesirable == 7
    assert module.reports[0].summary().endswith("7 train, 3 held out for evaluation (data.eval_fraction); "
                                                 "14 labelled completions to train on (7 desirable, 7 undesirable)")


def test_a_split_with_a_single_prompt_is_an_error_naming_it(tmp_path, tokenizer):
    rows = [{"prompt": "Same:", "completion": f" c{i}.", "label": i % 2 == 0} for i in range(4)]
    path = jsonl(tmp_path / "u.jsonl", rows)
    with pytest.raises(DataError, match=r"u.jsonl: the training data \(data.train\) has 4 completion\(s\) of a "
                                        r"single prompt; unpaired data needs at least two distinct prompts"):
        datamodule(path, tokenizer)


def test_cli_reports_a_bad_label_in_one_paragraph(tmp_path, capsys):
    data = jsonl(tmp_path / "u.jsonl", [{"prompt": "Q:", "completion": " a.", "label": True},
                                        {"prompt": "R:", "completion": " b.", "label": "maybe"}])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"algorithm": "kto", "model": {"name": "tiny"}, "output_dir": str(tmp_path / "out"),
                                      "data": {"train": str(data), "max_length": 64, "max_prompt_length": 32}}))
    assert cli.main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "u.jsonl, row 2, field 'label': expected true (desirable) or false (undesirable), got 'maybe'" in err
    assert "Traceback" not in err


def test_a_run_warns_when_the_weights_fall_outside_the_papers_ratio(tmp_path, caplog, tiny_run):
    """12 desirable and 4 undesirable completions with λ_D = λ_U = 1: ratio 3, outside [1, 4/3]."""
    from zoo.run import build_run

    rows = [{"prompt": f"Q{i}:", "completion": f" a{i}.", "label": i % 4 != 0} for i in range(16)]
    raw = tiny_run("kto", tmp_path / "run", data={"train": str(jsonl(tmp_path / "u.jsonl", rows)), "eval_fraction": 0.0})
    with caplog.at_level(logging.WARNING, logger="zoo.run"):
        build_run(load_config(raw=raw))
    assert "algorithm kto: λ_D n_D / (λ_U n_U) = 1·12 / (1·4) = 3" in caplog.text
    assert "undesirable_weight in [2.25, 3]" in caplog.text


def test_the_benchmark_has_a_data_file_for_every_shape_and_gives_unpaired_algorithms_the_pairs():
    from zoo.algorithm import DATA_SHAPES
    from zoo.bench.stages import DATA_FILES

    assert set(DATA_FILES) == set(DATA_SHAPES)
    assert DATA_FILES["unpaired"] == DATA_FILES["pairwise"]


def test_one_held_out_pair_is_an_error_that_says_how_to_hold_out_more(tmp_path, tokenizer):
    """10 pairs with eval_fraction 0.1 hold out one pair: its two completions share their only prompt."""
    rows = [{"prompt": f"Review {i}:", "chosen": f" good {i}.", "rejected": f" bad {i}."} for i in range(10)]
    with pytest.raises(DataError, match=r"the evaluation data \(data.eval, or data.eval_fraction of data.train\) has "
                                        r"2 completion\(s\) of a single prompt.*raise data.eval_fraction"):
        datamodule(jsonl(tmp_path / "pairs.jsonl", rows), tokenizer, eval_fraction=0.1)
