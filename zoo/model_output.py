"""What an algorithm's declared ``output`` means to the core: which model it trains and how.

An algorithm declares ``output = "logprobs"`` (it trains a causal LM policy) or ``output =
"scores"`` (it trains a scalar reward head). Everything the core does differently for the two
lives in one object per kind, chosen by :func:`output_kind` — the loader, the LoRA task type,
the forward pass, what the runs of that kind check and what they store after training — so that
no other module tests the declaration's value.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from torch import nn

from zoo.batch import Batch, SequenceLogProbs

if TYPE_CHECKING:
    from zoo.config import ModelConfig


class OutputKind(abc.ABC):
    """The model an algorithm trains; see the module docstring."""

    #: The value of ``Algorithm.output`` this kind stands for.
    name: ClassVar[str]
    #: What it trains, in words (error messages, the benchmark's checks).
    role: ClassVar[str]
    #: What one per-sequence value is called (``log-prob`` or ``score``).
    value: ClassVar[str]
    #: peft's task type for LoRA adapters on this model.
    lora_task: ClassVar[Literal["CAUSAL_LM", "SEQ_CLS"]]
    #: Whether batches may be packed end to end (``data.padding_free``).
    packs: ClassVar[bool]
    #: Whether the model is a policy (samples text; what the benchmark compares).
    is_policy: ClassVar[bool]

    @abc.abstractmethod
    def load(self, config: ModelConfig, tokenizer: Any) -> nn.Module:
        """The starting model, as ``zoo train`` loads it."""

    @abc.abstractmethod
    def forward(self, model: nn.Module, batch: Batch, *, hidden_states: bool = False) -> SequenceLogProbs:
        """The per-sequence values of ``batch`` that the algorithm's loss receives."""

    def after_fit(self, model: nn.Module, examples: Sequence[Any], collate: Callable[[list[Any]], Batch], *,
                  batch_size: int, seed: int) -> None:
        """Anything stored with the trained ``model`` beyond its weights (called on rank 0, before saving).

        ``examples`` are every training example, batched ``batch_size`` at a time by ``collate`` in
        the order ``seed`` shuffles them to.
        """


class LogProbOutput(OutputKind):
    """A causal LM policy: per-token log-probs of the scored tokens."""

    name = "logprobs"
    role = "policy"
    value = "log-prob"
    lora_task = "CAUSAL_LM"
    packs = True
    is_policy = True

    def load(self, config: ModelConfig, tokenizer: Any) -> nn.Module:
        from zoo.models import load_causal_lm

        return load_causal_lm(config, tokenizer)

    def forward(self, model: nn.Module, batch: Batch, *, hidden_states: bool = False) -> SequenceLogProbs:
        from zoo.forward import batch_logprobs

        return batch_logprobs(model, batch, hidden_states=hidden_states)


class ScoreOutput(OutputKind):
    """A scalar reward head: one score per sequence, in ``SequenceLogProbs.sum`` (``[B, k]``)."""

    name = "scores"
    role = "scalar reward model"
    value = "score"
    lora_task = "SEQ_CLS"
    packs = False
    is_policy = False

    def load(self, config: ModelConfig, tokenizer: Any) -> nn.Module:
        from zoo.models import load_scalar_model

        return load_scalar_model(config, tokenizer)

    def forward(self, model: nn.Module, batch: Batch, *, hidden_states: bool = False) -> SequenceLogProbs:
        from zoo.forward import batch_logprobs

        return batch_logprobs(model, batch, scores=True)

    def after_fit(self, model: nn.Module, examples: Sequence[Any], collate: Callable[[list[Any]], Batch], *,
                  batch_size: int, seed: int) -> None:
        """The mean and spread of the trained model's scores, stored in its config for reward-source
        normalisation (:func:`zoo.rewards.model.record_score_statistics`)."""
        import torch
        from torch.utils.data import DataLoader

        from zoo.rewards.model import record_score_statistics

        # Every training example, in one process: not this process's share of a sharded loader.
        every_example = DataLoader(examples, batch_size=batch_size, collate_fn=collate, shuffle=True,
                                   generator=torch.Generator().manual_seed(seed))
        record_score_statistics(model, every_example)


OUTPUT_KINDS: dict[str, OutputKind] = {kind.name: kind for kind in (LogProbOutput(), ScoreOutput())}


def output_kind(algorithm: Any) -> OutputKind:
    """The :class:`OutputKind` an algorithm (class or instance) declares with ``output``."""
    declared = getattr(algorithm, "output", None)
    kind = OUTPUT_KINDS.get(declared)
    if kind is None:
        name = getattr(algorithm, "name", repr(algorithm))
        raise TypeError(f"algorithm {name!r} declares output = {declared!r}; expected one of "
                        f"{', '.join(map(repr, OUTPUT_KINDS))}")
    return kind
