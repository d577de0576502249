"""A training run in two calls: :func:`build_run` (config → data, models, Trainer) and :func:`fit`.

``build_run`` checks and loads everything and writes nothing: a bad config (checked against its
algorithm by :func:`zoo.planning.plan_run`), a bad data row or a model that does not load fails
there, with the output directory untouched. ``fit`` is the only
part that writes: the run directory, the "before" metrics, training, the "after" metrics and the
saved model. :func:`zoo.training_guard.train` (``zoo train``) wraps the two with the run directory's lock,
signal handling and the messages a failed write gets; tests, the conformance kit and the
benchmark build their runs with ``build_run`` too, so every run is wired in one place.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.utilities import rank_zero_only
from safetensors.torch import save_file

from zoo.algorithm import Algorithm
from zoo.checkpointing import WriteError, atomic_write_text, make_readable, require_finite
from zoo.config import RunConfig
from zoo.data.datamodule import AlignmentDataModule
from zoo.errors import ConfigError, ZooError
from zoo.eval.callback import callback_from_config
from zoo.forward.attention import enable_varlen_attention
from zoo.forward.packing import check_packing_support
from zoo.forward.swiglu import enable_lean_swiglu
from zoo.integrity import data_fingerprint
from zoo.lora import apply_lora, save_policy
from zoo.model_card import write_model_card
from zoo.model_output import OutputKind
from zoo.models import load_tokenizer
from zoo.module import AlignmentModule
from zoo.planning import RunPlan, plan_run
from zoo.quiet import no_transformers_bars
from zoo.reference import training_reference
from zoo.resume import ResumePoint, log_version, plan_resume, read_summary
from zoo.run_dir import RunLock, check_output_dir, clear_run, contents, create_run_dir, resolve_output_dir
from zoo.run_files import record
from zoo.tracking import attach_mlflow
from zoo.trainer import build_trainer
from zoo.trainer.token_counter import TokenCounter

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
    #: Real (non-padding) tokens of the batches the training loss was computed on, this session.
    tokens_seen: int = 0


@dataclass
class Run:
    """Everything one training run is made of, built by :func:`build_run` and consumed by :func:`fit`."""

    config: RunConfig
    output_dir: Path
    #: The algorithm, holding its typed ``Args`` (parsed once, when the config was planned).
    algorithm: Algorithm
    #: What the algorithm's ``output`` means: the model kind, its loader, forward and after-fit step.
    kind: OutputKind
    tokenizer: Any
    datamodule: AlignmentDataModule
    module: AlignmentModule
    trainer: L.Trainer
    tokens: TokenCounter
    #: The fingerprint of the run's examples (stored in metrics.json, checked on resume).
    fingerprint: str
    #: Where a resumed run continues from (None: a new run).
    resume_point: ResumePoint | None = None
    #: Whether an earlier run's files in ``output_dir`` are removed once :func:`fit` starts writing.
    replace: bool = False
    #: The names in ``output_dir`` when the run was planned; :func:`fit` refuses to write if they changed.
    seen: set[str] = field(default_factory=set)
    #: The run directory's lock, taken by :func:`fit` before its first write.
    lock: RunLock | None = None
    #: Whether :func:`fit` releases the lock when it ends (False: the caller that passed it in does).
    owns_lock: bool = True


def build_run(config: RunConfig | RunPlan, *, overwrite: bool = False, resume: bool = False,
              callbacks: list | None = None, lock: RunLock | None = None, seen: set[str] | None = None) -> Run:
    """Check ``config`` and build its run: data, models, module and Trainer. Writes nothing.

    ``config`` is a run config, planned here (:func:`zoo.planning.plan_run`), or the plan of one.
    ``overwrite`` and ``resume`` are ``zoo train``'s flags (``resume: auto`` in the config also
    resumes); ``callbacks`` are extra Lightning callbacks. ``lock`` and ``seen`` come from a
    caller that already checked and locked the output directory (:func:`zoo.training_guard.train`).
    """
    plan = config if isinstance(config, RunPlan) else plan_run(config)
    config, algorithm, kind = plan.config, plan.algorithm, plan.kind
    output_dir = resolve_output_dir(config.output_dir)
    if str(output_dir) != config.output_dir:
        config = dataclasses.replace(config, output_dir=str(output_dir))
    resume = resume or (config.resume == "auto" and not overwrite)
    if seen is None:
        if rank_zero_only.rank == 0:
            check_output_dir(output_dir, overwrite=overwrite, resume=resume)
        seen = contents(output_dir)
    point = plan_resume(output_dir, config.to_dict()) if resume else None
    replace = point is None and overwrite  # an earlier run's files are removed once everything is checked
    evaluation = callback_from_config(config.evaluation)  # unknown suites and their options fail here
    tokens = TokenCounter()
    # Built now so that a Trainer setting Lightning refuses fails before any data or model loads.
    trainer = build_trainer(config, algorithm, output_dir,
                            [*(callbacks or []), *([evaluation] if evaluation else []), tokens],
                            logs_version="" if replace else log_version(output_dir))

    L.seed_everything(config.train.seed, workers=True, verbose=False)
    tokenizer = load_tokenizer(config.model)
    datamodule = AlignmentDataModule(config.data, tokenizer, algorithm.data_shape, config.train.batch_size,
                                     config.train.eval_batch_size)
    datamodule.setup("fit")  # data errors surface before any model is loaded
    for advice in algorithm.check_data(datamodule.summary()):
        log.warning("algorithm %s: %s", config.algorithm, advice)
    fingerprint = data_fingerprint(datamodule.train_examples + datamodule.eval_examples)
    _warn_about_settings(config, datamodule)
    started_on = read_summary(output_dir).get("data_fingerprint") if point is not None else None
    if started_on is not None and started_on != fingerprint:
        raise ConfigError(f"cannot resume {str(output_dir)!r}: the data differs from the data the run started with "
                          f"(its examples' fingerprint changed: {', '.join(r.summary() for r in datamodule.reports)})."
                          f" Restore the data, or start a new run with --overwrite or another output_dir.")

    policy = load_policy(config, kind, tokenizer)
    reference = None
    # Every batch carries the cached reference log-probs, or a reference model runs on each batch.
    # Capability flags come from the instance: its arguments may turn one off (GRPO with kl_coef 0).
    if algorithm.needs_reference and not datamodule.attach_reference_cache(config, algorithm, policy, trainer):
        reference = training_reference(config, policy, tokenizer)
    reward = None
    if config.reward is not None and (config.reward.function or config.reward.model):
        from zoo.data.truncation import PromptPolicy
        from zoo.rewards.loading import load_reward_source

        # A reward model cuts prompts as this run's data did: it scores the prompts the policy saw.
        reward = load_reward_source(config.reward, tokenizer=tokenizer, prompts=PromptPolicy.from_data(config.data))
    module = AlignmentModule(policy, algorithm, config.train, reference=reference, reward=reward, tokenizer=tokenizer,
                             output=kind)
    return Run(config, output_dir, algorithm, kind, tokenizer, datamodule, module, trainer, tokens, fingerprint,
               resume_point=point, replace=replace, seen=seen, lock=lock or RunLock(output_dir),
               owns_lock=lock is None)


def _warn_about_settings(config: RunConfig, datamodule: AlignmentDataModule) -> None:
    """Settings that are valid but rarely what was meant: said once, before the run starts."""
    t = config.train
    if t.max_steps and t.max_steps > 0 and t.warmup_steps > t.max_steps:
        log.warning("train.warmup_steps = %d is more than train.max_steps = %d: the learning rate never reaches "
                    "train.learning_rate (it ends at %.0f%% of it); lower train.warmup_steps.", t.warmup_steps,
                    t.max_steps, 100 * t.max_steps / t.warmup_steps)
    if not datamodule.eval_examples and (config.data.eval or config.data.eval_fraction > 0):
        log.warning("no held-out examples (%d training example(s), data.eval_fraction = %s): the before/after "
                    "metrics will be empty; add data.eval or more rows.", len(datamodule.train_examples),
                    config.data.eval_fraction)


def load_policy(config: RunConfig, kind: OutputKind, tokenizer: Any) -> torch.nn.Module:
    """The starting model as the run trains it: loaded, checkpointed, adapted and attention-patched."""
    policy = kind.load(config.model, tokenizer)
    # from_pretrained returns a model in eval mode and Lightning keeps each submodule's mode, so
    # without this dropout stays off and transformers skips activation checkpointing (it checks
    # ``module.training``) while reporting it enabled.
    policy.train()
    enable_lean_swiglu(policy)  # exact; keeps fewer activations for backward
    if config.model.gradient_checkpointing:
        # Non-reentrant checkpointing also works when the inputs need no gradient (LoRA's frozen embeddings).
        enable = getattr(policy, "activation_checkpointing_enable", None)  # the name since transformers 5
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.model.lora is not None:
        policy = _with_lora(policy, config, task=kind.lora_task)
    if config.data.shared_prefix:
        from zoo.forward.shared_prefix import check_shared_prefix_support

        check_shared_prefix_support(policy)
    elif config.data.padding_free:
        enable_varlen_attention(policy)  # per-sequence attention for packed rows when the model uses sdpa
        check_packing_support(policy)
    return policy


def _with_lora(policy: torch.nn.Module, config: RunConfig, task: str) -> torch.nn.Module:
    try:
        return apply_lora(policy, config.model.lora, task=task)
    except ValueError as exc:  # peft: e.g. a target module this model does not have
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in policy.named_modules()
                         if isinstance(module, torch.nn.Linear)})
        raise ConfigError(f"model.lora.target_modules = {config.model.lora.target_modules}: "
                          f"{str(exc).splitlines()[0]} Linear modules of {config.model.name!r}: "
                          f"{', '.join(linear)}.") from None


def fit(run: Run) -> RunResult:
    """Write the run directory, train, and save the model, config and metrics of ``run``."""
    try:
        return _fit(run, rank_zero_only.rank == 0)
    finally:
        if run.owns_lock:
            run.lock.release()


def _fit(run: Run, lead: bool) -> RunResult:
    config, output_dir, trainer, module = run.config, run.output_dir, run.trainer, run.module
    datamodule = run.datamodule
    point = run.resume_point
    # Config, data and models are checked: only from here on is anything in output_dir written or removed.
    if lead:
        create_run_dir(output_dir)
        run.lock.acquire()
        if contents(output_dir) != run.seen:
            raise ConfigError(f"output_dir {str(output_dir)!r} changed while this run was starting (another run "
                              f"wrote into it); nothing was written. Choose another output_dir=PATH.")
        for staging in output_dir.glob(".model.*.tmp"):  # left by a save that was killed
            shutil.rmtree(staging, ignore_errors=True)
        if run.replace:
            clear_run(output_dir)
        log_dir = Path(trainer.logger.log_dir)
        record(output_dir, ["config.yaml", "metrics.json", log_dir / "metrics.csv", log_dir / "hparams.yaml"])
        atomic_write_text(output_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    attach_mlflow(trainer, config.train.loggers, output_dir, project=config.train.tracking_project)

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
               "data": result.data, "skipped_rows": result.skipped_rows, "data_fingerprint": run.fingerprint,
               "resumed_from_steps": previous.get("resumed_from_steps", []) + ([point.global_step] if point else [])}
    if trainer.is_global_zero:
        atomic_write_text(output_dir / "metrics.json", json.dumps(summary, indent=2))
    start = time.perf_counter()
    with warnings.catch_warnings():
        # The data position is restored by TrainingPosition, not by a stateful loader Lightning knows of.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(point.path) if point else None, weights_only=True)
    result.train_seconds = time.perf_counter() - start
    result.tokens_seen = run.tokens.tokens
    if has_eval:
        result.metrics_after = _scalar_metrics(trainer.validate(module, datamodule=datamodule, verbose=False)[0])

    result.nonfinite_steps = module.nonfinite_steps
    require_finite(module.state_dict(), f"the trained model to {output_dir / 'model'}")

    if trainer.is_global_zero:
        run.kind.after_fit(module.policy, datamodule.train_examples, datamodule.collator,
                           batch_size=config.train.batch_size, seed=config.data.seed)
        try:
            save_run(module, run.tokenizer, output_dir)
        except BaseException as exc:
            summary.update({"status": "failed", "failed_at": "saving the model", "steps": trainer.global_step,
                            "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__})
            with contextlib.suppress(ZooError, OSError):  # the save's own error is the one to report
                atomic_write_text(output_dir / "metrics.json", json.dumps(summary, indent=2))
            raise
        summary.update({
            "status": "finished", "steps": trainer.global_step, "train_seconds": result.train_seconds,
            "after": result.metrics_after, "nonfinite_steps_skipped": result.nonfinite_steps,
        })
        atomic_write_text(output_dir / "metrics.json", json.dumps(summary, indent=2))
        write_model_card(output_dir / "model", config, summary, getattr(module.algorithm, "description", ""),
                         scores=run.kind.name == "scores")
    return result


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor))}


def save_run(module: AlignmentModule, tokenizer: Any, output_dir: Path) -> None:
    """``output_dir/model``: the trained policy (``save_pretrained``), its tokenizer and any extra modules.

    Everything is written to a hidden staging folder first and moved into ``model/`` only once the
    whole save succeeded: a full disk or a crash mid-save leaves no ``model/`` with half its files
    (which a resume would take for a finished run). The moved files are listed as the run's own.
    """
    model_dir = output_dir / "model"
    staging = Path(tempfile.mkdtemp(prefix=".model.", suffix=".tmp", dir=output_dir))
    try:
        with no_transformers_bars():  # a "Writing model shards" bar, twice, for a save that takes no time
            module.policy = save_policy(module.policy, staging)
            tokenizer.save_pretrained(staging)
        if len(module.extra):
            state = {k: v.detach().cpu().contiguous() for k, v in module.extra.state_dict().items()}
            save_file(state, str(staging / "extra_modules.safetensors"))
        make_readable(staging)
        files = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
        record(output_dir, [Path("model") / name for name in files])
        for name in files:
            (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, model_dir / name)
    except Exception as exc:  # safetensors and tokenizers report a full disk as their own errors
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0] if str(exc) \
            else type(exc).__name__
        raise WriteError(f"cannot write the trained model to {str(model_dir)!r}: {reason}. Nothing of it was "
                         f"kept; checkpoints written during training are intact.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
