"""``zoo train``: config → data → models → Lightning Trainer → saved run directory.

The output directory ends up holding ``model/`` (``save_pretrained``: safetensors weights and the
tokenizer, loadable with ``AutoModelForCausalLM.from_pretrained``), ``config.yaml`` (the resolved
config), ``metrics.json`` (validation metrics before and after training, load reports),
``logs/metrics.csv`` (every logged value) and, when enabled, ``checkpoints/``.

Nothing in an existing output directory is replaced before the config, the data and the models
have all been checked; a resumed run (``--resume`` or ``resume: auto``) keeps the earlier logs
(``logs/resume-N/`` holds each later session's) and the "before" metrics of its first session.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from zoo.attention import enable_varlen_attention
from zoo.checkpointing import AtomicCheckpointIO, RunCheckpoint, WriteError, atomic_write_text, make_readable, require_finite
from zoo.config import RunConfig
from zoo.datamodule import AlignmentDataModule
from zoo.errors import ConfigError
from zoo.eval.callback import callback_from_config
from zoo.integrity import data_fingerprint
from zoo.lora import AdapterDisabledReference, apply_lora, is_lora, save_policy
from zoo.models import load_causal_lm, load_reference, load_scalar_model, load_tokenizer
from zoo.module import AlignmentModule
from zoo.packing import check_packing_support
from zoo.quiet import no_transformers_bars
from zoo.refcache import reference_logps_for_run
from zoo.registry import get_registry
from zoo.resume import TrainingPosition, log_version, plan_resume, read_summary
from zoo.run_dir import (WRITE_ERRNOS, RunLock, check_output_dir, clear_run, contents, create_run_dir, interrupted_error,
                         is_run_dir, resolve_output_dir, resume_hint)
from zoo.signals import Stop, stop_on_signals
from zoo.trainer_settings import check_trainer_names, trainer_settings_error
from zoo.trainprogress import training_progress_bar

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    output_dir: Path
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    module: Any = None
    #: One line per data source: rows kept, truncated and skipped.
    data: list[str] = field(default_factory=list)
    skipped_rows: int = 0
    nonfinite_steps: int = 0
    #: The global step the run was resumed from, or None.
    resumed_from: int | None = None


def build_trainer(config: RunConfig, output_dir: Path, extra_callbacks: list | None = None, *,
                  logs_version: str = "") -> L.Trainer:
    t = config.train
    callbacks: list = [*(extra_callbacks or []), TrainingPosition()]
    if t.checkpoint_every_n_steps:
        # No version counter: a new last.ckpt replaces (atomically) a damaged one, never a last-v1.ckpt beside it.
        callbacks.append(RunCheckpoint(dirpath=output_dir / "checkpoints", every_n_train_steps=t.checkpoint_every_n_steps,
                                       save_top_k=t.keep_last, monitor="step", mode="max", save_last=True,
                                       filename="step-{step}", enable_version_counter=False,
                                       auto_insert_metric_name=False))
    if t.progress_bar:
        callbacks.append(training_progress_bar())
    val_check = t.val_check_interval
    check_trainer_names(t)
    try:
        return _trainer(t, config, output_dir, callbacks, val_check, logs_version)
    except (ValueError, TypeError, RuntimeError, MisconfigurationException) as exc:
        raise trainer_settings_error(t, exc) from None


def _trainer(t: Any, config: RunConfig, output_dir: Path, callbacks: list, val_check: Any,
             logs_version: str) -> L.Trainer:
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=t.max_steps, max_epochs=t.max_epochs if t.max_steps == -1 else None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val if not get_registry().algorithm(config.algorithm).generates_online else None,
        val_check_interval=val_check, check_val_every_n_epoch=None if isinstance(val_check, int) else 1,
        log_every_n_steps=t.log_every_n_steps,
        # Flushed at every logging step, so that a crash loses no logged value.
        logger=CSVLogger(output_dir, name="logs", version=logs_version, flush_logs_every_n_steps=t.log_every_n_steps),
        callbacks=callbacks, enable_checkpointing=bool(t.checkpoint_every_n_steps), plugins=[AtomicCheckpointIO()],
        enable_progress_bar=t.progress_bar, deterministic=t.deterministic, num_sanity_val_steps=0,
        default_root_dir=output_dir, enable_model_summary=False,
        # A length-grouped run shards its batches by process itself (AlignmentDataModule): Lightning
        # would otherwise try to put a DistributedSampler into the batch sampler, which it cannot.
        use_distributed_sampler=not config.data.group_by_length,
    )


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor))}


def save_run(module: AlignmentModule, tokenizer: Any, config: RunConfig, output_dir: Path) -> None:
    model_dir = output_dir / "model"
    with no_transformers_bars():  # a "Writing model shards" bar, twice, for a save that takes no time
        module.policy = save_policy(module.policy, model_dir)
        tokenizer.save_pretrained(model_dir)
    if len(module.extra):
        state = {k: v.detach().cpu().contiguous() for k, v in module.extra.state_dict().items()}
        save_file(state, str(model_dir / "extra_modules.safetensors"))
    make_readable(model_dir)


def _with_lora(policy: torch.nn.Module, config: RunConfig, task: str) -> torch.nn.Module:
    try:
        return apply_lora(policy, config.model.lora, task=task)
    except ValueError as exc:  # peft: e.g. a target module this model does not have
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in policy.named_modules()
                         if isinstance(module, torch.nn.Linear)})
        raise ConfigError(f"model.lora.target_modules = {config.model.lora.target_modules}: "
                          f"{str(exc).splitlines()[0]} Linear modules of {config.model.name!r}: "
                          f"{', '.join(linear)}.") from None


def train(config: RunConfig, *, overwrite: bool = False, resume: bool = False,
          callbacks: list | None = None) -> RunResult:
    """Run one training job as configured and save its outputs.

    ``callbacks`` are extra Lightning callbacks (e.g. the throughput meter of ``benchmarks/``).
    """
    output_dir = resolve_output_dir(config.output_dir)
    config = dataclasses.replace(config, output_dir=str(output_dir))
    resume = resume or config.resume == "auto"
    # Lightning's launcher re-runs this command in the other processes once rank 0 has written here.
    lead = rank_zero_only.rank == 0
    if lead:
        check_output_dir(output_dir, overwrite=overwrite, resume=resume)
    seen = contents(output_dir)
    lock = RunLock(output_dir)
    try:
        if lead and is_run_dir(output_dir):
            lock.acquire()  # a second run into a run directory is refused before anything loads
        with stop_on_signals():
            return _train(config, output_dir, lock, seen, overwrite=overwrite, resume=resume, lead=lead,
                          callbacks=callbacks)
    except Stop as stop:
        raise interrupted_error(output_dir, stop.signum, wrote=lock.held and lead) from None
    except WriteError as exc:
        raise WriteError(f"{exc}{resume_hint(output_dir)}") from None
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        where = exc.filename or output_dir
        raise WriteError(f"file system error on {str(where)!r}: {exc.strerror or exc}. Files written before "
                         f"(earlier checkpoints included) are intact.{resume_hint(output_dir)}") from None
    finally:
        lock.release()


def _train(config: RunConfig, output_dir: Path, lock: RunLock, seen: set[str], *, overwrite: bool, resume: bool,
           lead: bool, callbacks: list | None) -> RunResult:
    registry = get_registry()
    algorithm_cls = registry.algorithm(config.algorithm)
    algorithm = algorithm_cls(algorithm_cls.parse_args(config.algorithm_args))
    point = plan_resume(output_dir, config.to_dict()) if resume else None
    replace = point is None and overwrite  # an earlier run's files are removed once everything is checked
    evaluation = callback_from_config(config.evaluation)  # unknown suites and their options fail here
    # Built now so that a Trainer setting Lightning refuses fails before any data or model loads.
    trainer = build_trainer(config, output_dir, [*(callbacks or []), *([evaluation] if evaluation else [])],
                            logs_version="" if replace else log_version(output_dir))

    L.seed_everything(config.train.seed, workers=True, verbose=False)
    tokenizer = load_tokenizer(config.model)
    datamodule = AlignmentDataModule(config.data, tokenizer, algorithm_cls.data_shape, config.train.batch_size,
                                     config.train.eval_batch_size)
    datamodule.setup("fit")  # data errors surface before any model is loaded
    fingerprint = data_fingerprint(datamodule.train_examples + datamodule.eval_examples)
    started_on = read_summary(output_dir).get("data_fingerprint") if point is not None else None
    if started_on is not None and started_on != fingerprint:
        raise ConfigError(f"cannot resume {str(output_dir)!r}: the data differs from the data the run started with "
                          f"(its examples' fingerprint changed: {', '.join(r.summary() for r in datamodule.reports)})."
                          f" Restore the data, or start a new run with --overwrite or another output_dir.")

    load_policy = load_scalar_model if algorithm_cls.output == "scores" else load_causal_lm
    policy = load_policy(config.model, tokenizer)
    if config.model.gradient_checkpointing:
        # Non-reentrant checkpointing also works when the inputs need no gradient (LoRA's frozen embeddings).
        enable = getattr(policy, "activation_checkpointing_enable", None)  # the name since transformers 5
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.model.lora is not None:
        policy = _with_lora(policy, config, task="SEQ_CLS" if algorithm_cls.output == "scores" else "CAUSAL_LM")
    if config.data.padding_free:
        enable_varlen_attention(policy)  # per-sequence attention for packed rows when the model uses sdpa
        check_packing_support(policy)
    reference = None
    if algorithm_cls.needs_reference:
        cached = reference_logps_for_run(config, algorithm_cls, tokenizer,
                                         datamodule.train_examples + datamodule.eval_examples,
                                         datamodule.collator, policy)
        if cached is not None:
            datamodule.collator.reference_logps = cached  # every batch carries them: no reference model
        elif is_lora(policy):
            reference = AdapterDisabledReference(policy)
        else:
            reference = load_reference(config.model, policy, tokenizer)
            if config.data.padding_free:
                enable_varlen_attention(reference)
    reward = None
    if config.reward is not None and (config.reward.function or config.reward.model):
        from zoo.rewards import load_reward_source

        reward = load_reward_source(config.reward, tokenizer=tokenizer)
    module = AlignmentModule(policy, algorithm, config.train, reference=reference, reward=reward, tokenizer=tokenizer)

    # Config, data and models are checked: only from here on is anything in output_dir written or removed.
    if lead:
        create_run_dir(output_dir)
        lock.acquire()
        if contents(output_dir) != seen:
            raise ConfigError(f"output_dir {str(output_dir)!r} changed while this run was starting (another run "
                              f"wrote into it); nothing was written. Choose another output_dir=PATH.")
        if replace:
            clear_run(output_dir)
        atomic_write_text(output_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    result = RunResult(output_dir, module=module, data=[r.summary() for r in datamodule.reports],
                       skipped_rows=sum(len(r.skipped) for r in datamodule.reports))
    has_eval = bool(datamodule.eval_examples)
    previous = read_summary(output_dir) if point is not None else {}
    if point is not None:
        result.resumed_from = point.global_step
        result.metrics_before = previous.get("before", {})
        if point.position is not None:
            datamodule.resume_at(*point.position)
    elif has_eval:
        result.metrics_before = _scalar_metrics(trainer.validate(module, datamodule=datamodule, verbose=False)[0])
    summary = {"algorithm": config.algorithm, "status": "running", "before": result.metrics_before,
               "data": result.data, "skipped_rows": result.skipped_rows, "data_fingerprint": fingerprint,
               "resumed_from_steps": previous.get("resumed_from_steps", []) + ([point.global_step] if point else [])}
    if trainer.is_global_zero:
        atomic_write_text(output_dir / "metrics.json", json.dumps(summary, indent=2))
    start = time.perf_counter()
    with warnings.catch_warnings():
        # The data position is restored by TrainingPosition, not by a stateful loader Lightning knows of.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(point.path) if point else None, weights_only=True)
    result.train_seconds = time.perf_counter() - start
    if has_eval:
        result.metrics_after = _scalar_metrics(trainer.validate(module, datamodule=datamodule, verbose=False)[0])

    result.nonfinite_steps = module.nonfinite_steps
    require_finite(module.state_dict(), f"the trained model to {output_dir / 'model'}")

    if trainer.is_global_zero:
        if algorithm_cls.output == "scores":  # stored with the model for reward-source normalisation
            from zoo.rewards import record_score_statistics

            # Every training example, in one process: not this process's share of a sharded loader.
            every_example = DataLoader(datamodule.train_examples, batch_size=config.train.batch_size,
                                       collate_fn=datamodule.collator, shuffle=True,
                                       generator=torch.Generator().manual_seed(config.data.seed))
            record_score_statistics(module.policy, every_example)
        save_run(module, tokenizer, config, output_dir)
        summary.update({
            "status": "finished", "steps": trainer.global_step, "train_seconds": result.train_seconds,
            "after": result.metrics_after, "nonfinite_steps_skipped": result.nonfinite_steps,
        })
        atomic_write_text(output_dir / "metrics.json", json.dumps(summary, indent=2))
    return result
