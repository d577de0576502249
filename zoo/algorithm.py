"""The contract every alignment algorithm implements.

An algorithm is a subclass of :class:`Algorithm` registered through the
``zoo_register_algorithms`` hook. It declares:

* ``name`` and a typed hyperparameter dataclass ``Args`` (a :class:`Hyperparameters`
  subclass that validates its own fields);
* ``data_shape``: which data it reads (``sft``, ``pairwise``, ``ranked``, ``unpaired`` or ``prompt``);
* capability flags: ``needs_reference`` (the loop computes reference log-probs, or reads them
  from the cache), ``needs_reward`` (the run must configure a reward source),
  ``generates_online`` (the loop calls :meth:`Algorithm.make_experience` on each batch and
  switches to manual optimisation), ``output`` (``"logprobs"`` for a causal LM policy or
  ``"scores"`` for a scalar reward head), ``disables_dropout`` (the loop sets the policy's dropout
  to 0 for the whole run, so that π_old is not one dropout sample among many);
* :meth:`Algorithm.loss`: a pure function of tensors returning per-example losses and metrics;
  the reference always arrives as :class:`SequenceLogProbs` (computed now, or read from the cache
  with only the per-sequence values filled in).

Online algorithms sample through :class:`ExperienceContext` (``ctx.generate``), score with
``ctx.reward``, compute log-probs with ``ctx.logprobs`` and report rollout statistics with
``ctx.log``; their sampling settings are the :class:`zoo.rollout.settings.Sampling` fields, inherited by
their ``Args`` (``class MyArgs(Hyperparameters, Sampling)``).

The core never branches on algorithm names: everything it does differently follows from these
declarations. The loop reads them from the algorithm *instance*, so an algorithm may set one from
its arguments in ``__init__`` (GRPO with ``kl_coef: 0`` needs no reference model).
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from zoo.batch import Batch, LossOutput, SequenceLogProbs
from zoo.config.sections import Validated
from zoo.rollout.settings import Sampling

if TYPE_CHECKING:  # torch is imported by what runs an algorithm, not by registering one
    from torch import Tensor, nn

    from zoo.rewards.sources import RewardSource
    from zoo.rollout.batches import Generation

DataShape = Literal["sft", "pairwise", "ranked", "unpaired", "prompt"]
DATA_SHAPES: tuple[str, ...] = typing.get_args(DataShape)


@dataclasses.dataclass
class Hyperparameters(Validated):
    """Base class of algorithm hyperparameter dataclasses.

    Subclasses declare typed fields with defaults and override :meth:`validate` to check
    ranges, raising :class:`zoo.errors.ConfigError` through :meth:`require` (and
    :meth:`require_positive`, :meth:`require_fraction`; :class:`zoo.config.sections.Validated`).
    Online algorithms add the sampling keys by also inheriting :class:`zoo.rollout.settings.Sampling`,
    which checks them. ``renamed_keys`` maps keys an earlier version spelled differently to
    today's spelling, so a config using them gets an error that says what to write.
    """

    key_prefix: ClassVar[str] = "algorithm_args"
    renamed_keys: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # e.g. Sampling's own checks
            parent()
        self.validate()

    def validate(self) -> None:
        """Check field ranges; called on construction."""


@dataclasses.dataclass
class ExperienceContext:
    """What an online algorithm may use in :meth:`Algorithm.make_experience`.

    The training loop builds one per step (:meth:`for_run`). Attributes:

    * ``policy``: the model being trained; ``reference``: the frozen reference (or None);
    * ``reward``: the configured reward source (``reward.score(prompts, responses) -> [N]``), or None;
    * ``tokenizer``; ``modules``: the algorithm's own extra modules (e.g. a value head);
    * ``step``, ``epoch``: the global step and current epoch; ``training``: False in validation,
      where run state such as an adaptive KL coefficient must not change;
    * ``metrics``: what :meth:`log` collected; the loop logs them as ``train/NAME``.
    """

    policy: nn.Module
    tokenizer: Any
    reference: nn.Module | None = None
    reward: RewardSource | None = None
    modules: Mapping[str, nn.Module] = dataclasses.field(default_factory=dict)
    step: int = 0
    epoch: int = 0
    training: bool = True
    metrics: dict[str, float | Tensor] = dataclasses.field(default_factory=dict)

    @classmethod
    def for_run(cls, policy: nn.Module, tokenizer: Any, **fields: Any) -> ExperienceContext:
        """A context for ``policy`` (the other fields as keywords); tests build theirs the same way."""
        return cls(policy=policy, tokenizer=tokenizer, **fields)

    def generate(self, batch: Batch, sampling: Sampling, *, model: nn.Module | None = None,
                 record_logps: bool = False, seed: int | None = None) -> Generation:
        """Sample ``sampling.samples_per_prompt`` responses to each prompt of ``batch``.

        From the policy, or from ``model`` (e.g. a snapshot of it); row ``i * n + j`` is sample
        ``j`` of prompt ``i``. ``record_logps`` keeps each sampled token's log-prob under the
        sampling model (:mod:`zoo.rollout.sampler`), which saves a forward pass when π_old is needed.
        """
        from zoo.rollout.sampler import Sampler  # generation is only needed by online algorithms

        sampler: Sampler = Sampler(self.policy if model is None else model, self.tokenizer)
        count = batch.prompt_ids.shape[0] * sampling.samples_per_prompt
        phase = f"{'training' if self.training else 'validation'} step {self.step}"
        source = "" if model is None else " from a snapshot of the policy"
        return sampler(batch.prompt_ids, batch.prompt_attention_mask, sampling, record_logps=record_logps, seed=seed,
                       progress=f"{phase}: sampling {count} responses{source}")

    def logprobs(self, model: nn.Module, batch: Batch, *, hidden_states: bool = False) -> SequenceLogProbs:
        """``model``'s log-probs of ``batch``'s scored tokens, computed the way training computes them."""
        from zoo.forward import batch_logprobs

        return batch_logprobs(model, batch, hidden_states=hidden_states)

    def log(self, **values: float | Tensor) -> None:
        """Report rollout statistics (scalars or tensors, averaged), logged as ``train/NAME``."""
        self.metrics.update(values)


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What :meth:`Algorithm.check_data` is told about a run's training data, once it is loaded.

    ``examples``: training examples (for ``unpaired`` data, labelled completions);
    ``desirable`` / ``undesirable``: how many of them carry each label (``unpaired`` data; 0 otherwise).
    """

    shape: str
    examples: int
    desirable: int = 0
    undesirable: int = 0


