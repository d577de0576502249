"""``zoo eval`` end to end on the tiny model and a small local copy of the release files."""
from __future__ import annotations

import json

import pytest

from zoo.cli import main

DEV = "".join(f"Dev question {i}?,one,two,three,four,{'ABCD'[i % 4]}\n" for i in range(5))
TEST = 'What is 2+2?,3,4,5,6,B\n"A question, with a comma?",yes,no,maybe,never,A\nLast one?,w,x,y,z,D\n'
ARC = [{"query": "Question: Which is a gas?", "choices": ["iron", "oxygen", "wood", "salt"], "gold": 1},
       {"query": "Question: What melts ice?", "choices": ["heat", "cold", "dark", "wind"], "gold": 0}]


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    for split, text in (("dev", DEV), ("test", TEST)):
        (root / "mmlu" / split).mkdir(parents=True)
        (root / "mmlu" / split / f"anatomy_{split}.csv").write_text(text, encoding="utf-8")
    (root / "arc").mkdir()
    (root / "arc" / "arc_easy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ARC), encoding="utf-8")
    return root


def test_eval_writes_results_and_samples(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["eval", "--model", "tiny", "--suites", "mmlu,arc_easy", "--data-dir", str(data_dir),
                   "--option", "mmlu.subjects=[anatomy]", "--num-fewshot", "2", "--batch-size", "2",
                   "--output", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "mmlu" in printed and "arc_easy" in printed and "acc_norm" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "tiny" and results["num_fewshot"] == 2
    assert results["suites"]["mmlu"]["num_fewshot"] == 2 and results["suites"]["arc_easy"]["num_fewshot"] == 0
    assert results["suites"]["mmlu"]["source"] == str(data_dir / "mmlu")
    mmlu = results["results"]["mmlu"]
    assert set(mmlu["acc"]) >= {"value", "stderr", "n"} and mmlu["acc"]["n"] == 3
    assert "anatomy/acc" in mmlu and "stem/acc" in mmlu
    samples = [json.loads(line) for line in (out / "samples_mmlu.jsonl").read_text().splitlines()]
    assert [s["id"] for s in samples] == ["anatomy/0", "anatomy/1", "anatomy/2"]
    assert [s["gold"] for s in samples] == [1, 0, 3]
    correct = 0
    for sample in samples:
        lls = sample["loglikelihoods"]
        assert len(lls) == 4 and sample["prediction"] == lls.index(max(lls))
        correct += sample["prediction"] == sample["gold"]
    assert mmlu["acc"]["value"] == pytest.approx(correct / 3)
    arc = [json.loads(line) for line in (out / "samples_arc_easy.jsonl").read_text().splitlines()]
    assert [s["gold"] for s in arc] == [1, 0] and all(len(s["loglikelihoods"]) == 4 for s in arc)


def test_eval_reports_user_errors_without_traceback(data_dir, tmp_path, capsys):
    (data_dir / "mmlu" / "test" / "anatomy_test.csv").write_text("Q?,a,b,c,d,A\nQ2?,a,b,c,d,F\n")
    status = main(["eval", "--model", "tiny", "--suites", "mmlu", "--data-dir", str(data_dir),
                   "--option", "mmlu.subjects=[anatomy]"])
    assert status == 2
    error = capsys.readouterr().err  # rich wraps long lines, at spaces or inside a long path
    assert "anatomy_test.csv, line" in error.replace("\n", "") and "line 2" in " ".join(error.split())
    assert "Traceback" not in error

    assert main(["eval", "--model", "tiny", "--suites", "mmlu,arc_eazy"]) == 2
    assert "did you mean 'arc_easy'" in capsys.readouterr().err.replace("\n", " ")
    assert main(["eval", "--model", "tiny", "--suites", "arc_easy", "--num-fewshot", "3"]) == 2
    assert "none of the selected suites" in capsys.readouterr().err.replace("\n", " ")
    assert main(["eval", "--model", "tiny", "--suites", "mmlu", "--option", "mmlu.subject=[anatomy]"]) == 2
    assert "did you mean 'subjects'" in capsys.readouterr().err.replace("\n", " ")


def test_eval_lists_the_suites(capsys):
    assert main(["eval", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("mmlu", "arc_easy", "arc_challenge", "hellaswag", "truthfulqa_mc1", "truthfulqa_mc2", "preference",
                 "perplexity", "generation"):
        assert name in listed


def test_eval_layouts_agree_and_the_chosen_one_is_recorded(data_dir, tmp_path, monkeypatch):
    from zoo.eval import loglik

    used = []
    original = loglik.LoglikScorer.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        used.append(self.blocks)

    monkeypatch.setattr(loglik.LoglikScorer, "__init__", recording)
    samples = {}
    for layout in ("blocks", "batched"):
        out = tmp_path / layout
        assert main(["eval", "--model", "tiny", "--suites", "mmlu,arc_easy", "--data-dir", str(data_dir),
                     "--option", "mmlu.subjects=[anatomy]", "--num-fewshot", "2", "--output", str(out),
                     "--layout", layout]) == 0
        assert json.loads((out / "results.json").read_text())["layout"] == layout
        samples[layout] = [json.loads(line) for suite in ("mmlu", "arc_easy")
                           for line in (out / f"samples_{suite}.jsonl").read_text().splitlines()]
    assert used == [True, True, False, False]  # two suites per run
    for a, b in zip(samples["blocks"], samples["batched"]):
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-4)
        assert a["prediction"] == b["prediction"]
