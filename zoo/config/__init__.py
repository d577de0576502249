"""Run configuration: typed sections, YAML loading, ``key.sub=value`` overrides, checks.

Every key is checked against the dataclass it belongs to: an unknown key is an error that names
it and suggests the closest known one, a wrong type names the key and the expected type.
Algorithm hyperparameters (``algorithm_args``) are validated against the selected algorithm's
own dataclass. The package has one module per job:

* :mod:`zoo.config.schema`: the sections (``model``, ``data``, ``train``...), each checking its own fields;
* :mod:`zoo.config.coerce`: dataclasses from plain mappings, with types coerced and keys checked;
* :mod:`zoo.config.loading`: YAML files, overrides and :func:`load_config`;
* :mod:`zoo.config.checks`: the checks that need the registry (the algorithm and what it declares).
"""
from zoo.config.checks import check_scale_options, checked_args, validate_run
from zoo.config.coerce import build_dataclass
from zoo.config.loading import apply_overrides, load_config, parse_override, read_yaml
from zoo.config.schema import (PRECISIONS, CheckedArgs, DataConfig, EvaluationConfig, LoraConfig, ModelConfig,
                               RewardConfig, RunConfig, TinyModelConfig, TrainConfig)

__all__ = [
    "PRECISIONS", "CheckedArgs", "DataConfig", "EvaluationConfig", "LoraConfig", "ModelConfig", "RewardConfig",
    "RunConfig", "TinyModelConfig", "TrainConfig", "apply_overrides", "build_dataclass", "check_scale_options",
    "checked_args", "load_config", "parse_override", "read_yaml", "validate_run",
]