class Algorithm:
    """Base class of alignment algorithms. See the module docstring for the contract."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Args: ClassVar[type[Hyperparameters]] = Hyperparameters
    data_shape: ClassVar[DataShape] = "sft"
    needs_reference: ClassVar[bool] = False
    needs_reward: ClassVar[bool] = False
    generates_online: ClassVar[bool] = False
    output: ClassVar[Literal["logprobs", "scores"]] = "logprobs"
    #: Whether the loop should compute the policy's last hidden states along with the log-probs.
    wants_hidden_states: ClassVar[bool] = False
    #: Whether the loop turns the policy's dropout off for the whole run (before ``build_modules``).
    disables_dropout: ClassVar[bool] = False

    def __init__(self, args: Hyperparameters | None = None):
        self.args = args if args is not None else self.Args()

    # ----- configuration -------------------------------------------------------------------
    @classmethod
    def parse_args(cls, values: Mapping[str, Any] | None) -> Hyperparameters:
        """Build ``Args`` from a config mapping, rejecting unknown keys and wrong types."""
        from zoo.config import build_dataclass  # local: config imports this module's types

        return build_dataclass(cls.Args, dict(values or {}), prefix="algorithm_args")

    # ----- the loss ------------------------------------------------------------------------
    def loss(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None, batch: Batch) -> LossOutput:
        """Per-example losses from the policy's (and reference's) log-probs.

        ``reference`` is the reference model's :class:`SequenceLogProbs` (None when
        ``needs_reference`` is False). Read from the reference cache it carries the per-sequence
        values only (``token_logps`` is None). For ``output = "scores"`` algorithms
        ``policy.sum`` holds the ``[B, k]`` scores.
        """
        raise TypeError(f"algorithm {self.name!r} does not implement loss()")

    def check_data(self, summary: DataSummary) -> list[str]:
        """Advice on the training data, one warning per string; called once the data is loaded and
        before any model is. Raise :class:`zoo.errors.ConfigError` for data the algorithm cannot use."""
        return []

    # ----- optional hooks for online algorithms and extra trainable parts --------------------
    def build_modules(self, policy: nn.Module) -> dict[str, nn.Module]:
        """Extra trainable modules (e.g. a value head), trained and checkpointed with the policy."""
        return {}

    def make_experience(self, ctx: ExperienceContext, batch: Batch) -> Batch:
        """Turn a batch of prompts into a training batch (called under ``torch.no_grad``).

        Only called when ``generates_online`` is True.
        """
        raise TypeError(f"online algorithm {self.name!r} does not implement make_experience()")

    def minibatches(self, experience: Batch) -> Iterator[Batch]:
        """The optimiser steps to take on one experience batch (PPO: epochs × minibatches)."""
        yield experience

    def state_dict(self) -> dict[str, Any]:
        """Run state that must survive a resume (e.g. an adaptive KL coefficient)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
