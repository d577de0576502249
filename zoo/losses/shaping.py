"""Reward shaping from a response's length and ending, one option set for every online algorithm.

With L_max = ``max_new_tokens``, |y| the response's token count and R its score:

* missing-EOS penalty P (TRL's ``missing_eos_penalty``; "The N implementation details of RLHF
  with PPO"): a response cut at L_max without a stop token gets R − P, so the policy learns to
  finish its answers (a reward model reads a cut-off text as if it were finished);
* over-long shaping (DAPO's soft over-long punishment, Yu et al. 2025, arXiv:2503.14476) over the
  last L_cache = ``overlong_window`` tokens of the budget, with scale c = ``overlong_penalty``:

      R_length(|y|) = 0                                  |y| ≤ L_max − L_cache
                    = c · ((L_max − L_cache) − |y|) / L_cache   L_max − L_cache < |y| ≤ L_max

  added to R: a linear ramp from 0 to −c, so length is discouraged before the cut, not only at it.

Online algorithms inherit :class:`RewardShaping` in their ``Args`` next to :class:`zoo.rollout.Sampling`
and call :func:`shape_rewards` on the scores of a rollout.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo.errors import ConfigError


@dataclass
class RewardShaping:
    """Length and ending shaping of rewards; see the module docstring."""

    #: P, subtracted from the reward of a response cut at ``max_new_tokens`` (None: no penalty).
    missing_eos_penalty: float | None = None
    #: L_cache, the window before ``max_new_tokens`` over which the over-long penalty ramps (None: off).
    overlong_window: int | None = None
    #: c, the over-long penalty at ``max_new_tokens``.
    overlong_penalty: float = 1.0

    key_prefix: ClassVar[str] = "algorithm_args"

    def __post_init__(self) -> None:
        self.check_shaping()
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()

    def check_shaping(self) -> None:
        """Raise a ConfigError naming the first out-of-range shaping key."""
        budget = getattr(self, "max_new_tokens", None)
        window = self.overlong_window
        checks = [
            ("missing_eos_penalty", self.missing_eos_penalty is None or self.missing_eos_penalty >= 0,
             "must be >= 0 (or null: no penalty)"),
            ("overlong_window", window is None or (isinstance(window, int) and window >= 1),
             "must be >= 1 tokens (or null: no over-long shaping)"),
            ("overlong_window", window is None or budget is None or window <= budget,
             f"must be at most max_new_tokens ({budget}): the window ends at the response budget"),
            ("overlong_penalty", self.overlong_penalty > 0, "must be > 0"),
        ]
        for key, ok, message in checks:
            if not ok:
                raise ConfigError(f"{self.key_prefix}.{key} = {getattr(self, key)!r}: {message}")


def overlong_shaping(lengths: Tensor, max_tokens: int, window: int, scale: float = 1.0) -> Tensor:
    """``[N]`` R_length of the module docstring: 0 up to L_max − L_cache, then a ramp down to −c."""
    start = max_tokens - window
    return -scale * ((lengths.float() - start) / window).clamp(0, 1)


def shape_rewards(scores: Tensor, finished: Tensor, lengths: Tensor, shaping: RewardShaping,
                  max_tokens: int) -> Tensor:
    """``[N]`` scores with the configured shaping applied (unchanged when none is configured).

    Args:
        finished: ``[N]`` bool, the response ended with a stop token (``Generation.finished``).
        lengths: ``[N]`` response token counts.
    """
    if shaping.missing_eos_penalty is not None:
        scores = scores - shaping.missing_eos_penalty * (~finished.to(scores.device)).to(scores.dtype)
    if shaping.overlong_window is not None:
        scores = scores + overlong_shaping(lengths.to(scores.device), max_tokens, shaping.overlong_window,
                                           shaping.overlong_penalty).to(scores.dtype)
    return scores
