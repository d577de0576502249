"""The worked example ``examples/zoo-extra-algorithms`` (SimPO as a third-party distribution).

It is installed into a temporary folder, never into the environment running the tests; that folder
is put on ``sys.path`` only inside :func:`zoo.testing.plugin_path`.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.planning import plan_run
from zoo.registry import reset_registry
from zoo.testing import plugin_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zoo-extra-algorithms"
ALGORITHMS = ("simpo",)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_DISABLE_PLUGINS", "PYTHONPATH")}
    return {**env, "TOKENIZERS_PARALLELISM": "false", **extra}


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("example")
    # setuptools writes build/ and *.egg-info beside the sources, so build from a copy
    source = shutil.copytree(EXAMPLE, root / "source", ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache", "runs"))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, env=clean_env(), capture_output=True)
    return site


def test_the_registry_lists_the_algorithm_with_its_distribution(target, capsys):
    with plugin_path(target) as registry:
        for name in ALGORITHMS:
            info = registry.plugins[name]
            assert (info.distribution, info.version, info.builtin, info.error) == \
                   ("zoo-extra-algorithms", "0.1.0", False, None)
            assert info.registers == {"algorithms": [name]}
            assert registry.algorithm(name).__module__ == f"zoo_extra_algorithms.{name}"
            assert Path(sys.modules[f"zoo_extra_algorithms.{name}"].__file__).is_relative_to(target.resolve())
        assert main(["plugins", "--json"]) == 0
        # KTO is built in: one implementation, which the example no longer shadows.
        assert registry.algorithm("kto").__module__ == "zoo_plugins.algorithms.kto"
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["simpo"]["registers"] == {"algorithms": ["simpo"]}
    assert listed["simpo"]["distribution"] == "zoo-extra-algorithms"


def test_without_the_distribution_the_configs_name_an_unknown_algorithm(monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "")  # built-ins only, even where the example is installed
    reset_registry()
    try:
        with pytest.raises(ConfigError, match="unknown algorithm 'simpo'"):
            plan_run(load_config(EXAMPLE / "configs" / "simpo.yaml"))
    finally:
        monkeypatch.undo()
        reset_registry()


def test_the_examples_own_tests_pass(target, tmp_path):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            cwd=tmp_path, env=clean_env(PYTHONPATH=str(target)), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 7 and "skipped" not in result.stdout


@pytest.mark.parametrize("name", ALGORITHMS)
def test_each_trains_by_name_from_its_yaml(name, target, tmp_path):
    from zoo.training_guard import train

    overrides = ["train.max_steps=2", "train.batch_size=4", "train.progress_bar=false", "data.builtin_size=24",
                 "data.eval_fraction=0.2", "train.val_check_interval=null", f"output_dir={tmp_path / 'run'}"]
    with plugin_path(target):
        config = load_config(EXAMPLE / "configs" / f"{name}.yaml", overrides)
        assert config.algorithm == name
        result = train(config)
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (summary["algorithm"], summary["steps"]) == (name, 2)
    after = result.metrics_after
    assert math.isfinite(after["val/loss"]) and "val/reward_margin" in after
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def test_the_bench_config_puts_simpo_beside_the_built_in_dpo_and_kto(target, monkeypatch):
    from zoo.bench.config import expand_runs
    from zoo.bench.loading import load_bench_config

    path = EXAMPLE / "configs" / "bench-smoke.yaml"
    with plugin_path(target):
        config = load_bench_config(path)
    assert [(c.label, c.spec.algorithm) for c in expand_runs(config)] == [
        ("SFT", None), ("DPO", "dpo"), ("SimPO", "simpo"), ("KTO", "kto")]
    monkeypatch.setenv("ZOO_PLUGINS", "")  # built-ins only, even where the example is installed
    reset_registry()
    try:
        with pytest.raises(ConfigError, match=r"runs\[2\]\.algorithm: unknown algorithm 'simpo'"):
            load_bench_config(path)
    finally:
        monkeypatch.undo()
        reset_registry()


def test_the_smoke_benchmark_runs_simpo_beside_dpo_and_kto(target, tmp_path):
    """`zoo bench` on the example's bench-smoke.yaml finishes and tables the third-party row by name beside
    the built-ins, KTO among them on the preference pairs read as unpaired completions."""
    output = tmp_path / "bench"
    with plugin_path(target):
        status = main(["bench", str(EXAMPLE / "configs" / "bench-smoke.yaml"), f"cache_dir={tmp_path / 'cache'}",
                       "--output", str(output)])
    assert status == 0
    results = json.loads((output / "results.json").read_text())
    rows = {c["label"]: c for c in results["contenders"]}
    assert [rows[label]["algorithm"] for label in ("DPO", "SimPO", "KTO")] == ["dpo", "simpo", "kto"]
    for label in ("DPO", "SimPO", "KTO"):
        per_seed = rows[label]["seeds"]["0"]
        assert per_seed["steps"] == 3 and math.isfinite(per_seed["gold"])
    assert all(f"| {label} |" in (output / "results.md").read_text() for label in rows)
