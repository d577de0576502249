"""Every saved model folder carries a model card: base model, algorithm, hyperparameters, data,
held-out metrics and versions, with Hub metadata a model page reads."""
from __future__ import annotations

import json

import yaml

from zoo.config import load_config
from zoo.model_card import render_card


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_card_of_a_lora_dpo_run_on_a_hub_model():
    config = load_config(raw={
        "algorithm": "dpo", "algorithm_args": {"beta": 0.25},
        "model": {"name": "HuggingFaceTB/SmolLM2-135M-Instruct", "lora": {"r": 4, "alpha": 8}},
        "data": {"train": "Anthropic/hh-rlhf/harmless-base", "eval_fraction": 0.2},
        "train": {"learning_rate": 5e-5, "batch_size": 2, "max_steps": 7},
        "output_dir": "runs/smol-dpo",
    })
    summary = {"steps": 7, "train_seconds": 12.3, "data": ["train: 80/80 rows kept, 0 truncated"],
               "before": {"val/loss": 0.6931, "val/reward_accuracy": 0.5},
               "after": {"val/loss": 0.61, "val/reward_accuracy": 0.75}}
    card = render_card(config, summary, "DPO: logistic loss on preference margins")
    meta = _front_matter(card)
    assert meta == {"library_name": "transformers", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                    "tags": ["alignment-zoo", "dpo", "lora"], "datasets": ["Anthropic/hh-rlhf"]}
    assert "# smol-dpo" in card
    assert "- algorithm: `dpo`: DPO: logistic loss on preference margins" in card
    assert "- optimizer steps: 7, 12 s of training" in card
    hyper = yaml.safe_load(card.split("```yaml\n")[1].split("```")[0])
    assert hyper["algorithm_args"] == {"beta": 0.25} and hyper["learning_rate"] == 5e-5
    assert hyper["max_steps"] == 7 and "max_epochs" not in hyper
    assert hyper["lora"] == {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    assert "| val/reward_accuracy | 0.5 | 0.75 |" in card and "| val/loss | 0.6931 | 0.61 |" in card
    assert "- held-out data: 0.2 of the training rows" in card and "- train: 80/80 rows kept" in card
    assert "adapter/" in card  # a LoRA folder says which weights are merged
    assert "- alignment-zoo: " in card and "- transformers: " in card


def test_a_local_start_is_no_hub_base_model_and_no_metrics_are_said_plainly():
    config = load_config(raw={"algorithm": "sft", "model": {"name": "tiny"}, "data": {"eval_fraction": 0.0},
                              "output_dir": "runs/x"})
    card = render_card(config, {"steps": 3})
    meta = _front_matter(card)
    assert "base_model" not in meta and "datasets" not in meta and meta["tags"] == ["alignment-zoo", "sft"]
    assert "built-in `tiny` model" in card and "No held-out data" in card and "adapter/" not in card
    assert "AutoModelForCausalLM.from_pretrained" in card
    reward = render_card(config, {}, scores=True)
    assert "AutoModelForSequenceClassification.from_pretrained" in reward and "AutoModelForCausalLM" not in reward


def test_a_finished_run_writes_the_card_with_its_own_numbers(tmp_path, tiny_run):
    from zoo.training_guard import train

    out = tmp_path / "run"
    train(load_config(raw=tiny_run("dpo", out, steps=2)))
    card = (out / "model" / "README.md").read_text()
    summary = json.loads((out / "metrics.json").read_text())
    assert "- algorithm: `dpo`" in card and "- optimizer steps: 2" in card
    loss_row = f"| val/loss | {summary['before']['val/loss']:.4g} | {summary['after']['val/loss']:.4g} |"
    assert loss_row in card
