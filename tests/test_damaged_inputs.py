"""Damaged inputs and impossible settings are one paragraph naming what to fix, never a traceback."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from zoo import cli
from zoo.config import ModelConfig, load_config
from zoo.errors import ConfigError
from zoo.training_guard import train


def _config(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def saved_model(tmp_path, tiny_run) -> Path:
    train(load_config(raw=tiny_run("sft", tmp_path / "saved", steps=1)))
    return tmp_path / "saved" / "model"


def test_a_truncated_model_safetensors_is_a_clear_error_for_train_and_eval(tmp_path, tiny_run, saved_model, capsys):
    weights = saved_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    raw = tiny_run("sft", tmp_path / "run", steps=1)
    raw["model"] = {"name": str(saved_model)}
    assert cli.main(["train", str(_config(tmp_path, raw))]) == 2
    err = capsys.readouterr().err
    assert f"model.name = '{saved_model}': could not load it" in err and "Traceback" not in err
    (tmp_path / "arc").mkdir()
    (tmp_path / "arc" / "arc_easy.jsonl").write_text('{"query": "Q?", "choices": ["a", "b"], "gold": 0}\n')
    assert cli.main(["eval", "--model", str(saved_model), "--suites", "arc_easy", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "could not load it" in err and "Traceback" not in err


def test_a_gguf_file_cut_short_is_a_clear_error(tmp_path, tiny_run):
    from zoo.gguf import PACKAGED_MODELS

    try:
        whole = PACKAGED_MODELS["smollm2"].path("model.name")
    except ConfigError:
        pytest.skip("the packaged SmolLM2 GGUF is not installed")
    cut = tmp_path / "cut.gguf"
    with open(whole, "rb") as handle:
        cut.write_bytes(handle.read(100))
    raw = tiny_run("sft", tmp_path / "run", steps=1)
    raw["model"] = {"name": str(cut)}
    with pytest.raises(ConfigError, match=r"transformers could not load this GGUF file .*complete GGUF model"):
        train(load_config(raw=raw))
    assert not (tmp_path / "run").exists()


def test_a_tokenizer_without_pad_and_eos_is_refused(tmp_path, monkeypatch):
    import zoo.models
    from zoo.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = None
    tokenizer.eos_token = None
    monkeypatch.setattr(zoo.models.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    with pytest.raises(ConfigError, match="neither a pad token nor an EOS token"):
        zoo.models.load_tokenizer(ModelConfig(name=str(tmp_path)))


@pytest.mark.parametrize("where", ["too_long", "symlink_loop"])
def test_an_output_dir_the_file_system_cannot_hold_is_refused(tmp_path, tiny_run, capsys, where):
    if where == "too_long":
        target = tmp_path / ("x" * 300) / "run"
        expected = "longer than the"
    else:
        os.symlink(tmp_path / "a", tmp_path / "b")
        os.symlink(tmp_path / "b", tmp_path / "a")
        target = tmp_path / "a" / "run"
        expected = "symbolic-link loop"
    assert cli.main(["train", str(_config(tmp_path, tiny_run("sft", target, steps=1)))]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_greedy_pairs_with_several_samples_per_prompt_are_refused():
    from zoo.app.pairs import load_pairs_config

    raw = {"prompts": "builtin:tiny_prompts", "models": [{"name": "tiny"}], "reward": {"function": "tiny_sentiment"},
           "mode": "ranked", "sampling": {"samples_per_prompt": 4, "temperature": 0}, "output": "x.jsonl"}
    with pytest.raises(ConfigError, match="greedy decoding: the 4 samples per prompt of models\\[0\\]"):
        load_pairs_config(raw=raw)
    raw["sampling"]["temperature"] = 0.7
    load_pairs_config(raw=raw)


def test_the_gguf_conversion_cache_is_readable_by_other_users(tmp_path, monkeypatch):
    """A shared $ZOO_CACHE_DIR: the converted folder and its files get the modes the umask allows (0755 / 0644)."""
    import transformers

    import zoo.gguf
    from zoo.tiny import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    target = tmp_path / "cache" / "gguf" / "m-0123"
    previous = os.umask(0o022)
    try:
        zoo.gguf.convert(source, target)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in target.iterdir()}
    assert modes["model.safetensors"] == 0o644 and set(modes.values()) == {0o644}
