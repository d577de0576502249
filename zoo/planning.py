"""Run planning: what a checked run config resolves to once the plugins are known.

:mod:`zoo.config` parses a run config and checks each section on its own; it knows nothing of
plugins. :func:`plan_run` is the step above it, taken by :func:`zoo.run.build_run` (and so by
``zoo train``) and by the benchmark's config checks before anything trains: it finds the selected
algorithm in the registry, parses its ``Args`` (once per plan), builds the algorithm and checks the
config against what that instance declares (data shape, reward and reference needs, online or
not). The capability flags are read from the instance, since an algorithm may set one from its
arguments (GRPO with ``kl_coef: 0`` needs no reference model).

A :class:`RunPlan` carries the results downward: the run builder trains ``plan.algorithm`` and
reads ``plan.kind``, without asking the registry again.
"""
from __future__ import annotations

import dataclasses

from zoo.algorithm import Algorithm, Hyperparameters
from zoo.config import RunConfig
from zoo.errors import ConfigError
from zoo.model_output import OutputKind, output_kind
from zoo.registry import get_registry


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """A run config with its algorithm resolved: built by :func:`plan_run`, consumed by one run.

    ``algorithm`` is the instance the run trains (holding its typed ``Args``); online algorithms
    keep state on it (rounds, an adaptive KL coefficient), so a plan serves one run: plan the
    config again for another.
    """

    config: RunConfig
    algorithm: Algorithm
    #: What the algorithm's ``output`` means: the model kind, its loader, forward and after-fit step.
    kind: OutputKind

    @property
    def args(self) -> Hyperparameters:
        """The algorithm's typed ``Args``, parsed from ``config.algorithm_args``."""
        return self.algorithm.args

    def with_config(self, config: RunConfig) -> RunPlan:
        """The same plan for ``config``, a copy of ``self.config`` with keys the algorithm does not
        read changed (e.g. the resolved ``output_dir``)."""
        if (config.algorithm, config.algorithm_args) != (self.config.algorithm, self.config.algorithm_args):
            raise ValueError("with_config keeps the algorithm; plan a config with other algorithm settings again")
        return dataclasses.replace(self, config=config)


def plan_run(config: RunConfig) -> RunPlan:
    """Resolve ``config``'s algorithm, parse its arguments and check the config against it.

    Every check that does not need data or a model runs here, so a bad config fails before any is
    loaded: the sections' own checks (:meth:`RunConfig.validate`, again for a config built by hand)
    and those that depend on the algorithm.
    """
    algorithm_cls = get_registry().algorithm(config.algorithm)
    algorithm = algorithm_cls(algorithm_cls.parse_args(config.algorithm_args))
    check_run(config, algorithm)
    return RunPlan(config, algorithm, output_kind(algorithm))


def check_run(config: RunConfig, algorithm: Algorithm) -> None:
    """The checks of ``config`` that depend on ``algorithm`` (an instance: its flags as its arguments set them)."""
    name = config.algorithm
    if algorithm.needs_reward and (config.reward is None or
                                   (config.reward.function is None and config.reward.model is None)):
        raise ConfigError(f"algorithm {name!r} needs a reward source: set "
                          f"reward.function (a registered reward function) or reward.model (a path).")
    config.validate()
    d = config.data
    if d.sft_from is not None and algorithm.data_shape != "sft":
        raise ConfigError(f"data.sft_from = {d.sft_from!r} picks SFT targets from preference data, but algorithm "
                          f"{name!r} reads {algorithm.data_shape!r} data; remove data.sft_from.")
    if config.train.log_completions_every_n_steps is not None and not algorithm.generates_online:
        raise ConfigError(f"train.log_completions_every_n_steps = {config.train.log_completions_every_n_steps}: "
                          f"algorithm {name!r} samples no completions while it trains (only online "
                          f"algorithms do); remove the key.")
    check_scale_options(config, algorithm)


def check_scale_options(config: RunConfig, algorithm: Algorithm) -> None:
    """Packed batches and cached reference log-probs only exist for offline log-prob algorithms."""
    name = config.algorithm
    offline = not algorithm.generates_online and algorithm.data_shape != "prompt"
    for key in ("padding_free", "shared_prefix"):
        if getattr(config.data, key) and not (offline and output_kind(algorithm).packs):
            why = "generates its batches online" if not offline else f"scores sequences ({algorithm.output!r})"
            raise ConfigError(f"data.{key} = true: algorithm {name!r} {why}; packed batches serve offline "
                              f"algorithms that score log-probs. Set data.{key}: false.")
    if config.train.reference_cache == "required" and not (algorithm.needs_reference and offline):
        why = "needs no reference model" if not algorithm.needs_reference else \
            "scores responses it generates during training, which no cache can hold in advance"
        raise ConfigError(f"train.reference_cache = 'required': algorithm {name!r} {why}. Use 'auto' or 'off'.")
