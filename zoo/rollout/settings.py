"""How responses are sampled: the one settings dataclass every sampler caller uses.

Online algorithms inherit it in their hyperparameters (``class MyArgs(Hyperparameters,
Sampling)``, so the keys sit flat in ``algorithm_args``), ``zoo pairs`` nests it under
``sampling:`` and the ``generation`` evaluation suite takes it as its options. Each key has one
spelling everywhere:

* ``samples_per_prompt``: responses drawn per prompt (GRPO's G, RLOO's k, best-of-n's n);
* ``max_new_tokens``: the response budget (generation stops earlier at EOS);
* ``temperature``: 0 is greedy decoding; the recorded log-probs are always at temperature 1;
* ``top_k`` (0: off) and ``top_p`` (1: off): truncation of the sampling distribution;
* ``packed_weights`` (off): on CPU, decoding steps multiply by weights pre-packed for oneDNN,
  about 1.2× faster rollouts on SmolLM2 but equal to the default only up to float rounding, so
  the same seed draws different samples (:mod:`zoo.rollout.packed`).

The settings check themselves on construction and name the config key at fault
(``algorithm_args.top_p``, ``sampling.top_p``, ...: the ``key_prefix`` of the class).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from zoo.errors import ConfigError


@dataclass
class Sampling:
    """Sampling settings; see the module docstring."""

    #: Responses sampled per prompt.
    samples_per_prompt: int = 1
    #: Longest response, in tokens.
    max_new_tokens: int = 32
    #: Sampling temperature (0: greedy decoding).
    temperature: float = 1.0
    #: Sample among the k most likely tokens only (0: all).
    top_k: int = 0
    #: Sample from the smallest set of tokens whose probability reaches p (1: all).
    top_p: float = 1.0
    #: CPU decoding on oneDNN-packed weights (faster; equal up to float rounding, not bit for bit).
    packed_weights: bool = False

    #: What errors put before a key (a subclass's config section).
    key_prefix: ClassVar[str] = "sampling"

    def __post_init__(self) -> None:
        self.check_sampling()
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # a Hyperparameters / options base class validates its own fields next
            parent()

    def check_sampling(self) -> None:
        """Raise a ConfigError naming the first out-of-range sampling key."""
        checks = [
            ("samples_per_prompt", _is_int(self.samples_per_prompt) and self.samples_per_prompt >= 1, "must be >= 1"),
            ("max_new_tokens", _is_int(self.max_new_tokens) and self.max_new_tokens >= 1, "must be >= 1"),
            ("temperature", _is_number(self.temperature) and self.temperature >= 0, "must be >= 0 (0: greedy)"),
            ("top_k", _is_int(self.top_k) and self.top_k >= 0, "must be >= 0 (0: no top-k truncation)"),
            ("top_p", _is_number(self.top_p) and 0 < self.top_p <= 1, "must be in (0, 1] (1: no top-p truncation)"),
            ("packed_weights", isinstance(self.packed_weights, bool), "must be true or false"),
        ]
        for key, ok, message in checks:
            if not ok:
                raise ConfigError(f"{self.key_prefix}.{key} = {getattr(self, key)!r}: {message}")

    @property
    def untempered(self) -> bool:
        """Whether samples come from the model's own distribution (T = 1, no truncation)."""
        return self.temperature == 1 and self.top_k == 0 and self.top_p == 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
