"""The one LightningModule: policy forward, reference log-probs, the algorithm's loss.

Offline algorithms use Lightning's automatic optimisation (gradient accumulation and clipping
from the Trainer). Algorithms that declare ``generates_online`` get manual optimisation: each
batch of prompts goes through the algorithm's ``make_experience`` step, then one optimiser step
per minibatch the algorithm yields (PPO's epochs × minibatches).
"""
from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from transformers import get_scheduler

from zoo.algorithm import Algorithm, ExperienceContext
from zoo.batch import Batch, LossOutput, SequenceLogProbs
from zoo.config import TrainConfig
from zoo.errors import ZooError
from zoo.forward import batch_logprobs, cached_logprobs
from zoo.loss_contract import check_gradient_path, check_loss_output, loss_origin
from zoo.model_output import OutputKind, output_kind
from zoo.models import disable_dropout
from zoo.optimizer import adamw
from zoo.tracking import RecordingReward, log_completions
from zoo.trainer.lightning_private import writes_logs_now

log = logging.getLogger(__name__)


def gradients_finite(grads: list[Tensor]) -> bool:
    """Whether every element of ``grads`` is finite.

    A sum is NaN or ±inf whenever one of its elements is, so finite sums (one fast reduction per
    tensor: 0.09 s for SmolLM2-135M's gradients on one CPU thread, against 1.0 s for ``isfinite``'s
    three temporaries) prove the common case; only a non-finite sum, which finite elements can
    also give by overflowing, is checked element by element. One device sync per step either way.
    """
    if bool(torch.stack([g.sum().float() for g in grads]).isfinite().all()):
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


class NonFiniteLossError(ZooError):
    """The loss or gradient became NaN/inf more often than ``train.max_nonfinite_steps`` allows."""


def _scalar_metrics(out: LossOutput) -> dict[str, Tensor]:
    """The loss output's metrics as detached float32 scalars (per-example values averaged)."""
    metrics = {}
    for name, value in out.metrics.items():
        value = value.detach().float()
        metrics[name] = value.mean() if value.ndim else value
    return metrics


