"""The model card (``model/README.md``) every finished run writes next to its weights.

Laid out like the cards TRL and the Hugging Face Hub write: YAML metadata the Hub reads
(``library_name``, ``base_model`` when it is a hub id, ``tags``, ``datasets`` when they are hub
data sets), then what a reader of the folder needs: the model it started from, the algorithm and
its hyperparameters, the data, the held-out metrics before and after training, how to load it,
and the versions it was trained with. Everything comes from the run's config and its
``metrics.json`` summary, so a card never says more than the run knows.
"""
from __future__ import annotations

import importlib.metadata as metadata
import json
from pathlib import Path
from typing import Any

import yaml

from zoo.config import RunConfig
from zoo.local_model import looks_local

CARD = "README.md"
LIBRARIES = ("alignment-zoo", "torch", "transformers", "lightning", "peft")
#: What ``model.name: smollm2`` (the packaged GGUF file) is on the Hub.
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _hub_id(name: str | None) -> str | None:
    """``name`` when it reads as a Hugging Face hub id (``org/name``), else None."""
    if not name or looks_local(name) or name.endswith(".gguf") or "/" not in name:
        return None
    return name


def _hub_dataset(name: str | None) -> str | None:
    """``org/name`` of a hub data set source (``Anthropic/hh-rlhf/harmless-base`` is a folder of one)."""
    if not name or name.startswith(("builtin:", "/", ".", "~")) or Path(name).exists() or "/" not in name:
        return None
    if Path(name).suffix in (".json", ".jsonl", ".csv", ".parquet", ".gz"):
        return None
    return "/".join(name.split("/")[:2])


def _metadata(config: RunConfig) -> dict[str, Any]:
    meta: dict[str, Any] = {"library_name": "transformers"}
    base = SMOLLM2 if config.model.name == "smollm2" else _hub_id(config.model.name)
    if base:
        meta["base_model"] = base
    meta["tags"] = ["alignment-zoo", config.algorithm] + (["lora"] if config.model.lora else [])
    datasets = list(dict.fromkeys(d for d in (_hub_dataset(config.data.train), _hub_dataset(config.data.eval)) if d))
    if datasets:
        meta["datasets"] = datasets
    return meta


def _base_model(config: RunConfig) -> str:
    name = config.model.name
    if name == "tiny":
        return "the built-in `tiny` model (random initial weights, byte-level tokenizer)"
    if name == "smollm2":
        return "SmolLM2-135M-Instruct (the packaged GGUF file, `model.name: smollm2`)"
    if _hub_id(name):
        return f"[{name}](https://huggingface.co/{name})"
    return f"`{name}`"


def _metrics_table(before: dict[str, float], after: dict[str, float]) -> list[str]:
    keys = sorted(set(before) | set(after))
    if not keys:
        return ["No held-out data: the run measured no metrics (set `data.eval` or `data.eval_fraction`)."]
    lines = ["| metric | before | after |", "|---|---|---|"]
    for key in keys:
        cells = [f"{row[key]:.4g}" if key in row else "" for row in (before, after)]
        lines.append(f"| {key} | {cells[0]} | {cells[1]} |")
    return lines


def _data_lines(summary: dict[str, Any], config: RunConfig) -> list[str]:
    lines = [f"- training data: `{config.data.train}`" + (f" (split `{config.data.train_split}`)"
                                                          if _hub_id(config.data.train) else "")]
    if config.data.eval:
        lines.append(f"- held-out data: `{config.data.eval}`")
    elif config.data.eval_fraction:
        lines.append(f"- held-out data: {config.data.eval_fraction:g} of the training rows")
    for report in summary.get("data", []):
        if isinstance(report, dict):
            shown = ", ".join(f"{k}: {v}" for k, v in report.items() if isinstance(v, (int, float, str)))
            lines.append(f"- {shown}")
        else:
            lines.append(f"- {report}")
    return lines


def render_card(config: RunConfig, summary: dict[str, Any], algorithm_description: str = "", *,
                scores: bool = False) -> str:
    """The card's text, from the run's config and its ``metrics.json`` summary; ``scores``: a reward model."""
    t = config.train
    front = yaml.safe_dump(_metadata(config), sort_keys=False).strip()
    title = Path(config.output_dir).name or config.algorithm
    algorithm = f"`{config.algorithm}`" + (f": {algorithm_description}" if algorithm_description else "")
    hyper = {"algorithm_args": config.algorithm_args or {}, "learning_rate": t.learning_rate,
             "batch_size": t.batch_size, "accumulate_grad_batches": t.accumulate_grad_batches,
             "max_epochs" if t.max_steps == -1 else "max_steps": t.max_epochs if t.max_steps == -1 else t.max_steps,
             "scheduler": t.scheduler, "warmup_steps": t.warmup_steps, "weight_decay": t.weight_decay,
             "adam_betas": t.adam_betas, "gradient_clip_val": t.gradient_clip_val, "precision": t.precision,
             "seed": t.seed, "max_length": config.data.max_length, "max_prompt_length": config.data.max_prompt_length}
    if config.model.lora:
        lora = config.model.lora
        hyper["lora"] = {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout,
                         "target_modules": list(lora.target_modules)}
    if config.reward:
        hyper["reward"] = {k: v for k, v in vars(config.reward).items() if v}
    lora_note = ("\nThe LoRA adapter alone is in `adapter/`; this folder holds the base weights with the adapter "
                 "merged in.\n" if config.model.lora else "")
    auto = "AutoModelForSequenceClassification" if scores else "AutoModelForCausalLM"
    lines = [
        "---", front, "---", "", f"# {title}", "",
        f"Trained with alignment-zoo {_version('alignment-zoo')} (`zoo train`).",
        "", f"- base model: {_base_model(config)}", f"- algorithm: {algorithm}",
        f"- optimizer steps: {summary.get('steps', 'unknown')}"
        + (f", {summary['train_seconds']:.0f} s of training" if isinstance(summary.get("train_seconds"), (int, float))
           else ""),
        lora_note,
        "## Data", "", *_data_lines(summary, config), "",
        "## Hyperparameters", "", "```yaml", yaml.safe_dump(hyper, sort_keys=False).strip(), "```", "",
        "The full config is `config.yaml` in the run directory (`zoo train` reads it back unchanged).", "",
        "## Held-out metrics", "", *_metrics_table(summary.get("before", {}), summary.get("after", {})), "",
        "## Use", "", "```python", f"from transformers import {auto}, AutoTokenizer", "",
        f'model = {auto}.from_pretrained("PATH/TO/THIS/FOLDER")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH/TO/THIS/FOLDER")', "```", "",
        ("A reward model: one score per (prompt, response); `reward.model: PATH/TO/THIS/FOLDER` in an online run."
         if scores else "or `zoo generate PATH/TO/THIS/FOLDER --prompt \"...\"` beside the model it started from."),
        "",
        "## Framework versions", "", *[f"- {name}: {_version(name)}" for name in LIBRARIES], "",
    ]
    return "\n".join(lines)


def write_model_card(model_dir: Path, config: RunConfig, summary: dict[str, Any],
                     algorithm_description: str = "", *, scores: bool = False) -> Path:
    """Write ``model_dir/README.md`` (the run owns the folder) and return its path."""
    from zoo.checkpointing import atomic_write_text

    path = Path(model_dir) / CARD
    summary = json.loads(json.dumps(summary, default=str))
    atomic_write_text(path, render_card(config, summary, algorithm_description, scores=scores))
    return path
