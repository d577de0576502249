"""``data.max_examples`` stops the reading early and the summary describes what the run uses."""
from __future__ import annotations

import csv
import json

import pytest

from zoo.config import DataConfig
from zoo.data.datamodule import AlignmentDataModule
from zoo.data.dataset import load_examples
from zoo.errors import DataError


def _pairs_file(path, n, bad_line=None):
    lines = [json.dumps({"prompt": f"p{i} ", "chosen": f"good {i}", "rejected": f"bad {i}"}) for i in range(n)]
    if bad_line is not None:
        lines[bad_line - 1] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reading_stops_at_max_examples(tmp_path, tokenizer):
    # A malformed line past the first ten is never read, so it cannot fail the run.
    path = _pairs_file(tmp_path / "pairs.jsonl", 200, bad_line=50)
    config = DataConfig(train=str(path), max_examples=10, eval_fraction=0.2)
    module = AlignmentDataModule(config, tokenizer, "pairwise", batch_size=2)
    module.setup()
    assert len(module.train_examples) == 8 and len(module.eval_examples) == 2
    report = module.reports[0]
    assert (report.rows, report.kept) == (10, 10)
    assert report.summary() == (f"{path}: 10/10 rows kept, 0 truncated; reading stopped after 10 rows "
                                f"(data.max_examples = 10); 8 train, 2 held out for evaluation (data.eval_fraction)")
    # Without the limit the same file fails at that line.
    with pytest.raises(DataError, match="row 50"):
        load_examples(str(path), "train", "pairwise", DataConfig(train=str(path)), tokenizer)


def test_skipped_rows_do_not_count_towards_the_limit(tmp_path, tokenizer):
    path = _pairs_file(tmp_path / "pairs.jsonl", 20, bad_line=2)
    config = DataConfig(train=str(path), max_examples=5, on_bad_rows="skip")
    examples, report = load_examples(str(path), "train", "pairwise", config, tokenizer, limit=5)
    assert [e.row for e in examples] == [1, 3, 4, 5, 6]
    assert (report.rows, report.kept, len(report.skipped), report.stopped_at) == (6, 5, 1, 5)


def _csv_pairs(path, rows: int, tail: str = ""):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "chosen", "rejected"])
        for i in range(rows):
            writer.writerow([f"p{i} ", f"good {i}", f"bad {i}"])
        handle.write(tail)
    return path


def test_a_file_no_longer_than_the_limit_is_not_reported_as_cut(tmp_path, tokenizer):
    path = _csv_pairs(tmp_path / "pairs.csv", 4)
    examples, report = load_examples(str(path), "train", "pairwise", DataConfig(train=str(path)), tokenizer, limit=4)
    assert len(examples) == 4 and report.stopped_at is None and "stopped" not in report.summary()


def test_csv_is_streamed_too(tmp_path, tokenizer):
    path = _csv_pairs(tmp_path / "pairs.csv", 30, tail='p,"unterminated\n')  # a damaged tail past the rows used
    examples, report = load_examples(str(path), "train", "pairwise", DataConfig(train=str(path)), tokenizer, limit=3)
    assert len(examples) == 3 and report.rows == 3 and report.stopped_at == 3
