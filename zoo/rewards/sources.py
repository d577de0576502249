"""The reward interfaces: :class:`RewardFunction`, what a plugin registers through the
``zoo_register_rewards`` hook, and :class:`RewardSource`, what scores (prompt, response) pairs for
the training loop, online algorithms (``ctx.reward``), evaluation and the benchmark.

A :class:`FunctionReward` is a registered function bound to its configured ``args``; a learned
reward model is :class:`zoo.rewards.model.ModelReward`. torch is imported when something is
scored, so that registering a reward function costs no torch import.
"""
from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import ConfigError, ZooError

if TYPE_CHECKING:
    import torch
    from torch import Tensor


@dataclass(frozen=True)
class RewardFunction:
    """A programmatic reward: ``fn(prompts, responses, **args) -> one float per pair``."""

    name: str
    fn: Callable[..., list[float]]
    description: str = ""


class RewardSource(abc.ABC):
    """Scores (prompt, response) pairs. Subclasses implement :meth:`_score`."""

    name: str = "reward"

    def score(self, prompts: list[str], responses: list[str]) -> Tensor:
        """float32 ``[N]`` rewards for ``N`` pairs."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
        if not responses:
            import torch

            return torch.zeros(0, dtype=torch.float32)
        return self._score(list(prompts), list(responses))

    @abc.abstractmethod
    def _score(self, prompts: list[str], responses: list[str]) -> Tensor:
        """float32 ``[N]`` rewards for ``N`` non-empty, equally long lists."""

    def to(self, device: torch.device | str) -> "RewardSource":
        """Move any model the source holds (the training loop calls this with its device)."""
        return self


class FunctionReward(RewardSource):
    """A :class:`RewardFunction` bound to its configured arguments."""

    def __init__(self, function: RewardFunction, args: dict[str, Any] | None = None):
        self.function = function
        self.name = function.name
        self.args = dict(args or {})
        self._check_args()

    def _check_args(self) -> None:
        try:
            parameters = inspect.signature(self.function.fn).parameters
        except (TypeError, ValueError):  # builtins without a signature: nothing to check
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return
        accepted = [name for name, p in list(parameters.items())[2:]
                    if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        for key in self.args:
            if key not in accepted:
                from zoo.errors import did_you_mean

                raise ConfigError(f"unknown config key 'reward.args.{key}' for reward function {self.name!r}"
                                  f"{did_you_mean(key, accepted)}. Known keys: {', '.join(accepted) or 'none'}.")

    def _score(self, prompts: list[str], responses: list[str]) -> Tensor:
        import torch

        values = list(self.function.fn(prompts, responses, **self.args))
        if len(values) != len(responses):
            raise ZooError(f"reward function {self.name!r} returned {len(values)} values for "
                           f"{len(responses)} responses")
        scores = torch.tensor([float(v) for v in values], dtype=torch.float32)
        if not torch.isfinite(scores).all():
            bad = int((~torch.isfinite(scores)).nonzero()[0])
            raise ZooError(f"reward function {self.name!r} returned {values[bad]!r} for response {bad}")
        return scores
