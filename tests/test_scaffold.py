"""``zoo plugins new NAME``: the skeleton installs, registers through its entry point and its own
tests pass before anything is changed; bad names and occupied folders are refused."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from zoo.cli import main
from zoo.testing import plugin_path

NAME = "calibrated_margin"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_DISABLE_PLUGINS", "PYTHONPATH")}
    return {**env, "TOKENIZERS_PARALLELISM": "false", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The skeleton written by the CLI, and a folder it is installed into (not the main environment)."""
    root = tmp_path_factory.mktemp("scaffold")
    assert main(["plugins", "new", NAME, "--dir", str(root / "src")]) == 0
    skeleton = root / "src" / "zoo-calibrated-margin"
    build = root / "build"  # setuptools writes build/ and *.egg-info next to the sources: keep a copy clean
    subprocess.run(["cp", "-r", str(skeleton), str(build)], check=True)
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(build)], check=True, env=clean_env(), capture_output=True)
    return skeleton, target


def test_the_skeleton_has_every_file_with_its_placeholders_filled(installed):
    skeleton, _ = installed
    files = sorted(str(p.relative_to(skeleton)) for p in skeleton.rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "configs/calibrated_margin.yaml", "pyproject.toml",
                     "tests/test_calibrated_margin.py", "zoo_calibrated_margin/__init__.py",
                     "zoo_calibrated_margin/calibrated_margin.py"]
    for path in skeleton.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), path
    module = (skeleton / "zoo_calibrated_margin" / "calibrated_margin.py").read_text()
    assert "class CalibratedMargin(Algorithm):" in module and 'name = "calibrated_margin"' in module


def test_the_installed_distribution_declares_the_entry_point(installed):
    _, target = installed
    (dist_info,) = target.glob("zoo_calibrated_margin-0.1.0.dist-info")
    entry_points = (dist_info / "entry_points.txt").read_text()
    assert "[zoo]\ncalibrated_margin = zoo_calibrated_margin.calibrated_margin" in entry_points


def test_the_skeletons_own_tests_pass_unchanged(installed, tmp_path):
    skeleton, target = installed
    # run from elsewhere so the package is imported from the installed copy, found via PYTHONPATH
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(skeleton / "tests")],
                            cwd=tmp_path, env=clean_env(PYTHONPATH=str(target)), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "5 passed" in result.stdout


def test_zoo_plugins_lists_the_installed_skeleton(installed, capsys):
    _, target = installed
    with plugin_path(target):
        assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins[NAME]["distribution"] == "zoo-calibrated-margin"
    assert plugins[NAME]["registers"] == {"algorithms": [NAME]}
    assert plugins[NAME]["error"] is None
    assert main(["plugins", "--json"]) == 0  # gone again once the folder leaves sys.path
    assert NAME not in {p["name"] for p in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize("name, message", [
    ("My-Algo", "try 'my_algo'"),
    ("2step", "try 'algo_2step'"),
    ("dpo", "already registered by plugin 'dpo'.*try 'my_dpo'"),
])
def test_bad_names_are_refused_with_a_suggestion(name, message, tmp_path, capsys):
    assert main(["plugins", "new", name, "--dir", str(tmp_path)]) == 2
    assert not list(tmp_path.iterdir())
    assert re.search(message, " ".join(capsys.readouterr().err.split()))


def test_an_occupied_folder_is_not_overwritten(tmp_path, capsys):
    occupied = tmp_path / "zoo-mine"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("keep me")
    assert main(["plugins", "new", "mine", "--dir", str(tmp_path)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in occupied.iterdir()] == ["notes.txt"]


def test_zoo_plugins_still_lists_plugins(capsys):
    assert main(["plugins", "--json"]) == 0
    names = {p["name"] for p in json.loads(capsys.readouterr().out)}
    assert {"dpo", "sft"} <= names
    assert main(["plugins"]) == 0
    assert "zoo plugins" in capsys.readouterr().out
