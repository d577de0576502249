"""alignment-zoo: train and compare LLM alignment algorithms as plugins on one Lightning loop.

The public API that plugins import::

    from zoo import Algorithm, Hyperparameters, Batch, LossOutput, SequenceLogProbs, hookimpl
"""
from zoo.accuracy import pair_accuracy
from zoo.algorithm import Algorithm, ExperienceContext, Hyperparameters, reference_sums
from zoo.batch import Batch, LossOutput, SequenceLogProbs
from zoo.data.builtin import BuiltinDataset
from zoo.errors import ConfigError, DataError, PluginError, ZooError
from zoo.hookspecs import hookimpl
from zoo.rewards import RewardFunction

__version__ = "0.1.0"

__all__ = [
    "Algorithm", "Batch", "BuiltinDataset", "ConfigError", "DataError", "ExperienceContext", "Hyperparameters",
    "LossOutput", "PluginError", "RewardFunction", "SequenceLogProbs", "ZooError", "hookimpl", "pair_accuracy", "reference_sums",
]
