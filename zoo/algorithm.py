"""The contract every alignment algorithm implements.

An algorithm is a subclass of :class:`Algorithm` registered through the
``zoo_register_algorithms`` hook. It declares:

* ``name`` and a typed hyperparameter dataclass ``Args`` (a :class:`Hyperparameters`
  subclass that validates its own fields);
* ``data_shape``: which collator feeds it (``sft``, ``pairwise``, ``ranked`` or ``prompt``);
* capability flags: ``needs_reference`` (the loop computes reference log-probs, or reads them
  from the cache), ``needs_reward`` (the run must configure a reward source),
  ``generates_online`` (the loop calls :meth:`Algorithm.make_experience` on each batch and
  switches to manual optimisation), ``output`` (``"logprobs"`` for a causal LM policy or
  ``"scores"`` for a scalar reward head);
* :meth:`Algorithm.loss`: a pure function of tensors returning per-example losses and metrics.

The core never branches on algorithm names: everything it does differently follows from these
declarations.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from zoo.batch import Batch, LossOutput, SequenceLogProbs
from zoo.errors import ConfigError

DataShape = Literal["sft", "pairwise", "ranked", "prompt"]
DATA_SHAPES: tuple[str, ...] = typing.get_args(DataShape)


@dataclasses.dataclass
class Hyperparameters:
    """Base class of algorithm hyperparameter dataclasses.

    Subclasses declare typed fields with defaults and override :meth:`validate` to check
    ranges, raising :class:`zoo.errors.ConfigError` through :meth:`require`.
    """

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check field ranges; called on construction."""

    def require(self, condition: bool, key: str, message: str) -> None:
        """Raise a ConfigError naming ``algorithm_args.KEY`` unless ``condition`` holds."""
        if not condition:
            value = getattr(self, key, None)
            raise ConfigError(f"algorithm_args.{key} = {value!r}: {message}")

    def require_positive(self, *keys: str) -> None:
        for key in keys:
            value = getattr(self, key)
            self.require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                         key, "must be a finite number > 0")

    def require_fraction(self, key: str, *, inclusive_high: bool = False) -> None:
        value = getattr(self, key)
        ok = isinstance(value, (int, float)) and 0 <= value and (value <= 1 if inclusive_high else value < 1)
        self.require(ok, key, f"must be in [0, 1{']' if inclusive_high else ')'}")


class ExperienceContext:
    """What an online algorithm may use in :meth:`Algorithm.make_experience`.

    The training loop builds one per run. ``policy`` is the model being trained, ``reference``
    the frozen reference (or None), ``reward`` the configured reward source (or None),
    ``generate`` the shared sampler bound to the policy and tokenizer, ``logprobs`` computes
    :class:`SequenceLogProbs` for a model and batch, ``modules`` the algorithm's own extra
    modules (e.g. a value head), ``step`` the global step, ``epoch`` the current epoch and
    ``training`` whether this is a training step (False in validation, where run state such as
    an adaptive KL coefficient must not change).
    """

    def __init__(self, **fields: Any):
        self.__dict__.update(fields)


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
    #: Whether the loop should compute hidden states / entropies along with the log-probs.
    wants_hidden_states: ClassVar[bool] = False
    wants_entropy: ClassVar[bool] = False

    def __init__(self, args: Hyperparameters | None = None):
        self.args = args if args is not None else self.Args()

    # ----- configuration -------------------------------------------------------------------
    @classmethod
    def parse_args(cls, values: Mapping[str, Any] | None) -> Hyperparameters:
        """Build ``Args`` from a config mapping, rejecting unknown keys and wrong types."""
        from zoo.config import build_dataclass  # local: config imports this module's types

        return build_dataclass(cls.Args, dict(values or {}), prefix="algorithm_args")

    # ----- the loss ------------------------------------------------------------------------
    def loss(self, policy: SequenceLogProbs, reference: SequenceLogProbs | Tensor | None,
             batch: Batch) -> LossOutput:
        """Per-example losses from the policy's (and reference's) log-probs.

        ``reference`` is the reference model's :class:`SequenceLogProbs`, or a ``[B, k]``
        tensor of cached reference sequence log-probs, or None when ``needs_reference`` is
        False. For ``output = "scores"`` algorithms ``policy.sum`` holds the ``[B, k]`` scores.
        """
        raise TypeError(f"algorithm {self.name!r} does not implement loss()")

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


def reference_sums(reference: SequenceLogProbs | Tensor) -> Tensor:
    """``[B, k]`` reference sequence log-probs, whether computed now or read from the cache."""
    return reference if isinstance(reference, Tensor) else reference.sum
