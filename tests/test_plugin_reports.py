"""What a user sees of plugins: a noisy plugin does not corrupt `zoo plugins --json`, a plugin that registers
something that is not an Algorithm is reported (not a crash), a disabled plugin is called disabled, and a plugin
that failed to load is named on every command."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zoo import cli
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.planning import plan_run
from zoo.registry import reset_registry
from zoo.testing import plugin_path

MODULES = {
    "noisy": """
        from zoo import hookimpl
        from zoo_plugins.algorithms.sft import SFT

        print("hello from a noisy plugin")

        class NoisySFT(SFT):
            name = "noisy_sft"

        @hookimpl
        def zoo_register_algorithms(register):
            print("registering...")
            register(NoisySFT)
    """,
    "not_an_algorithm": """
        from zoo import hookimpl

        class Thing:
            name = "thing"
            description = "not an algorithm"

        @hookimpl
        def zoo_register_algorithms(register):
            register(Thing)
            register("just_a_name")
    """,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    package = source / "zoo_reports"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, code in MODULES.items():
        (package / f"{name}.py").write_text(textwrap.dedent(code))
    entry_points = "\n".join(f'{name} = "zoo_reports.{name}"' for name in MODULES)
    (source / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "zoo-report-plugins"
        version = "0.1.0"

        [tool.setuptools]
        packages = ["zoo_reports"]

        [project.entry-points.zoo]
    """) + entry_points + "\n")
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(source)], check=True)
    return target


def test_plugins_json_stays_valid_json_and_non_algorithms_are_reported(site, capsys):
    with plugin_path(site) as registry:
        assert "noisy_sft" in registry.names("algorithms") and "thing" not in registry.names("algorithms")
        assert cli.main(["plugins", "--json"]) == 0
        out, err = capsys.readouterr()
    payload = {p["name"]: p for p in json.loads(out)}
    assert "hello from a noisy plugin" in err and "registering..." in err  # kept, on standard error
    assert payload["noisy"]["error"] is None
    assert "registered" in payload["not_an_algorithm"]["error"] and "subclass of zoo.Algorithm" in \
        payload["not_an_algorithm"]["error"]
    with plugin_path(site):
        assert cli.main(["plugins"]) == 0  # the table too
        out, err = capsys.readouterr()
    assert "failed:" in out and "not_an_algorithm" in out


def test_a_plugin_that_failed_to_load_is_named_on_every_command(site, capsys):
    with plugin_path(site):
        assert cli.main(["eval", "--list"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "not_an_algorithm (zoo-report-plugins 0.1.0)" in err


def test_a_disabled_plugins_algorithm_is_called_disabled(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "dpo")
    reset_registry()
    try:
        with pytest.raises(ConfigError) as raised:
            plan_run(load_config(raw={"algorithm": "dpo", "output_dir": str(tmp_path / "run")}))
    finally:
        monkeypatch.delenv("ZOO_DISABLE_PLUGINS")
        reset_registry()
    assert "which is disabled (ZOO_DISABLE_PLUGINS=dpo)" in str(raised.value)
    assert "did you mean" not in str(raised.value)
