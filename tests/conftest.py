"""Fixtures shared by the core tests: the tiny model, the shared real data, tiny run configs."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from zoo.registry import reset_registry

#: The built-in data set that feeds each data shape in tiny runs.
TINY_DATA_FOR_SHAPE = {
    "sft": "builtin:tiny_sft",
    "pairwise": "builtin:tiny_prefs",
    "ranked": "builtin:tiny_ranked",
    "unpaired": "builtin:tiny_unpaired",
    "prompt": "builtin:tiny_prompts",
}

#: ``ZOO_SHARED_DATA`` points a checkout that does not sit beside ``shared/`` at the data.
SHARED_DATA = Path(os.environ.get("ZOO_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the reference-log-prob cache of test runs out of the user's home directory."""
    previous = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = str(tmp_path_factory.mktemp("zoo-cache"))
    yield
    if previous is None:
        os.environ.pop("ZOO_CACHE_DIR", None)
    else:
        os.environ["ZOO_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def tiny_data_for_shape() -> dict[str, str]:
    return dict(TINY_DATA_FOR_SHAPE)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real public data sets); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizer():
    from zoo.tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture
def fresh_registry():
    """Rebuild the plugin registry around a test that changes what is loaded (env vars, sys.path)."""
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def tiny_run():
    """A builder of minimal raw run configs on the tiny model: ``tiny_run(algorithm, output_dir, **sections)``."""

    def build(algorithm: str, output_dir: Path | str, *, steps: int = 2, **sections: dict[str, Any]) -> dict:
        from zoo.registry import get_registry

        algorithm_cls = get_registry().algorithm(algorithm)
        raw: dict[str, Any] = {
            "algorithm": algorithm,
            "model": {"name": "tiny", "tiny": {"hidden_size": 32, "intermediate_size": 64,
                                               "num_attention_heads": 2, "num_key_value_heads": 1}},
            "data": {"train": TINY_DATA_FOR_SHAPE[algorithm_cls.data_shape], "builtin_size": 16,
                     "eval_fraction": 0.25, "max_length": 48, "max_prompt_length": 24},
            "train": {"batch_size": 4, "max_steps": steps, "learning_rate": 1e-3, "log_every_n_steps": 1,
                      "progress_bar": False, "accelerator": "cpu", "devices": 1},
            "output_dir": str(output_dir),
        }
        if algorithm_cls.needs_reward:
            raw["reward"] = {"function": "tiny_sentiment"}
        if "max_new_tokens" in {f.name for f in dataclasses.fields(algorithm_cls.Args)}:
            # sampling dominates an online smoke run; short responses exercise the same code
            raw["algorithm_args"] = {"max_new_tokens": 8}
        for section, values in sections.items():
            if isinstance(values, dict) and isinstance(raw.get(section), dict):
                raw[section] = {**raw[section], **values}
            else:
                raw[section] = values
        return raw

    return build
