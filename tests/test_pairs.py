"""``zoo pairs``: row construction for each mode, the written files as training data, config errors."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from zoo.app.pairs import Sample, best_vs_random_row, load_pairs_config, make_pairs, ranked_row, strong_vs_weak_rows
from zoo.cli import main
from zoo.config import DataConfig, ModelConfig, RewardConfig, TinyModelConfig
from zoo.data.dataset import load_examples
from zoo.errors import ConfigError, ZooError
from zoo.models import load_scalar_model
from zoo.rewards.loading import load_reward_source
from tiny_policy import one_torch_thread  # noqa: F401  (autouse)

ROOT = Path(__file__).resolve().parents[1]


def test_best_vs_random_picks_the_best_and_a_strictly_worse_one():
    samples = [Sample("a", 0, 1.0), Sample("b", 0, 3.0), Sample("c", 0, 3.0), Sample("d", 0, -1.0),
               Sample("b", 0, 3.0), Sample("  ", 0, 9.0)]
    rejected = set()
    for seed in range(20):
        row = best_vs_random_row("p", samples, random.Random(seed))
        assert row["chosen"] == "b" and row["score_chosen"] == 3.0  # blank text is ignored, first best wins
        assert row["rejected"] in {"a", "d"}  # "c" ties with the best: no preference
        rejected.add(row["rejected"])
    assert rejected == {"a", "d"}  # the rejected one is drawn at random
    assert best_vs_random_row("p", [Sample("a", 0, 1.0), Sample("b", 0, 1.0)], random.Random(0)) is None
    assert best_vs_random_row("p", [Sample("a", 0, 1.0), Sample("a", 0, 2.0)], random.Random(0)) is None


def test_ranked_row_keeps_distinct_samples_with_scores():
    row = ranked_row("p", [Sample("a", 0, 1.0), Sample("b", 0, 0.0), Sample("a", 0, 5.0), Sample("", 0, 2.0)])
    assert row == {"prompt": "p", "responses": ["a", "b"], "scores": [1.0, 0.0]}
    assert ranked_row("p", [Sample("a", 0, 1.0), Sample("b", 0, 1.0)]) is None  # all tied


def test_strong_vs_weak_pairs_sample_j_of_each_model():
    samples = [Sample("s1", 0), Sample("s2", 0), Sample("w1", 1), Sample("s2", 1)]
    rows = strong_vs_weak_rows("p", samples, ["big", "small"])
    assert rows == [{"prompt": "p", "chosen": "s1", "rejected": "w1", "chosen_model": "big",
                     "rejected_model": "small"}]  # the identical second pair is dropped


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory, tokenizer) -> Path:
    """A random-init scalar model: continuous scores, so samples rarely tie."""
    model = load_scalar_model(ModelConfig(tiny=TinyModelConfig(hidden_size=32, intermediate_size=64,
                                                               num_attention_heads=2, num_key_value_heads=1)),
                              tokenizer)
    path = tmp_path_factory.mktemp("rm") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _raw(tmp_path: Path, reward_model: Path, mode: str, **extra) -> dict:
    return {"prompts": "builtin:tiny_prompts", "builtin_size": 8, "max_prompts": 6,
            "models": [{"name": "tiny", "samples_per_prompt": 3}], "reward": {"model": str(reward_model)}, "mode": mode,
            "sampling": {"max_new_tokens": 6}, "batch_size": 4, "output": str(tmp_path / f"{mode}.jsonl"), **extra}


def test_best_vs_random_file_is_pairwise_training_data(tmp_path, reward_model, tokenizer):
    config = load_pairs_config(raw=_raw(tmp_path, reward_model, "best_vs_random"))
    result = make_pairs(config)
    rows = [json.loads(line) for line in result.output.read_text().splitlines()]
    assert result.prompts == 6 and result.rows == len(rows) == 6 - result.skipped and rows
    source = load_reward_source(RewardConfig(model=str(reward_model)))
    for row in rows:
        chosen, rejected = source.score([row["prompt"]] * 2, [row["chosen"], row["rejected"]]).tolist()
        assert chosen > rejected
        assert chosen == pytest.approx(row["score_chosen"], abs=1e-5)
    data = DataConfig(max_length=64, max_prompt_length=32)
    examples, _ = load_examples(str(result.output), "train", "pairwise", data, tokenizer)
    assert len(examples) == len(rows)
    again = make_pairs(config)  # same seed, same file
    assert again.output.read_text() == result.output.read_text()


def test_scoring_reports_progress_in_the_sources_batches(monkeypatch, capsys):
    from zoo.app.pairs import score_with_progress

    class Counting:
        name, batch_size = "counting", 4

        def __init__(self):
            self.calls = []

        def score(self, prompts, responses):
            self.calls.append(len(responses))
            return torch.tensor([float(len(r)) for r in responses])

    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")
    source = Counting()
    responses = ["x" * i for i in range(10)]
    assert score_with_progress(source, ["p"] * 10, responses) == [float(i) for i in range(10)]
    assert source.calls == [4, 4, 2]
    out = capsys.readouterr().out
    assert "scoring with counting: 0/3 batches" in out and "scoring with counting: done, 3 batches" in out


def test_ranked_file_is_ranked_training_data(tmp_path, reward_model, tokenizer):
    result = make_pairs(load_pairs_config(raw=_raw(tmp_path, reward_model, "ranked")))
    rows = [json.loads(line) for line in result.output.read_text().splitlines()]
    assert rows and all(len(r["responses"]) == len(r["scores"]) >= 2 for r in rows)
    data = DataConfig(max_length=64, max_prompt_length=32)
    examples, _ = load_examples(str(result.output), "train", "ranked", data, tokenizer)
    assert [e.scores for e in examples] == [r["scores"] for r in rows]


def test_strong_vs_weak_with_two_models(tmp_path, reward_model):
    raw = _raw(tmp_path, reward_model, "strong_vs_weak",
               models=[{"name": "tiny", "samples_per_prompt": 2}, {"name": "tiny", "samples_per_prompt": 2}])
    result = make_pairs(load_pairs_config(raw=raw))
    rows = [json.loads(line) for line in result.output.read_text().splitlines()]
    assert rows and all(r["chosen_model"] == "tiny" and "score_rejected" in r for r in rows)
    assert len(rows) <= 12


def test_config_errors(tmp_path, reward_model):
    with pytest.raises(ConfigError, match="strong_vs_weak needs exactly two models"):
        load_pairs_config(raw=_raw(tmp_path, reward_model, "strong_vs_weak"))
    with pytest.raises(ConfigError, match=r"mode: ranked ranks samples by a reward"):
        load_pairs_config(raw={**_raw(tmp_path, reward_model, "ranked"), "reward": None})
    with pytest.raises(ConfigError, match=r"unknown config key 'sampling.temprature'.*did you mean 'temperature'"):
        load_pairs_config(raw={**_raw(tmp_path, reward_model, "ranked"), "sampling": {"temprature": 1.0}})
    with pytest.raises(ConfigError, match=r"mode = 'rankd'.*did you mean 'ranked'"):
        load_pairs_config(raw=_raw(tmp_path, reward_model, "rankd"))
    with pytest.raises(ConfigError, match=r"output = .*must be a .jsonl file"):
        load_pairs_config(raw={**_raw(tmp_path, reward_model, "ranked"), "output": "x.json"})


def test_shipped_pairs_config_validates():
    config = load_pairs_config(ROOT / "configs" / "tiny" / "pairs.yaml")
    assert config.models[0].name == "runs/tiny-sft/model" and config.output.startswith("runs/tiny-")
    assert (ROOT / "configs" / "tiny" / "pairs.yaml").read_text().startswith("# zoo pairs configs/tiny/pairs.yaml")


def test_cli(tmp_path, reward_model, capsys):
    config = tmp_path / "pairs.yaml"
    raw = _raw(tmp_path, reward_model, "best_vs_random")
    config.write_text(json.dumps(raw))  # JSON is YAML
    assert main(["pairs", str(config), "max_prompts=3"]) == 0
    assert "rows from 3 prompts" in capsys.readouterr().out
    assert (tmp_path / "best_vs_random.jsonl").is_file()
    assert main(["pairs", str(config), "mode=strong_vs_weak"]) == 2
    assert "needs exactly two models" in capsys.readouterr().err


def test_bad_prompt_rows_can_be_skipped_and_responses_are_not_checked(tmp_path, reward_model, capsys):
    """A prompt file needs prompts only: HH dialogues whose responses would fail as pairs still give prompts."""
    rows = [
        # chosen == rejected: no preference, but the prompt is usable.
        {"chosen": "\n\nHuman: hi\n\nAssistant: same", "rejected": "\n\nHuman: hi\n\nAssistant: same"},
        # An empty reply after the prompt, and no rejected side at all.
        {"chosen": "\n\nHuman: tell me\n\nAssistant:"},
        {"prompt": 7},  # malformed: skipped with on_bad_rows: skip
        {"prompt": "A plain prompt."},
    ]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {**_raw(tmp_path, reward_model, "ranked"), "prompts": str(path), "max_prompts": None}
    with pytest.raises(ZooError, match=r"row 3, field 'prompt'.*set on_bad_rows: skip"):
        make_pairs(load_pairs_config(raw=raw))
    result = make_pairs(load_pairs_config(raw={**raw, "on_bad_rows": "skip"}))
    assert result.prompts == 3 and result.bad_rows == 1
    written = [json.loads(line)["prompt"] for line in result.output.read_text().splitlines()]
    assert set(written) <= {"\n\nHuman: hi\n\nAssistant:", "\n\nHuman: tell me\n\nAssistant:", "A plain prompt."}
    assert main(["pairs", str(ROOT / "configs/tiny/pairs.yaml"), f"prompts={path}", "on_bad_rows=skip",
                 f"reward.model={reward_model}", "reward.function=null", "max_prompts=null",
                 "models=[{name: tiny, samples_per_prompt: 2}]", "sampling.max_new_tokens=4", "batch_size=4",
                 f"output={tmp_path / 'cli.jsonl'}"]) == 0
    assert "1 malformed prompt row(s) skipped (on_bad_rows: skip)" in capsys.readouterr().out
