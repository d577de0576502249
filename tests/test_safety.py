"""Safety: no remote code unless asked, no code in configs or checkpoints, weights as safetensors,
output paths that stay inside the output directory, and no earlier output lost to a user error.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from zoo import models
from zoo.config import ModelConfig, load_config
from zoo.errors import ConfigError, DataError
from zoo.paths import contained_path, is_safe_name, require_safe_name
from zoo.training_guard import train

ROOT = Path(__file__).resolve().parents[1]


class _Refused(Exception):
    pass


@pytest.fixture
def hub_calls(monkeypatch):
    """Record the keyword arguments of every from_pretrained call instead of loading anything."""
    calls = []

    def record(name, **kwargs):
        calls.append((name, kwargs))
        raise _Refused

    monkeypatch.setattr(models.AutoTokenizer, "from_pretrained", record)
    monkeypatch.setattr(models.AutoModelForCausalLM, "from_pretrained", record)
    return calls


def test_remote_code_is_off_by_default_and_passed_through_when_configured(hub_calls):
    assert ModelConfig().trust_remote_code is False
    default = load_config(raw={"algorithm": "sft", "model": {"name": "org/model"}}).model
    with pytest.raises(_Refused):
        models.load_tokenizer(default)
    with pytest.raises(_Refused):
        models.load_causal_lm(default, tokenizer=None)
    assert [kwargs["trust_remote_code"] for _, kwargs in hub_calls] == [False, False]

    trusted = load_config(raw={"algorithm": "sft", "model": {"name": "org/model", "trust_remote_code": True}}).model
    with pytest.raises(_Refused):
        models.load_tokenizer(trusted)
    with pytest.raises(_Refused):
        models.load_causal_lm(trusted, tokenizer=None)
    assert [kwargs["trust_remote_code"] for _, kwargs in hub_calls[2:]] == [True, True]


def test_yaml_with_a_python_tag_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"algorithm: !!python/object/apply:os.mkdir ['{marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        load_config(config)
    assert str(config) in str(error.value)
    assert not marker.exists()


def test_an_override_with_a_python_tag_stays_a_plain_string(tmp_path):
    marker = tmp_path / "ran"
    text = f"!!python/object/apply:os.mkdir ['{marker}']"
    config = load_config(raw={"algorithm": "sft"}, overrides=[f"output_dir={text}"])
    assert config.output_dir == text and not marker.exists()


def test_source_never_loads_code_from_weights_or_configs():
    """Every torch.load passes weights_only=True; YAML only through safe_load; no pickle, no remote code."""
    offenders = []
    for path in [*ROOT.joinpath("zoo").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"torch\.load\(([^()]|\([^()]*\))*\)", text):
            if "weights_only=True" not in match.group(0):
                offenders.append(f"{path.name}: {match.group(0)}")
        for pattern in (r"yaml\.(load|unsafe_load|full_load)\(", r"\bpickle\.loads?\(", r"trust_remote_code=True",
                        r"safe_serialization=False"):
            offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert offenders == []


def test_weights_are_written_as_safetensors_and_checkpoints_load_weights_only(tmp_path, tiny_run):
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("sft", run, steps=2, train={"checkpoint_every_n_steps": 1})))
    written = sorted(p.name for p in (run / "model").iterdir())
    assert "model.safetensors" in written
    assert not [name for name in written if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    for checkpoint in (run / "checkpoints").glob("*.ckpt"):
        assert torch.load(checkpoint, weights_only=True)["global_step"] >= 1


def test_a_non_empty_output_dir_is_not_touched_without_overwrite(tmp_path, tiny_run):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="exists and is not empty; pass --overwrite"):
        train(load_config(raw=tiny_run("sft", run, steps=1)))
    assert [p.name for p in run.iterdir()] == ["notes.txt"] and (run / "notes.txt").read_text() == "keep me"


def test_an_output_dir_that_is_a_file_or_under_one_is_refused(tmp_path, tiny_run):
    target = tmp_path / "run"
    target.write_text("a file")
    with pytest.raises(ConfigError, match="is a file"):
        train(load_config(raw=tiny_run("sft", target, steps=1)))
    with pytest.raises(ConfigError, match="cannot be created"):
        train(load_config(raw=tiny_run("sft", target / "sub", steps=1)))
    assert target.read_text() == "a file"


def test_overwrite_with_bad_data_keeps_the_earlier_run(tmp_path, tiny_run):
    """--overwrite replaces a run only once the new config and data have been checked."""
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("sft", run, steps=1, train={"checkpoint_every_n_steps": 1})))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p"}) + "\n")
    with pytest.raises(DataError, match="row 1"):
        train(load_config(raw=tiny_run("sft", run, steps=1, data={"train": str(bad)})), overwrite=True)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_overwrite_removes_the_old_runs_checkpoints_so_resume_cannot_mix_runs(tmp_path, tiny_run):
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("sft", run, steps=2, train={"checkpoint_every_n_steps": 1})))
    assert (run / "checkpoints" / "last.ckpt").exists()
    train(load_config(raw=tiny_run("sft", run, steps=1)), overwrite=True)
    assert not (run / "checkpoints").exists()
    assert json.loads((run / "metrics.json").read_text())["steps"] == 1


@pytest.mark.parametrize("name", ["dpo", "slic_hf", "arc_easy", "v1.2-beta", "A1"])
def test_safe_names(name):
    assert is_safe_name(name) and require_safe_name(name, "suite") == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a\\b", ".hidden", "..", "/etc", "a b", "ü", None, 3, "x" * 129])
def test_unsafe_names(name):
    assert not is_safe_name(name)
    with pytest.raises(ConfigError, match="not a safe name"):
        require_safe_name(name, "suite")


def test_contained_path_refuses_to_leave_the_root(tmp_path):
    assert contained_path(tmp_path, "samples", "arc.jsonl") == tmp_path.resolve() / "samples" / "arc.jsonl"
    for parts in (("..", "x"), ("/etc/passwd",), ("a", "..", "..", "b")):
        with pytest.raises(ConfigError, match="would leave the output directory"):
            contained_path(tmp_path, *parts)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "link")
    with pytest.raises(ConfigError, match="would leave the output directory"):
        contained_path(tmp_path, "link", "file.txt")


def test_a_model_with_pickle_weights_is_refused_without_advising_weights_only_false(tmp_path, tokenizer):
    from zoo.tiny import tiny_model

    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, max_position_embeddings=64, seed=0)
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({**model.state_dict(), "payload": Payload()}, tmp_path / "m" / "pytorch_model.bin")
    for load in (models.load_causal_lm, models.load_scalar_model):
        with pytest.raises(ConfigError, match="pickle file .* not loaded: unpickling it could run code") as error:
            load(ModelConfig(name=str(tmp_path / "m")), tokenizer)
        assert "weights_only=False" not in str(error.value) and "weights_only" not in str(error.value)
    assert not marker.exists()
