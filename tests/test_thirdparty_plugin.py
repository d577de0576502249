"""A plugin from outside the repository: pip-installed, found by its entry point, trained by name.

``tests/fixtures/zoo-thirdparty-demo`` is an ordinary distribution (its own ``pyproject.toml``
with a ``[project.entry-points.zoo]`` table) providing the ``unlikelihood`` algorithm. It is
installed with pip into a temporary directory that goes on ``sys.path``, where
``importlib.metadata`` finds its entry point exactly as for a site-packages install. Nothing in
``zoo/`` knows about it.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from zoo.cli import main
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.planning import plan_run
from zoo.registry import get_registry, reset_registry

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "zoo-thirdparty-demo"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("thirdparty")
    source = root / "src"
    # built from a copy: pip's in-tree build would leave build/ and *.egg-info in the repository
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-input", "-q",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"pip could not install the fixture distribution:\n{result.stdout}\n{result.stderr}")
    saved_env = {name: os.environ.pop(name, None) for name in ("ZOO_PLUGINS", "ZOO_DISABLE_PLUGINS")}
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    reset_registry()
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.split(".")[0] == "zoo_thirdparty_demo"]:
        del sys.modules[name]
    for name, value in saved_env.items():
        if value is not None:
            os.environ[name] = value
    importlib.invalidate_caches()
    reset_registry()


def test_listed_by_zoo_plugins_with_its_distribution(installed, capsys):
    assert main(["plugins", "--json"]) == 0
    payload = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    demo = payload["thirdparty_demo"]
    assert demo["distribution"] == "zoo-thirdparty-demo"
    assert demo["version"] == "0.3.1"
    assert demo["builtin"] is False
    assert demo["error"] is None
    assert demo["registers"] == {"algorithms": ["unlikelihood"]}
    module = get_registry().algorithm("unlikelihood").__module__
    assert module == "zoo_thirdparty_demo.unlikelihood"
    assert Path(sys.modules[module].__file__).resolve().is_relative_to(installed.resolve())


def test_its_loss_matches_hand_worked_numbers(installed):
    """Chosen token probs (1/2, 1/4): NLL = (ln 2 + ln 4)/2 = 1.5 ln 2.

    Rejected token probs (1/2, 3/4): −ln(1 − p) = (ln 2, ln 4), mean 1.5 ln 2. α = 1: L = 3 ln 2.
    A masked position holding log p = 0 (p = 1) must not turn the loss into NaN.
    """
    from zoo_thirdparty_demo.unlikelihood import unlikelihood_loss

    chosen = torch.tensor([[0.0, math.log(0.5), math.log(0.25)]])
    rejected = torch.tensor([[0.0, math.log(0.5), math.log(0.75)]])
    mask = torch.tensor([[False, True, True]])
    out = unlikelihood_loss(chosen, mask, rejected, mask, alpha=1.0)
    assert out.losses.item() == pytest.approx(3 * math.log(2), abs=1e-5)
    assert out.metrics["unlikelihood"].item() == pytest.approx(1.5 * math.log(2), abs=1e-5)


def test_trains_by_name_from_a_yaml_config(installed, tmp_path, capsys):
    config = {
        "algorithm": "unlikelihood",
        "algorithm_args": {"alpha": 0.5},
        "model": {"name": "tiny", "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                                           "num_key_value_heads": 1}},
        "data": {"train": "builtin:tiny_prefs", "builtin_size": 24, "eval_fraction": 0.25, "max_length": 48,
                 "max_prompt_length": 24},
        "train": {"batch_size": 6, "max_steps": 3, "learning_rate": 3e-3, "progress_bar": False},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "unlikelihood.yaml"
    path.write_text("# zoo train unlikelihood.yaml\n" + yaml.safe_dump(config), encoding="utf-8")
    assert main(["train", str(path)]) == 0
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["algorithm"] == "unlikelihood" and summary["steps"] == 3
    before, after = summary["before"], summary["after"]
    assert {"val/loss", "val/nll", "val/unlikelihood"} <= set(after)
    assert after["val/loss"] < before["val/loss"]  # three steps on the same task already help
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_disabled_by_empty_zoo_plugins(installed, monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "")
    reset_registry()
    try:
        assert "thirdparty_demo" not in get_registry().plugins
        with pytest.raises(ConfigError, match="unknown algorithm 'unlikelihood'"):
            plan_run(load_config(raw={"algorithm": "unlikelihood"}))
    finally:
        monkeypatch.delenv("ZOO_PLUGINS")
        reset_registry()
    assert "unlikelihood" in get_registry().names("algorithms")
