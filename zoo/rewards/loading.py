"""The reward source a ``reward`` config section selects: a registered reward function, found by
name (the one place rewards are looked up in the registry), or a saved reward model."""
from __future__ import annotations

from typing import Any

from zoo.config import RewardConfig
from zoo.errors import ConfigError, did_you_mean
from zoo.rewards.model import MODEL_ARGS, load_reward_model
from zoo.rewards.sources import FunctionReward, RewardFunction, RewardSource


def _model_args(args: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in args.items():
        if key not in MODEL_ARGS:
            raise ConfigError(f"unknown config key 'reward.args.{key}' for a reward model"
                              f"{did_you_mean(key, MODEL_ARGS)}. Known keys: {', '.join(MODEL_ARGS)}.")
        if key == "normalize" and not isinstance(value, bool):
            raise ConfigError(f"reward.args.normalize = {value!r}: expected true or false")
        if key != "normalize" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"reward.args.{key} = {value!r}: expected an integer >= 1")
        out[key] = value
    return out


def get_reward_function(name: str) -> RewardFunction:
    """The reward function registered as ``name``."""
    from zoo.registry import get_registry

    function = get_registry().get("rewards", name)
    if not isinstance(function, RewardFunction):
        raise ConfigError(f"reward function {name!r} was registered as {type(function).__name__}, "
                          f"not zoo.RewardFunction")
    return function


def load_reward_source(config: RewardConfig, tokenizer: Any = None) -> RewardSource:
    """The reward source a ``reward`` config section selects."""
    if config.function and config.model:
        raise ConfigError("reward.function and reward.model are both set; choose one.")
    if config.function:
        return FunctionReward(get_reward_function(config.function), config.args)
    if config.model:
        return load_reward_model(config.model, tokenizer=tokenizer, **_model_args(config.args))
    raise ConfigError("the reward section sets neither reward.function (a registered reward function) "
                      "nor reward.model (a reward model directory).")
