"""A missing local model folder is named with the recipe that writes it, not as a failed hub id."""
from __future__ import annotations

from pathlib import Path

import pytest

from zoo.errors import ConfigError
from zoo.local_model import check_local_model, looks_local

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, local", [
    ("runs/tiny-sft/model", True), ("./model", True), ("/abs/model", True), ("~/m", True),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", False), ("gpt2", False), ("smollm2", False), ("tiny", False),
])
def test_which_names_look_local(name, local):
    assert looks_local(name) is local


def test_the_tiny_grpo_start_names_the_sft_recipe(monkeypatch, tmp_path):
    """configs/tiny/sft.yaml has output_dir runs/tiny-sft, so it writes runs/tiny-sft/model."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError) as caught:
        check_local_model("runs/tiny-sft/model-that-is-not-there", configs=tmp_path)
    assert "does not exist" in str(caught.value) and "run " not in str(caught.value)
    if (ROOT / "runs" / "tiny-sft" / "model").exists():
        pytest.skip("runs/tiny-sft/model exists in this checkout")
    with pytest.raises(ConfigError) as caught:
        check_local_model("runs/tiny-sft/model")
    assert str(caught.value) == ("model.name = 'runs/tiny-sft/model': runs/tiny-sft/model does not exist yet; run "
                                 "configs/tiny/sft.yaml first (`zoo train configs/tiny/sft.yaml` writes it).")


def test_recipe_lookup_matches_the_output_dir_not_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "a.yaml").write_text("output_dir: runs/other\n")
    (tmp_path / "configs" / "b.yaml").write_text("output_dir: ./runs/mine\n")
    (tmp_path / "configs" / "broken.yaml").write_text("output_dir: [\n")
    with pytest.raises(ConfigError, match=r"run configs/b.yaml first"):
        check_local_model("runs/mine/model", "reward.model", only_with_recipe=True)
    check_local_model("runs/unknown/model", only_with_recipe=True)  # no recipe: the caller's message
    (tmp_path / "runs" / "mine" / "model").mkdir(parents=True)
    check_local_model("runs/mine/model")  # present: nothing to say
    check_local_model("org/absent")  # a hub id is transformers' business


def test_model_loading_checks_first(monkeypatch):
    from zoo.config import ModelConfig
    from zoo.models import load_tokenizer

    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=r"runs/never-trained/model does not exist"):
        load_tokenizer(ModelConfig(name="runs/never-trained/model"))
