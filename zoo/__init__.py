"""alignment-zoo: train and compare LLM alignment algorithms as plugins on one Lightning loop.

``zoo`` is the front module of the training core: what a plugin (built-in or third-party) may
import from the core is exported here, and nowhere else::

    from zoo import Algorithm, Hyperparameters, Batch, LossOutput, SequenceLogProbs, hookimpl

Online algorithms add ``ExperienceContext``, ``Sampling`` and the rollout helpers
(``generation_batch``, ``take_rows``, ...). The applications have front modules of their own:
:mod:`zoo.eval` (evaluation suites), :mod:`zoo.bench` (benchmark tasks and the harness),
:mod:`zoo.app.pairs` (preference data from samples); :mod:`zoo.losses` holds loss math that algorithms
share, and :mod:`zoo.testing` is the kit for plugin tests.
``tests/test_public_api.py`` fails when a built-in plugin imports anything else.

The package's layout (``docs/architecture.md``): the modules directly in ``zoo/`` and
``zoo/data/`` are the training core (config → data → models → one LightningModule → a run
directory); ``zoo/eval/``, ``zoo/bench/`` and ``zoo/app/pairs.py`` are applications built on it.

The names below the first group are imported on first use, so that ``import zoo`` (which every
plugin does when the registry loads it) does not pull in transformers, the CLI or the trainer.
"""
from __future__ import annotations

import importlib
from typing import Any

from zoo.losses.accuracy import pair_accuracy
from zoo.algorithm import Algorithm, DataSummary, ExperienceContext, Hyperparameters
from zoo.batch import Batch, LossOutput, SequenceLogProbs
from zoo.data.builtin import BuiltinDataset
from zoo.errors import ConfigError, DataError, PluginError, ZooError
from zoo.hookspecs import hookimpl
from zoo.rewards.sources import RewardFunction
from zoo.rollout.settings import Sampling
from zoo.version import __version__


#: Exported names imported on first use, by owning module.
_LAZY_EXPORTS: dict[str, tuple[str, ...]] = {
    # runs
    "zoo.config": ("ModelConfig", "RewardConfig", "RunConfig", "load_config", "parse_override"),
    "zoo.run": ("Run", "RunResult", "build_run", "fit"),
    "zoo.signals": ("RunInterrupted",),
    # models, log-probs and sampling
    "zoo.models": ("frozen", "load_causal_lm", "load_tokenizer"),
    "zoo.forward": ("batch_logprobs",),
    "zoo.forward.logprobs": ("sequence_logprobs",),
    "zoo.rollout.sampler": ("Sampler",),
    "zoo.rollout.batches": ("encode_prompts", "generation_batch", "join_generations", "right_padded", "select_best",
                    "take_rows"),
    "zoo.rewards.loading": ("load_reward_source",),
    # data
    "zoo.data.examples": ("Example", "normalise"),
    "zoo.data.sources": ("read_rows",),
    # the reference cache, the registry, the terminal
    "zoo.refcache": ("cache_root", "describe_cache_files"),
    "zoo.registry": ("get_registry",),
    "zoo.terminal": ("console", "err_console"),
    "zoo.progress": ("to_stderr",),
    "zoo.app.scaffold": ("add_new_command",),
}
#: Exported under another name: ``zoo.training_guard`` is the module, so its ``train()`` is ``run_training``.
_RENAMED = {"run_training": ("zoo.training_guard", "train")}
_OWNER = {name: (module, name) for module, names in _LAZY_EXPORTS.items() for name in names} | _RENAMED


def __getattr__(name: str) -> Any:
    if name not in _OWNER:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    module, attribute = _OWNER[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_OWNER))


__all__ = [
    "Algorithm", "Batch", "BuiltinDataset", "ConfigError", "DataError", "DataSummary", "ExperienceContext",
    "Hyperparameters",
    "LossOutput", "PluginError", "RewardFunction", "Sampling", "SequenceLogProbs", "ZooError", "hookimpl",
    "pair_accuracy", *sorted(_OWNER),
]
