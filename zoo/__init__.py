"""alignment-zoo: train and compare LLM alignment algorithms as plugins on one Lightning loop.

``zoo`` is the front module of the training core for plugins, built-in and third-party: the
algorithm contract, the errors to raise, what the hooks register, and the few core functions a
suite or a task calls on a model (docs/writing-plugins.md lists each name)::

    from zoo import Algorithm, Hyperparameters, Batch, LossOutput, SequenceLogProbs, hookimpl

The other front modules a plugin imports from: :mod:`zoo.losses` (loss math algorithms share),
:mod:`zoo.rollout` (sampling and rollout helpers of online algorithms), :mod:`zoo.data` (data sets
and rows), :mod:`zoo.eval` (evaluation suites), :mod:`zoo.bench` (benchmark tasks) and
:mod:`zoo.testing` (the kit for plugin tests). The commands and scripts that drive runs import
from :mod:`zoo.app`. ``tests/test_public_api.py`` fails when a built-in plugin imports anything
else.

The package's layout (``docs/architecture.md``): the training core (config → planning → data →
models → one LightningModule → a run directory), and the applications built on it: ``zoo/eval/``,
``zoo/bench/`` and ``zoo/app/``.

The functions below the first group are imported on first use, so that ``import zoo`` (which every
plugin does when the registry loads it) does not pull in transformers or the trainer.
"""
from __future__ import annotations

from zoo.algorithm import Algorithm, DataSummary, ExperienceContext, Hyperparameters
from zoo.batch import Batch, LossOutput, SequenceLogProbs
from zoo.errors import ConfigError, DataError, ZooError
from zoo.hookspecs import hookimpl
from zoo.lazy import lazy_exports
from zoo.rewards.sources import RewardFunction
from zoo.version import __version__

__getattr__, __dir__ = lazy_exports(globals(), {
    "zoo.config": ("ModelConfig", "RewardConfig"),
    "zoo.models": ("frozen", "load_causal_lm", "load_tokenizer"),
    "zoo.forward": ("batch_logprobs",),
    "zoo.forward.logprobs": ("sequence_logprobs",),
})

__all__ = [
    # the algorithm contract
    "Algorithm", "Hyperparameters", "Batch", "LossOutput", "SequenceLogProbs", "DataSummary", "ExperienceContext",
    # hooks, what they register, errors
    "hookimpl", "RewardFunction", "ConfigError", "DataError", "ZooError",
    # config sections a plugin builds
    "ModelConfig", "RewardConfig",
    # models and their log-probs
    "load_causal_lm", "load_tokenizer", "frozen", "batch_logprobs", "sequence_logprobs",
]
