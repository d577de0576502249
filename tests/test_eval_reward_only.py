"""`zoo eval` scored by a reward model alone: no --model needed (nor loaded), and bad pairs can be skipped."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo
from zoo.cli import main
from zoo.config import ModelConfig, TinyModelConfig
from zoo.models import load_scalar_model

PAIRS = [{"prompt": f"Question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"} for i in range(3)]
IDENTICAL = {"prompt": "Same?", "chosen": "same", "rejected": "same"}


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory, tokenizer) -> Path:
    model = load_scalar_model(ModelConfig(tiny=TinyModelConfig(hidden_size=32, intermediate_size=64,
                                                               num_attention_heads=2, num_key_value_heads=1)),
                              tokenizer)
    path = tmp_path_factory.mktemp("rm") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _pairs(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_reward_model_scores_without_a_model_and_bad_pairs_can_be_skipped(tmp_path, reward_model, monkeypatch,
                                                                            capsys):
    def no_policy(*args, **kwargs):
        raise AssertionError("the policy was loaded although the reward model does all the scoring")

    monkeypatch.setattr(zoo, "load_causal_lm", no_policy)
    data = _pairs(tmp_path, [PAIRS[0], IDENTICAL, *PAIRS[1:]])
    argv = ["eval", "--suites", "preference", "--option", f"preference.data={data}", "--reward-model",
            str(reward_model), "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "row 2" in err and "preference.on_bad_rows=skip" in err and "Traceback" not in err
    assert main([*argv, "--option", "preference.on_bad_rows=skip"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    settings = results["suites"]["preference"]
    assert settings["items"] == 3 and settings["skipped_rows"] == 1 and settings["scorer"] == "reward"


def test_suites_that_score_the_model_still_need_it(tmp_path, reward_model, capsys):
    data = _pairs(tmp_path, PAIRS)
    assert main(["eval", "--suites", "preference", "--option", f"preference.data={data}"]) == 2
    assert "zoo eval needs --model: the suite(s) preference score the model itself" in capsys.readouterr().err
    assert main(["eval", "--suites", "preference", "--option", f"preference.data={data}", "--option",
                 "preference.scorer=logprob", "--reward-model", str(reward_model)]) == 2
    assert "needs --model" in capsys.readouterr().err
