"""Run configuration: typed sections, YAML loading, ``key.sub=value`` overrides.

Every key is checked against the dataclass it belongs to: an unknown key is an error that names
it and suggests the closest known one, a wrong type names the key and the expected type, and each
section checks its own ranges. The package knows nothing of plugins: the checks that need the
selected algorithm (its ``algorithm_args``, data shape, reward and reference needs) are
:func:`zoo.planning.plan_run`'s. One module per job:

* :mod:`zoo.config.sections`: :class:`~zoo.config.sections.Validated`, the base of every section
  (and of algorithm ``Args``): range checks whose errors name ``SECTION.KEY``;
* :mod:`zoo.config.schema`: the sections (``model``, ``data``, ``train``...), each checking its own fields;
* :mod:`zoo.config.coerce`: dataclasses from plain mappings, with types coerced and keys checked;
* :mod:`zoo.config.yaml_dialect`: the YAML configs are read as (no duplicated keys, no YAML 1.1 booleans);
* :mod:`zoo.config.loading`: YAML files, overrides and :func:`load_config`.
"""
from zoo.config.coerce import build_dataclass
from zoo.config.loading import apply_overrides, load_config, parse_override, read_yaml
from zoo.config.schema import (PRECISIONS, DataConfig, EvaluationConfig, LoraConfig, ModelConfig, RewardConfig,
                               RunConfig, TinyModelConfig, TrainConfig)

__all__ = [
    "PRECISIONS", "DataConfig", "EvaluationConfig", "LoraConfig", "ModelConfig", "RewardConfig", "RunConfig",
    "TinyModelConfig", "TrainConfig", "apply_overrides", "build_dataclass", "load_config", "parse_override",
    "read_yaml",
]
