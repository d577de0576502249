"""The training callback runs suites every N steps and logs their metrics."""
from __future__ import annotations

import csv

import pytest

from zoo.eval import evaluate
from zoo.eval.callback import SuiteEvalCallback


@pytest.fixture
def mmlu_dir(tmp_path):
    root = tmp_path / "data" / "mmlu"
    (root / "dev").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "dev" / "virology_dev.csv").write_text("What is a virus?,a cell,a particle,a plant,a rock,B\n")
    (root / "test" / "virology_test.csv").write_text("Which is smallest?,virus,cell,mouse,tree,A\n"
                                                     "Which infects bacteria?,phage,fern,moss,yeast,A\n")
    return tmp_path / "data"


def test_callback_logs_suite_metrics_during_training(tmp_path, mmlu_dir, tiny_run):
    from zoo.config import load_config
    from zoo.run import build_run

    config = load_config(raw=tiny_run("sft", tmp_path / "run", steps=3))
    callback = SuiteEvalCallback(["mmlu"], every_n_steps=2, data_dir=mmlu_dir, num_fewshot=1,
                                 options={"mmlu": {"subjects": ["virology"]}})
    run = build_run(config, callbacks=[callback])
    run.trainer.fit(run.module, datamodule=run.datamodule)

    # Step 2 (every 2 steps) and step 3 (the end of training).
    assert [step for step, _ in callback.history] == [2, 3]
    logged = callback.history[-1][1]
    assert set(logged) == {"eval/mmlu/acc", "eval/mmlu/acc_macro", "eval/mmlu/other/acc", "eval/mmlu/other/acc_macro",
                           *(f"eval/mmlu/predicted_{letter}" for letter in "ABCD")}
    direct = evaluate(run.module.policy, run.tokenizer, ["mmlu"], data_dir=mmlu_dir, num_fewshot=1,
                      options={"mmlu": {"subjects": ["virology"]}})
    assert logged["eval/mmlu/acc"] == pytest.approx(direct["mmlu"]["acc"]["value"])
    assert float(run.trainer.callback_metrics["eval/mmlu/acc"]) == pytest.approx(logged["eval/mmlu/acc"])
    with open(tmp_path / "run" / "logs" / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("eval/mmlu/acc")]
    assert [int(row["step"]) for row in rows] == [2, 3]
    assert float(rows[-1]["eval/mmlu/acc"]) == pytest.approx(logged["eval/mmlu/acc"])
    assert run.module.policy.training  # the evaluation restored training mode


def test_run_config_evaluation_section(tmp_path, mmlu_dir, tiny_run):
    from zoo.config import load_config
    from zoo.errors import ConfigError
    from zoo.training_guard import train

    evaluation = {"suites": ["mmlu"], "every_n_steps": 1, "data_dir": str(mmlu_dir), "num_fewshot": 0,
                  "options": {"mmlu": {"subjects": ["virology"]}}}
    train(load_config(raw=tiny_run("sft", tmp_path / "run", steps=2, evaluation=evaluation)))
    with open(tmp_path / "run" / "logs" / "metrics.csv", newline="") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle) if row.get("eval/mmlu/acc")]
    assert steps == [1, 2]
    bad = dict(evaluation, options={"mmlu": {"subject": ["virology"]}})
    with pytest.raises(ConfigError, match="did you mean 'subjects'"):
        train(load_config(raw=tiny_run("sft", tmp_path / "bad", steps=2, evaluation=bad)))
