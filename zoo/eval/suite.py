"""The contract of an evaluation suite.

A suite is a subclass of :class:`Suite` registered through the ``zoo_register_suites`` hook. It
declares a ``name``, an ``Options`` dataclass (validated like algorithm hyperparameters; set from
the command line as ``--option NAME.KEY=VALUE``) and ``default_num_fewshot`` (None for a
zero-shot suite), and implements:

* :meth:`Suite.load` ``(data_dir, limit)``: read its data, from the Hugging Face Hub by default or
  from a local directory of the original release files; ``limit`` keeps the first N items
  (per subject for MMLU). Called once; a loaded suite can run many times (the training callback);
* :meth:`Suite.run` ``(model, tokenizer, context)``: score the model and return a
  :class:`zoo.eval.results.SuiteResult` (metric → value ± stderr, one sample record per item).

What a run may use beyond the model, such as a reward source, a reference model, the batch size or
the few-shot count, travels in an :class:`EvalContext`; a suite that needs something absent raises
a :class:`zoo.errors.ConfigError` saying which command-line flag provides it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import nn

from zoo.errors import ConfigError
from zoo.eval.results import SuiteResult


@dataclass
class SuiteOptions:
    """Base class of suite option dataclasses. Override :meth:`validate` and use :meth:`require`."""

    def validate(self) -> None:
        """Check field ranges; called after the options are built."""

    def require(self, condition: bool, key: str, message: str) -> None:
        if not condition:
            prefix = getattr(self, "_suite", "suite")
            raise ConfigError(f"option {prefix}.{key} = {getattr(self, key, None)!r}: {message}")


@dataclass
class EvalContext:
    """Everything a suite run may use besides the model and tokenizer.

    Attributes:
        batch_size: sequences per forward pass.
        num_fewshot: few-shot examples per question (None: the suite's default).
        reward: a reward source (``.score(prompts, responses) -> [N]``), or None.
        reference: a frozen reference causal LM, or None.
        seed: seed of any sampling.
        share_prefix: reuse the key/value cache of prompt prefixes shared across questions.
        layout: how the log-likelihood scorer runs a batch, ``"blocks"`` or ``"batched"``
            (:class:`zoo.eval.loglik.LoglikScorer`).
        progress: called with a count of finished units of work (for progress bars).
    """

    batch_size: int = 16
    num_fewshot: int | None = None
    reward: Any = None
    reference: nn.Module | None = None
    seed: int = 0
    share_prefix: bool = True
    layout: str = "blocks"
    progress: Callable[[int], None] | None = None


class Suite:
    """Base class of evaluation suites. See the module docstring for the contract."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[SuiteOptions]] = SuiteOptions
    #: Few-shot examples per question when none are asked for; None for a zero-shot-only suite.
    default_num_fewshot: ClassVar[int | None] = None

    def __init__(self, options: SuiteOptions | Mapping[str, Any] | None = None):
        self.options = options if isinstance(options, SuiteOptions) else self.parse_options(options)
        self.source: str | None = None
        self.loaded = False

    @classmethod
    def parse_options(cls, values: Mapping[str, Any] | None) -> SuiteOptions:
        """Build ``Options`` from a mapping, rejecting unknown keys and wrong types."""
        from zoo.config import build_dataclass  # config imports the registry, which loads plugins

        options = build_dataclass(cls.Options, dict(values or {}), prefix=cls.name)
        object.__setattr__(options, "_suite", cls.name)
        options.validate()
        return options

    def num_fewshot(self, requested: int | None) -> int:
        """The few-shot count a run uses."""
        if self.default_num_fewshot is None:
            return 0
        return self.default_num_fewshot if requested is None else requested

    def load(self, data_dir: str | Path | None = None, limit: int | None = None) -> None:
        """Read the data (see the module docstring) and set ``self.source``."""
        raise TypeError(f"suite {self.name!r} does not implement load()")

    def uses_model(self, reward: Any, reference: Any) -> bool:
        """Whether this suite needs the evaluated model, given the reward source and reference (if any):
        ``zoo eval`` runs without ``--model`` when no suite does."""
        return True

    def run(self, model: nn.Module | None, tokenizer, context: EvalContext) -> SuiteResult:
        """Score ``model`` and return its metrics and per-item samples."""
        raise TypeError(f"suite {self.name!r} does not implement run()")

    def size(self) -> int:
        """Units of work a run reports through ``context.progress`` (0: unknown)."""
        return 0

    def headline(self, metric: str) -> bool:
        """Whether ``metric`` belongs in the summary table (all metrics go to results.json)."""
        return True

    def settings(self) -> dict[str, Any]:
        """What the numbers depend on, written to results.json with them."""
        return {"source": self.source, "options": dataclasses.asdict(self.options)}