class AlignmentModule(L.LightningModule):
    def __init__(self, policy: nn.Module, algorithm: Algorithm, train_config: TrainConfig, *,
                 reference: nn.Module | None = None, reward: Any = None, tokenizer: Any = None,
                 output: OutputKind | None = None):
        super().__init__()
        self.policy = policy
        self.algorithm = algorithm
        #: How the policy runs on a batch (log-probs, or a reward head's scores): the algorithm's ``output``.
        self.output = output if output is not None else output_kind(algorithm)
        if algorithm.disables_dropout:
            disable_dropout(policy)  # before build_modules, so extra modules built on the policy keep theirs
        self.extra = nn.ModuleDict(algorithm.build_modules(policy))
        self.train_config = train_config
        self.tokenizer = tokenizer
        self.reward = reward
        # Frozen models are kept out of the module tree: not optimised, not checkpointed.
        self._frozen: dict[str, nn.Module | None] = {"reference": reference}
        self.automatic_optimization = not algorithm.generates_online
        #: Steps skipped because their loss or gradient was NaN/inf (kept across a resume).
        self.nonfinite_steps = 0
        self._gradient_checked = False
        #: Optimiser steps of an online algorithm in the current epoch (an epoch without one stops the run).
        self._epoch_optimizer_steps = 0

    @property
    def reference(self) -> nn.Module | None:
        return self._frozen["reference"]

    def _move_frozen(self) -> None:
        for model in self._frozen.values():
            if isinstance(model, nn.Module):
                model.to(self.device)
        if self.reward is not None and hasattr(self.reward, "to"):
            self.reward.to(self.device)

    def on_fit_start(self) -> None:
        self._move_frozen()

    def on_train_epoch_start(self) -> None:
        self._epoch_optimizer_steps = 0

    def on_train_epoch_end(self) -> None:
        # Lightning counts steps by optimiser steps: an online epoch that took none would repeat for ever
        # under train.max_steps, so it stops the run instead.
        if not self.automatic_optimization and self._epoch_optimizer_steps == 0:
            raise ZooError(f"epoch {self.current_epoch} of {self.algorithm.name!r} ran no optimiser step: every "
                           f"rollout left nothing to train on (e.g. rejection sampling's min_score rejected every "
                           f"sample). Loosen the setting that filters samples (algorithm_args) and run again.")

    def on_validation_start(self) -> None:
        self._move_frozen()

    # ----- forward ---------------------------------------------------------------------------
    def outputs(self, model: nn.Module, batch: Batch) -> SequenceLogProbs:
        return self.output.forward(model, batch, hidden_states=self.algorithm.wants_hidden_states)

    def reference_outputs(self, batch: Batch) -> SequenceLogProbs | None:
        """The reference's log-probs of ``batch``: read from the batch (the cache, or an online
        algorithm's experience) when it carries them, else computed by the frozen reference."""
        if not self.algorithm.needs_reference:
            return None
        if batch.reference_logps is not None:
            reference = cached_logprobs(batch.reference_logps, batch)
            reference.token_logps = batch.reference_token_logps  # None unless the rollout kept them
            return reference
        if self.reference is None:
            raise RuntimeError("the algorithm needs a reference model but none was loaded")
        with torch.no_grad():
            return batch_logprobs(self.reference, batch)

    def compute_loss(self, batch: Batch) -> LossOutput:
        policy = self.outputs(self.policy, batch)
        return self.algorithm.loss(policy, self.reference_outputs(batch), batch)

    def _step_loss(self, batch: Batch) -> LossOutput:
        """:meth:`compute_loss` in a training or validation step, its output checked against the contract."""
        out = self.compute_loss(batch)
        check_loss_output(out, batch.num_examples, self.algorithm, training=self.training)
        return out

    def _training_loss(self, out: LossOutput) -> Tensor:
        """The loss a training step backpropagates: the batch mean of ``out.losses``; a token mean
        (``out.tokens`` set) rescaled so that data-parallel devices, whose gradients are averaged,
        train on one mean over all their tokens instead of a mean of per-device token means."""
        loss = out.losses.mean()
        trainer = getattr(self, "_trainer", None)
        if out.tokens is None or trainer is None or trainer.world_size == 1:
            return loss
        tokens = out.tokens.detach().float()
        total = trainer.strategy.reduce(tokens.clone(), reduce_op="sum")
        return loss * (tokens * trainer.world_size / total.clamp(min=1))

    def _log_output(self, out: LossOutput, stage: str, batch_size: int) -> Tensor:
        if stage == "train":
            loss = self._training_loss(out)
            self._log_train_step(loss.detach(), _scalar_metrics(out), batch_size)
            return loss
        loss = out.losses.mean()
        self.log(f"{stage}/loss", loss.detach(), prog_bar=True, batch_size=batch_size, on_step=False,
                 on_epoch=True, sync_dist=True)
        for name, value in _scalar_metrics(out).items():
            self.log(f"{stage}/{name}", value, batch_size=batch_size, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def _writes_logs_now(self) -> bool:
        """Whether the logger writes this step's on-step metrics; Lightning drops them on other steps.

        Each ``self.log`` call costs about 2 ms of Python on CPU: a tiny PPO step logging a dozen
        metrics per minibatch spent a quarter of its time there (:mod:`zoo.trainer.lightning_private`).
        """
        return writes_logs_now(self._trainer)

    def _log_train_step(self, loss: Tensor, metrics: dict[str, Tensor], batch_size: int) -> None:
        """The step's loss (every step when the progress bar shows it) and metrics (on logging steps)."""
        write = self._writes_logs_now()
        if write or self.train_config.progress_bar:
            self.log("train/loss", loss, prog_bar=True, batch_size=batch_size, on_step=True, on_epoch=False)
        if write:
            for name, value in metrics.items():
                self.log(f"train/{name}", value, batch_size=batch_size, on_step=True, on_epoch=False)

    def _skip_nonfinite(self, what: str) -> None:
        """Count a step whose ``what`` is NaN/inf; stop the run once the budget is spent."""
        self.nonfinite_steps += 1
        budget = self.train_config.max_nonfinite_steps
        if self.nonfinite_steps > budget:
            origin, builtin = loss_origin(self.algorithm)
            # A third-party loss that yields NaN is more often a bug in it than a too-high learning rate.
            advice = (f"Check the loss of {origin} first (a log of 0, a division by a zero count); then lower "
                      f"train.learning_rate or check the data" if not builtin else
                      "Lower train.learning_rate, check the data, use a higher-precision train.precision")
            raise NonFiniteLossError(
                f"{what} became NaN or inf at step {self.global_step} ({origin}); the run was stopped "
                f"(train.max_nonfinite_steps = {budget} such steps may be skipped). No checkpoint with non-finite "
                f"weights was written and earlier checkpoints are unchanged. {advice}, or allow skipping with "
                f"train.max_nonfinite_steps=N.")
        log.warning("%s became NaN or inf at step %d; the step was skipped (%d of train.max_nonfinite_steps = %d)",
                    what, self.global_step, self.nonfinite_steps, budget)

    def _grads_finite(self) -> bool:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        return not grads or gradients_finite(grads)

    # ----- steps -----------------------------------------------------------------------------
    def experience_context(self) -> ExperienceContext:
        return ExperienceContext.for_run(self.policy, self.tokenizer, reference=self.reference, reward=self.reward,
                                         modules=self.extra, step=self.global_step, epoch=self.current_epoch,
                                         training=self.training)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | dict[str, Any] | None:
        """Offline: the loss (None skips the step). Online: ``{"loss", "tokens"}``, the last stepped
        minibatch's loss and the real tokens of every minibatch (:mod:`zoo.trainer.token_counter` counts them)."""
        if self.automatic_optimization:
            out = self._step_loss(batch)
            if not torch.isfinite(out.losses.mean()):
                self._skip_nonfinite("the training loss")
                return None  # Lightning skips backward and the optimiser step
            return self._log_output(out, "train", batch.num_examples)
        optimizer = self.optimizers()
        context = self.experience_context()
        every = self.train_config.log_completions_every_n_steps
        recording = every is not None and context.reward is not None and self.global_step % every == 0
        if recording:
            context.reward = RecordingReward(context.reward)
        with torch.no_grad():
            experience = self.algorithm.make_experience(context, batch)
        if recording and self.trainer.is_global_zero:
            log_completions(self.trainer.loggers, self.global_step, context.reward.rows)
        # Logged once per step: the mean over the minibatches that stepped (not the last one's values).
        stepped: list[tuple[Tensor, dict[str, Tensor], int]] = []
        tokens = 0
        for minibatch in self.algorithm.minibatches(experience):
            tokens += int(minibatch.attention_mask.sum())
            out = self._step_loss(minibatch)
            loss = self._training_loss(out)
            if not torch.isfinite(loss):
                self._skip_nonfinite("the training loss")
                continue
            optimizer.zero_grad()
            self.manual_backward(loss)
            self._check_gradient_reaches_the_model()
            if not self._grads_finite():
                self._skip_nonfinite("a gradient")
                optimizer.zero_grad()
                continue
            if self.train_config.gradient_clip_val:
                self.clip_gradients(optimizer, gradient_clip_val=self.train_config.gradient_clip_val,
                                    gradient_clip_algorithm="norm")
            optimizer.step()
            stepped.append((loss.detach(), _scalar_metrics(out), minibatch.num_examples))
        self._epoch_optimizer_steps += len(stepped)
        loss = stepped[-1][0] if stepped else None
        rollout_log = context.metrics
        if stepped:
            # A value the rollout also reports (e.g. reward, kl_ref) is logged once: the rollout's.
            names = [n for n in stepped[0][1] if n not in rollout_log]
            self._log_train_step(torch.stack([s[0] for s in stepped]).mean(),
                                 {n: torch.stack([s[1][n] for s in stepped]).mean() for n in names},
                                 sum(s[2] for s in stepped))
        if self._writes_logs_now():
            for name, value in rollout_log.items():
                self.log(f"train/{name}", torch.as_tensor(value, dtype=torch.float32).mean(), on_step=True)
        scheduler = self.lr_schedulers()
        if scheduler is not None and stepped:  # no optimiser step (all rejected or skipped): the schedule waits
            scheduler.step()
        return {"tokens": tokens} if loss is None else {"loss": loss, "tokens": tokens}

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        if self.algorithm.generates_online:
            batch = self.algorithm.make_experience(self.experience_context(), batch)
        self._log_output(self._step_loss(batch), "val", batch.num_examples)

    def _check_gradient_reaches_the_model(self) -> None:
        """Once per session: a loss with no path to the trainable parameters would train nothing, silently."""
        if self._gradient_checked:
            return
        self._gradient_checked = True
        if not any(p.grad is not None for p in self.parameters() if p.requires_grad):
            check_gradient_path(self.algorithm)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self._check_gradient_reaches_the_model()
        # Runs before Lightning clips, which would spread one NaN over every gradient.
        if self.automatic_optimization and not self._grads_finite():
            self._skip_nonfinite("a gradient")
            optimizer.zero_grad(set_to_none=True)  # AdamW leaves parameters without a gradient untouched

    # ----- optimisation ----------------------------------------------------------------------
    def _scales_gradients(self) -> bool:
        """Whether the optimiser must leave gradient unscaling to the Trainer: under a mixed-precision
        plugin (16-bit with its GradScaler, or bf16), Lightning refuses to clip the gradients of an
        optimiser that unscales inside its step, as a fused one does."""
        from lightning.pytorch.plugins.precision import MixedPrecision

        trainer = self._trainer
        return trainer is not None and isinstance(trainer.precision_plugin, MixedPrecision)

    def configure_optimizers(self) -> dict[str, Any]:
        c = self.train_config
        parameters = [p for p in self.parameters() if p.requires_grad]
        optimizer = adamw(parameters, lr=c.learning_rate, weight_decay=c.weight_decay, betas=tuple(c.adam_betas),
                          scales_gradients=self._scales_gradients())
        total = max(1, int(self.trainer.estimated_stepping_batches))
        name = {"constant": "constant_with_warmup"}.get(c.scheduler, c.scheduler)
        scheduler = get_scheduler(name, optimizer, num_warmup_steps=c.warmup_steps, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----- state of online algorithms survives a resume ----------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["algorithm_state"] = self.algorithm.state_dict()
        checkpoint["nonfinite_steps"] = self.nonfinite_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.algorithm.load_state_dict(checkpoint.get("algorithm_state", {}))
        self.nonfinite_steps = int(checkpoint.get("nonfinite_steps", 0))
