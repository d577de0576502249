"""The reward source a ``reward`` config section selects: a registered reward function, found by
name (the one place rewards are looked up in the registry), or a saved reward model."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from zoo.config import RewardConfig
from zoo.errors import ConfigError, did_you_mean
from zoo.rewards.model import MODEL_ARGS, default_prompt_policy, load_reward_model
from zoo.rewards.sources import FunctionReward, RewardFunction, RewardSource

if TYPE_CHECKING:
    from zoo.data.truncation import PromptPolicy


def _model_args(args: dict[str, Any], prompts: PromptPolicy | None = None) -> dict[str, Any]:
    """``reward.args`` of a reward model as :func:`load_reward_model` keywords, checked; ``prompts``: the
    caller's prompt policy, which ``reward.args.max_prompt_length`` / ``prompt_truncation`` override."""
    from zoo.data.truncation import PromptPolicy

    out: dict[str, Any] = {}
    for key, value in args.items():
        if key not in MODEL_ARGS:
            raise ConfigError(f"unknown config key 'reward.args.{key}' for a reward model"
                              f"{did_you_mean(key, MODEL_ARGS)}. Known keys: {', '.join(MODEL_ARGS)}.")
        if key == "normalize" and not isinstance(value, bool):
            raise ConfigError(f"reward.args.normalize = {value!r}: expected true or false")
        if key == "prompt_truncation" and value not in ("keep_end", "keep_start"):
            raise ConfigError(f"reward.args.prompt_truncation = {value!r}: expected keep_end or keep_start")
        if key not in ("normalize", "prompt_truncation") and (isinstance(value, bool) or not isinstance(value, int)
                                                              or value < 1):
            raise ConfigError(f"reward.args.{key} = {value!r}: expected an integer >= 1")
        out[key] = value
    budget, truncation = out.pop("max_prompt_length", None), out.pop("prompt_truncation", None)
    policy = prompts or default_prompt_policy(out.get("max_length", 512))
    if budget is not None:
        policy = PromptPolicy(budget, policy.truncation, "reward.args.max_prompt_length")
    if truncation is not None:
        policy = dataclasses.replace(policy, truncation=truncation)
    out["prompts"] = policy
    return out


def get_reward_function(name: str) -> RewardFunction:
    """The reward function registered as ``name``."""
    from zoo.registry import get_registry

    function = get_registry().get("rewards", name)
    if not isinstance(function, RewardFunction):
        raise ConfigError(f"reward function {name!r} was registered as {type(function).__name__}, "
                          f"not zoo.RewardFunction")
    return function


def load_reward_source(config: RewardConfig, tokenizer: Any = None, *, prompts: PromptPolicy | None = None
                       ) -> RewardSource:
    """The reward source a ``reward`` config section selects.

    ``prompts``: the caller's prompt truncation policy (a run's ``PromptPolicy.from_data(config.data)``),
    which a reward model scores with unless ``reward.args`` sets its own (see the module docstring).
    """
    if config.function and config.model:
        raise ConfigError("reward.function and reward.model are both set; choose one.")
    if config.function:
        return FunctionReward(get_reward_function(config.function), config.args)
    if config.model:
        return load_reward_model(config.model, tokenizer=tokenizer, **_model_args(config.args, prompts))
    raise ConfigError("the reward section sets neither reward.function (a registered reward function) "
                      "nor reward.model (a reward model directory).")
