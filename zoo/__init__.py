"""alignment-zoo: train and compare LLM alignment algorithms as plugins on one Lightning loop.

The public API that plugins import::

    from zoo import Algorithm, Hyperparameters, Batch, LossOutput, SequenceLogProbs, hookimpl

and, for online algorithms, ``ExperienceContext`` and ``Sampling``.
"""
from zoo.accuracy import pair_accuracy
from zoo.algorithm import Algorithm, ExperienceContext, Hyperparameters
from zoo.batch import Batch, LossOutput, SequenceLogProbs
from zoo.data.builtin import BuiltinDataset
from zoo.errors import ConfigError, DataError, PluginError, ZooError
from zoo.hookspecs import hookimpl
from zoo.rewards import RewardFunction
from zoo.sampling import Sampling

__version__ = "0.1.0"

__all__ = [
    "Algorithm", "Batch", "BuiltinDataset", "ConfigError", "DataError", "ExperienceContext", "Hyperparameters",
    "LossOutput", "PluginError", "RewardFunction", "Sampling", "SequenceLogProbs", "ZooError", "hookimpl",
    "pair_accuracy",
]
