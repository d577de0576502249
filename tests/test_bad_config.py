"""Bad configs fail before any model loads, with one message naming the key (and a suggestion)."""
from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from zoo import cli
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.planning import plan_run
from zoo.registry import get_registry

BASE = {"algorithm": "dpo", "model": {"name": "tiny"}, "data": {"max_length": 64, "max_prompt_length": 32},
        "train": {"progress_bar": False}}


def _load(*overrides: str, raw: dict | None = None):
    """The config, loaded and planned (checked against its algorithm) as ``zoo train`` does."""
    return plan_run(load_config(raw=yaml.safe_load(yaml.safe_dump(raw or BASE)), overrides=list(overrides))).config


@pytest.mark.parametrize(("override", "named", "hint"), [
    ("train.learning_rat=0.1", "train.learning_rat", "did you mean 'learning_rate'"),
    ("algorithm_args.betta=0.1", "algorithm_args.betta", "did you mean 'beta'"),
    ("trian.batch_size=4", "trian", "did you mean 'train'"),
    ("algorithm=dop", "dop", "did you mean 'dpo'"),
    ("data.on_bad_rows=skipp", "data.on_bad_rows", "did you mean 'skip'"),
])
def test_unknown_names_are_named_with_a_suggestion(override, named, hint):
    with pytest.raises(ConfigError) as error:
        _load(override)
    assert named in str(error.value) and hint in str(error.value)


@pytest.mark.parametrize(("override", "named", "expected"), [
    ("train.batch_size=four", "train.batch_size", "expected an integer"),
    ("train.max_steps=1.5", "train.max_steps", "expected an integer"),
    ("train.progress_bar=maybe", "train.progress_bar", "expected true or false"),
    ("train.learning_rate=[1]", "train.learning_rate", "expected a number"),
    ("train.learning_rate=.nan", "train.learning_rate", "finite"),
    ("data.max_length=true", "data.max_length", "expected an integer"),
    ("model=tiny", "model", "expected a mapping"),
    ("train.adam_betas=0.9", "train.adam_betas", "expected a list"),
])
def test_wrong_types_name_the_key(override, named, expected):
    with pytest.raises(ConfigError, match=expected) as error:
        _load(override)
    assert str(error.value).startswith(named)


@pytest.mark.parametrize(("overrides", "named"), [
    (["algorithm_args.beta=0"], "algorithm_args.beta"),
    (["algorithm_args.beta=-1"], "algorithm_args.beta"),
    (["algorithm_args.beta=.inf"], "algorithm_args.beta"),
    (["algorithm_args.label_smoothing=0.5"], "algorithm_args.label_smoothing"),
    (["algorithm_args.loss=ipo", "algorithm_args.label_smoothing=0.1"], "algorithm_args.label_smoothing"),
    (["algorithm=ppo", "reward.function=tiny_sentiment", "algorithm_args.clip_range=0"], "algorithm_args.clip_range"),
    (["algorithm=ppo", "reward.function=tiny_sentiment", "algorithm_args.clip_range=-0.2"],
     "algorithm_args.clip_range"),
    (["algorithm=rejection_sampling", "reward.function=tiny_sentiment", "algorithm_args.n=0"], "algorithm_args.n"),
    (["train.batch_size=0"], "train.batch_size"),
    (["train.learning_rate=0"], "train.learning_rate"),
    (["train.learning_rate=1e300"], "train.learning_rate"),  # overflows AdamW's float32 step
    (["train.batch_size=99999999999999999999"], "train.batch_size"),  # beyond int64: failed inside torch
    (["train.max_steps=99999999999999999999"], "train.max_steps"),
    (["train.seed=99999999999999999999"], "train.seed"),  # beyond NumPy's seed range
    (["train.seed=-1"], "train.seed"),
    (["train.devices=-3"], "train.devices"),
    (["train.devices=0"], "train.devices"),
    (["train.devices=abc"], "train.devices"),
    (["train.max_steps=0"], "train.max_steps"),
    (["train.warmup_steps=-1"], "train.warmup_steps"),
    (["train.weight_decay=-0.1"], "train.weight_decay"),
    (["train.adam_betas=[0.9, 1.0]"], "train.adam_betas"),
    (["train.gradient_clip_val=0"], "train.gradient_clip_val"),
    (["train.val_check_interval=0"], "train.val_check_interval"),
    (["train.val_check_interval=1.5"], "train.val_check_interval"),
    (["train.checkpoint_every_n_steps=0"], "train.checkpoint_every_n_steps"),
    (["train.keep_last=0"], "train.keep_last"),
    (["train.max_nonfinite_steps=-1"], "train.max_nonfinite_steps"),
    (["train.precision=32-mixed"], "train.precision"),
    (["train.eval_batch_size=0"], "train.eval_batch_size"),
    (["data.max_prompt_length=0"], "data.max_prompt_length"),
    (["data.max_length=1"], "data.max_length"),
    (["data.max_prompt_length=64"], "data.max_prompt_length"),
    (["data.eval_fraction=1.0"], "data.eval_fraction"),
    (["data.builtin_size=0"], "data.builtin_size"),
    (["data.max_examples=0"], "data.max_examples"),
    (["data.num_workers=-1"], "data.num_workers"),
    (["data.max_length=600", "data.max_prompt_length=32"], "data.max_length"),
    (["model.tiny.hidden_size=30"], "model.tiny.hidden_size"),
    (["model.tiny.num_key_value_heads=3"], "model.tiny.num_key_value_heads"),
    (["model.lora.r=0"], "model.lora.r"),
    (["model.lora.dropout=1.0"], "model.lora.dropout"),
    (["model.lora.target_modules=[]"], "model.lora.target_modules"),
])
def test_out_of_range_values_name_the_key(overrides, named):
    with pytest.raises(ConfigError) as error:
        _load(*overrides)
    assert named in str(error.value)


