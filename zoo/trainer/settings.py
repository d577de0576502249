"""Lightning Trainer settings (``train.accelerator``, ``train.strategy``, ``train.devices``...) checked up front.

:func:`check_trainer_names` compares the accelerator and strategy names with Lightning's own
registries, so a misspelt one is named with a suggestion before anything is loaded or written;
:func:`trainer_settings_error` turns what Lightning raises while building the Trainer (no such
device, a device count the accelerator cannot give) into one message naming the keys.
"""
from __future__ import annotations

import re
from typing import Any

from zoo.errors import ConfigError, did_you_mean

#: Names the Trainer accepts beside its registries' (``gpu`` picks CUDA or MPS).
_ACCELERATOR_ALIASES = ("auto", "gpu")
_STRATEGY_ALIASES = ("auto",)


def check_trainer_names(train: Any) -> None:
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    accelerators = sorted({*_ACCELERATOR_ALIASES, *AcceleratorRegistry.available_accelerators()})
    if str(train.accelerator).lower() not in accelerators:
        raise ConfigError(f"train.accelerator = {train.accelerator!r}: expected one of {', '.join(accelerators)}"
                          f"{did_you_mean(str(train.accelerator), accelerators)}")
    strategies = sorted({*_STRATEGY_ALIASES, *StrategyRegistry.available_strategies()})
    name = str(train.strategy).lower()
    if name not in strategies:
        raise ConfigError(f"train.strategy = {train.strategy!r}: expected one of {', '.join(strategies)}"
                          f"{did_you_mean(str(train.strategy), strategies)}")
    start = (StrategyRegistry[name].get("init_params") or {}).get("start_method") if name in StrategyRegistry else None
    if start in _STARTS_REFUSED:
        usable = re.sub(r"^ddp_(spawn|fork|notebook)", "ddp", name)
        raise ConfigError(f"train.strategy = {train.strategy!r} starts its processes by {start} from inside the fit "
                          f"call, which a run cannot use: {_STARTS_REFUSED[start]}. Use {usable!r}, which runs the "
                          "command once per process (or launch with torchrun, docs/scale.md)")


#: Why a strategy that starts its processes from inside ``Trainer.fit`` cannot train a run.
_STARTS_REFUSED = {
    "spawn": "it pickles the model to each new process, and transformers 5 models hold forward hooks "
             "(install_output_capuring_hook's) that cannot be pickled",
    "fork": "the forked processes train, and the run's own process, which writes the model, metrics "
            "and held-out evaluation, gets back only rank 0's weights, not its step count or state",
}


def trainer_settings_error(train: Any, exc: Exception) -> ConfigError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"Lightning cannot run with train.accelerator = {train.accelerator!r}, train.devices = "
                       f"{train.devices!r}, train.strategy = {train.strategy!r}, train.num_nodes = {train.num_nodes!r}"
                       f", train.precision = {train.precision!r}: {first_line}")
