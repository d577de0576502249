"""The run config's checks that need the registry: the selected algorithm and what it declares.

:func:`validate_run` is the last step of :func:`zoo.config.load_config`: it parses the
algorithm's ``Args`` (once: they are kept in ``RunConfig.checked`` for :func:`checked_args`),
runs the sections' own checks (:meth:`zoo.config.schema.RunConfig.validate`) and those that
depend on the algorithm's data shape, reward and reference needs.
"""
from __future__ import annotations

import copy
from typing import Any

from zoo.config.schema import CheckedArgs, RunConfig
from zoo.errors import ConfigError


def validate_run(config: RunConfig) -> None:
    """Check ``config`` against the registry and itself (before any model loads); keep the parsed ``Args``."""
    from zoo.registry import get_registry  # the registry loads plugins, which import this package

    algorithm_cls = get_registry().algorithm(config.algorithm)
    args = algorithm_cls.parse_args(config.algorithm_args)
    if algorithm_cls.needs_reward and (config.reward is None or
                                       (config.reward.function is None and config.reward.model is None)):
        raise ConfigError(f"algorithm {config.algorithm!r} needs a reward source: set "
                          f"reward.function (a registered reward function) or reward.model (a path).")
    config.validate()
    d = config.data
    if d.sft_from is not None and algorithm_cls.data_shape != "sft":
        raise ConfigError(f"data.sft_from = {d.sft_from!r} picks SFT targets from preference data, but algorithm "
                          f"{config.algorithm!r} reads {algorithm_cls.data_shape!r} data; remove data.sft_from.")
    if config.train.log_completions_every_n_steps is not None and not algorithm_cls.generates_online:
        raise ConfigError(f"train.log_completions_every_n_steps = {config.train.log_completions_every_n_steps}: "
                          f"algorithm {config.algorithm!r} samples no completions while it trains (only online "
                          f"algorithms do); remove the key.")
    check_scale_options(config, algorithm_cls)
    config.checked = CheckedArgs(config.algorithm, copy.deepcopy(config.algorithm_args), args)


def checked_args(config: RunConfig) -> Any:
    """The algorithm's typed ``Args`` for ``config``: those :func:`validate_run` built, or (for a
    config built or changed by hand since) the result of checking it now."""
    checked = config.checked
    if checked is None or checked.algorithm != config.algorithm or checked.source != config.algorithm_args:
        validate_run(config)
        checked = config.checked
    return checked.args


def check_scale_options(config: RunConfig, algorithm_cls: Any) -> None:
    """Packed batches and cached reference log-probs only exist for offline log-prob algorithms."""
    from zoo.model_output import output_kind

    name = config.algorithm
    offline = not algorithm_cls.generates_online and algorithm_cls.data_shape != "prompt"
    if config.data.padding_free and not (offline and output_kind(algorithm_cls).packs):
        why = "generates its batches online" if not offline else f"scores sequences ({algorithm_cls.output!r})"
        raise ConfigError(f"data.padding_free = true: algorithm {name!r} {why}; packed batches serve offline "
                          f"algorithms that score log-probs. Set data.padding_free: false.")
    if config.train.reference_cache == "required" and not (algorithm_cls.needs_reference and offline):
        why = "needs no reference model" if not algorithm_cls.needs_reference else \
            "scores responses it generates during training, which no cache can hold in advance"
        raise ConfigError(f"train.reference_cache = 'required': algorithm {name!r} {why}. Use 'auto' or 'off'.")
