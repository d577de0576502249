"""``zoo eval`` output: --json for the listing and the results, MMLU per-subject and letter spread
with intervals, and samples that carry what rebuilds the scored prompt."""
from __future__ import annotations

import json

import pytest

import zoo.eval.mmlu as mmlu
from zoo.cli import main

DEV = "".join(f"Dev question {i}?,one,two,three,four,{'ABCD'[i % 4]}\n" for i in range(5))
TEST = "".join(f"Question {i}?,w{i},x{i},y{i},z{i},{'ABCA'[i % 4]}\n" for i in range(6))


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    for subject in ("anatomy", "virology"):
        for split, text in (("dev", DEV), ("test", TEST)):
            (root / "mmlu" / split).mkdir(parents=True, exist_ok=True)
            (root / "mmlu" / split / f"{subject}_{split}.csv").write_text(text, encoding="utf-8")
    return root


def _args(data_dir, *extra):
    return ["eval", "--model", "tiny", "--suites", "mmlu", "--data-dir", str(data_dir), "--num-fewshot", "2",
            "--option", "mmlu.subjects=[anatomy, virology]", "--batch-size", "4", *extra]


def test_list_json(capsys):
    assert main(["eval", "--list", "--json"]) == 0
    suites = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert suites["mmlu"]["num_fewshot"] == 5 and suites["mmlu"]["plugin"] and "preference" in suites


def test_json_results_with_letter_spread(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")
    assert main(_args(data_dir, "--json")) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)["mmlu"]  # progress lines went to stderr, not into the JSON
    assert "eval mmlu: done" in captured.err
    predicted = [results[f"predicted_{x}"]["value"] for x in "ABCD"]
    assert sum(predicted) == pytest.approx(1.0)
    # Gold letters of the 6 questions per subject: A B C A A B -> A 1/2, B 1/3, C 1/6, D 0.
    assert [results[f"gold_{x}"]["value"] for x in "ABCD"] == pytest.approx([1 / 2, 1 / 3, 1 / 6, 0])
    assert results["gold_A"]["n"] == 12 and len(results["gold_B"]["ci95"]) == 2
    assert results["anatomy/acc"]["n"] == 6


def test_table_shows_per_subject_accuracy_and_letters_with_intervals(data_dir, capsys):
    assert main(_args(data_dir)) == 0
    out = capsys.readouterr().out
    assert "predicted_A" in out and "mmlu: details" in out
    details = out[out.index("mmlu: details"):]
    for name in ("anatomy/acc", "virology/acc", "gold_A", "95% interval"):
        assert name in details
    assert "[" in details and "0.5000" in details  # gold_A = 0.5 with its interval


def test_samples_rebuild_the_scored_prompt(data_dir, tmp_path, monkeypatch):
    scored = []
    real = mmlu.make_requests

    def recording(tokenizer, context, continuations):
        scored.append(context)
        return real(tokenizer, context, continuations)

    monkeypatch.setattr(mmlu, "make_requests", recording)
    assert main(_args(data_dir, "--output", str(tmp_path / "out"))) == 0
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples_mmlu.jsonl").read_text().splitlines()]
    dev = {}
    for subject in ("anatomy", "virology"):
        items, _ = mmlu.load_split([subject], "dev", data_dir)
        dev.update({item["id"]: item for item in items[subject]})
    rebuilt = [mmlu.build_prompt({"subject": s["subject"], "question": s["question"], "choices": s["choices"]},
                                 [dev[i] for i in s["fewshot"]]) for s in samples]
    assert rebuilt == scored and len(samples) == 12 and samples[0]["fewshot"] == ["anatomy/0", "anatomy/1"]


def test_json_mode_gives_standard_output_back_to_progress_afterwards(data_dir, capsys, monkeypatch):
    from zoo.progress import track

    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")
    assert main(["eval", "--list", "--json"]) == 0
    capsys.readouterr()
    list(track([1], "after"))
    assert "after: done" in capsys.readouterr().out
