"""``zoo train``: config → data → models → Lightning Trainer → saved run directory.

The output directory ends up holding ``model/`` (``save_pretrained``: safetensors weights and the
tokenizer, loadable with ``AutoModelForCausalLM.from_pretrained``), ``config.yaml`` (the resolved
config), ``metrics.json`` (validation metrics before and after training, load reports),
``logs/metrics.csv`` (every logged value) and, when enabled, ``checkpoints/``.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from safetensors.torch import save_file

from zoo.config import RunConfig
from zoo.datamodule import AlignmentDataModule
from zoo.errors import ConfigError
from zoo.models import load_causal_lm, load_reference, load_tokenizer
from zoo.module import AlignmentModule
from zoo.registry import get_registry

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    output_dir: Path
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    module: Any = None


def prepare_output_dir(path: Path, *, overwrite: bool, resume: bool) -> None:
    if path.exists() and any(path.iterdir()) and not (overwrite or resume):
        raise ConfigError(f"output_dir {str(path)!r} exists and is not empty; pass --overwrite to write into it, "
                          f"--resume to continue its run, or choose another output_dir=PATH.")
    path.mkdir(parents=True, exist_ok=True)


def build_trainer(config: RunConfig, output_dir: Path, extra_callbacks: list | None = None) -> L.Trainer:
    t = config.train
    callbacks: list = list(extra_callbacks or [])
    if t.checkpoint_every_n_steps:
        callbacks.append(ModelCheckpoint(dirpath=output_dir / "checkpoints", every_n_train_steps=t.checkpoint_every_n_steps,
                                         save_top_k=t.keep_last, monitor="step", mode="max", save_last=True,
                                         filename="step-{step}"))
    if t.progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    val_check = t.val_check_interval
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=t.max_steps, max_epochs=t.max_epochs if t.max_steps == -1 else None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val if not get_registry().algorithm(config.algorithm).generates_online else None,
        val_check_interval=val_check, check_val_every_n_epoch=None if isinstance(val_check, int) else 1,
        log_every_n_steps=t.log_every_n_steps, logger=CSVLogger(output_dir, name="logs", version=""),
        callbacks=callbacks, enable_checkpointing=bool(t.checkpoint_every_n_steps),
        enable_progress_bar=t.progress_bar, deterministic=t.deterministic, num_sanity_val_steps=0,
        default_root_dir=output_dir, enable_model_summary=False,
    )


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor))}


def save_run(module: AlignmentModule, tokenizer: Any, config: RunConfig, output_dir: Path) -> None:
    model_dir = output_dir / "model"
    module.policy.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    if len(module.extra):
        state = {k: v.detach().cpu().contiguous() for k, v in module.extra.state_dict().items()}
        save_file(state, str(model_dir / "extra_modules.safetensors"))


def train(config: RunConfig, *, overwrite: bool = False, resume: bool = False) -> RunResult:
    """Run one training job as configured and save its outputs."""
    registry = get_registry()
    algorithm_cls = registry.algorithm(config.algorithm)
    algorithm = algorithm_cls(algorithm_cls.parse_args(config.algorithm_args))
    output_dir = Path(config.output_dir)
    prepare_output_dir(output_dir, overwrite=overwrite, resume=resume)
    (output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    L.seed_everything(config.train.seed, workers=True, verbose=False)
    tokenizer = load_tokenizer(config.model)
    datamodule = AlignmentDataModule(config.data, tokenizer, algorithm_cls.data_shape, config.train.batch_size,
                                     config.train.eval_batch_size)
    datamodule.setup("fit")  # data errors surface before any model is loaded

    policy = load_causal_lm(config.model, tokenizer)
    reference = load_reference(config.model, policy, tokenizer) if algorithm_cls.needs_reference else None
    reward = None
    if config.reward is not None and (config.reward.function or config.reward.model):
        from zoo.rewards import load_reward_source

        reward = load_reward_source(config.reward, tokenizer=tokenizer)
    module = AlignmentModule(policy, algorithm, config.train, reference=reference, reward=reward, tokenizer=tokenizer)
    trainer = build_trainer(config, output_dir)

    result = RunResult(output_dir, module=module)
    has_eval = bool(datamodule.eval_examples)
    ckpt_path = None
    if resume:
        last = output_dir / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.exists() else None
    if has_eval and ckpt_path is None:
        result.metrics_before = _scalar_metrics(trainer.validate(module, datamodule=datamodule, verbose=False)[0])
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    result.train_seconds = time.perf_counter() - start
    if has_eval:
        result.metrics_after = _scalar_metrics(trainer.validate(module, datamodule=datamodule, verbose=False)[0])

    if trainer.is_global_zero:
        save_run(module, tokenizer, config, output_dir)
        summary = {
            "algorithm": config.algorithm, "steps": trainer.global_step, "train_seconds": result.train_seconds,
            "before": result.metrics_before, "after": result.metrics_after,
            "data": [r.summary() for r in datamodule.reports],
            "skipped_rows": sum(len(r.skipped) for r in datamodule.reports),
        }
        (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    return result