@pytest.mark.parametrize(("overrides", "named"), [
    (["algorithm=ppo"], "reward.function"),  # needs a reward, none configured
    (["algorithm=ppo", "reward.args={scale: 2}"], "reward.function"),
    (["reward.function=tiny_sentiment", "reward.model=runs/rm"], "reward.model"),
    (["reward.args={scale: 2}"], "reward.args"),  # arguments that nothing would read
    (["model.lora.r=8", "model.reference=tiny"], "model.reference"),
])
def test_incompatible_combinations_name_the_keys(overrides, named):
    with pytest.raises(ConfigError) as error:
        _load(*overrides)
    assert named in str(error.value)


@pytest.mark.parametrize("overrides", [
    ["data.group_by_length=true", "train.devices=2", "train.strategy=ddp"],
    ["data.group_by_length=true", "train.num_nodes=2"],
])
def test_length_grouping_combines_with_several_processes(overrides):
    """Each process takes its share of every length-grouped global batch (tests/test_ddp.py)."""
    config = _load(*overrides)
    assert config.data.group_by_length


def _numeric_fields(args_cls):
    hints = typing.get_type_hints(args_cls)
    for f in dataclasses.fields(args_cls):
        options = typing.get_args(hints[f.name]) or (hints[f.name],)
        if any(option in (int, float) for option in options):
            yield f.name


@pytest.mark.parametrize("algorithm", get_registry().names("algorithms"))
def test_every_algorithms_numeric_hyperparameters_reject_nan_and_text(algorithm):
    """Generic guard for every registered algorithm: a NaN or a word never reaches a loss."""
    algorithm_cls = get_registry().algorithm(algorithm)
    for name in _numeric_fields(algorithm_cls.Args):
        for bad in (float("nan"), "many"):
            with pytest.raises(ConfigError, match=rf"algorithm_args\.{name}\b"):
                algorithm_cls.parse_args({name: bad})


def test_cli_reports_a_config_error_in_one_paragraph_before_any_model_loads(tmp_path, capsys, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded for an invalid config")

    monkeypatch.setattr("zoo.models.load_causal_lm", no_model)
    monkeypatch.setattr("zoo.run.load_tokenizer", no_model)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({**BASE, "output_dir": str(tmp_path / "out"),
                                      "algorithm_args": {"beta": -1}}))
    assert cli.main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "algorithm_args.beta = -1" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1  # one paragraph
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("algorithm: [dpo", "not valid YAML"),
    ("- algorithm: dpo\n", "mapping at the top level"),
    (b"algorithm: \xff\xfe dpo\n", "cannot be read"),
    ("algorithm: dpo\ntrain:\n  batch_size: 4\n  max_steps: 5\n  batch_size: 8\n",
     r"line 5, column 3\): duplicated key 'batch_size' \(first given on line 3\)"),
    ("algorithm: dpo\nalgorithm: sft\n", r"line 2.*duplicated key 'algorithm'"),
    ("", "is empty; a run config sets at least algorithm"),
    ("# only a comment\n", "is empty"),
    ("train:\n  max_steps: 3\n", "does not set algorithm"),
])
def test_unreadable_config_files(tmp_path, text, expected):
    path = tmp_path / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=expected) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_yaml_1_1_words_stay_words_where_a_key_takes_a_word(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("algorithm: dpo\noutput_dir: off\ntrain:\n  reference_cache: off\n  progress_bar: off\n"
                    "  deterministic: yes\ndata:\n  train_on_prompt: No\nevaluation:\n  suites: [no, on]\n")
    config = load_config(path, ["model.name=yes"])
    assert config.train.reference_cache == "off" and config.output_dir == "off" and config.model.name == "yes"
    assert config.evaluation.suites == ["no", "on"]
    assert config.train.progress_bar is False and config.train.deterministic is True
    assert config.data.train_on_prompt is False
    assert load_config(path, ["train.reference_cache=off", "train.progress_bar=on"]).train.progress_bar is True


def test_missing_config_file_and_malformed_override(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        _load("train.batch_size")



def test_lora_target_module_the_model_lacks_names_the_key_and_the_choices(tmp_path, tiny_run):
    """Only the model knows its module names, so this is checked once it is built, before anything is written."""
    from zoo.training_guard import train

    raw = tiny_run("sft", tmp_path / "run", steps=1, model={"lora": {"target_modules": ["qq_proj"]}})
    with pytest.raises(ConfigError, match=r"model\.lora\.target_modules = \['qq_proj'\].*q_proj") as error:
        train(load_config(raw=raw))
    assert "Linear modules of 'tiny'" in str(error.value)
    assert not (tmp_path / "run").exists()  # created only once everything is checked
