"""Faulty third-party plugins are reported by name and do not stop anything else.

A real distribution with several faulty entry points is installed with
``pip install --no-deps --no-build-isolation --target TMP``; ``zoo.testing.plugin_path`` puts TMP
on ``sys.path`` (so ``importlib.metadata`` finds the entry points), rebuilds the registry, and
restores both afterwards.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from zoo import cli
from zoo.config import load_config
from zoo.errors import PluginError
from zoo.planning import plan_run
from zoo.registry import get_registry
from zoo.testing import plugin_path
from zoo.training_guard import train

DIST = "zoo-faulty-plugins"
MODULES = {
    "broken_import": """
        raise ImportError("this plugin needs the package 'not_installed_anywhere'")
    """,
    "broken_hook": """
        from zoo import hookimpl
        from zoo_plugins.algorithms.sft import SFT

        class HalfDone(SFT):
            name = "half_done"

        @hookimpl
        def zoo_register_algorithms(register):
            register(HalfDone)
            raise RuntimeError("boom while registering")
    """,
    "good_extra": """
        from zoo import hookimpl
        from zoo_plugins.algorithms.sft import SFT

        class ExtraSFT(SFT):
            name = "extra_sft"

        @hookimpl
        def zoo_register_algorithms(register):
            register(ExtraSFT)
    """,
    "clash": """
        from zoo import hookimpl
        from zoo_plugins.algorithms.dpo import DPO

        class OtherDPO(DPO):
            name = "dpo"

        @hookimpl
        def zoo_register_algorithms(register):
            register(OtherDPO)
    """,
    "typo_hook": """
        from zoo import hookimpl

        @hookimpl
        def zoo_register_algoritms(register):
            pass
    """,
    "bad_name": """
        from zoo import hookimpl
        from zoo_plugins.algorithms.sft import SFT

        class Escape(SFT):
            name = "../../escape"

        @hookimpl
        def zoo_register_algorithms(register):
            register(Escape)
    """,
    "exits_at_import": """
        import sys

        sys.exit(3)
    """,
    "exits_in_hook": """
        import sys
        from zoo import hookimpl

        @hookimpl
        def zoo_register_algorithms(register):
            sys.exit("leaving")
    """,
    "bad_command": """
        from zoo import hookimpl

        def add_arguments(parser):
            parser.add_argument("--x")
            parser.add_argument("--x")  # argparse refuses the duplicate

        @hookimpl
        def zoo_register_commands(register):
            register("oops", add_arguments, lambda args: 0, "a command whose arguments break")
            register("short", add_arguments)
    """,
}


@pytest.fixture(scope="module")
def faulty_site(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    package = source / "zoo_faulty"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, code in MODULES.items():
        (package / f"{name}.py").write_text(textwrap.dedent(code))
    entry_points = "\n".join(f'{name} = "zoo_faulty.{name}"' for name in MODULES)
    (source / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{DIST}"
        version = "0.1.0"

        [tool.setuptools]
        packages = ["zoo_faulty"]

        [project.entry-points.zoo]
    """) + entry_points + "\n")
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(site), str(source)], check=True)
    return site


def test_each_faulty_plugin_is_reported_with_distribution_and_reason(faulty_site):
    with plugin_path(faulty_site) as registry:
        plugins = registry.plugins
        for name in MODULES:
            assert plugins[name].distribution == DIST and plugins[name].version == "0.1.0"
        assert plugins["broken_import"].error == (
            "import failed: ImportError: this plugin needs the package 'not_installed_anywhere'")
        assert plugins["broken_hook"].error == "zoo_register_algorithms raised RuntimeError: boom while registering"
        assert plugins["exits_at_import"].error == "import failed: called sys.exit(3)"
        assert plugins["exits_in_hook"].error == "zoo_register_algorithms called sys.exit('leaving')"
        assert "half_done" not in registry.names("algorithms")  # withdrawn with its failing plugin
        assert "'zoo_register_algoritms', which is not a zoo hook (did you mean 'zoo_register_algorithms'?)" in (
            plugins["typo_hook"].error)
        assert "'../../escape'" in plugins["bad_name"].error and "../../escape" not in registry.names("algorithms")
        assert "registered by two plugins: 'dpo' and 'clash'" in plugins["clash"].error
        assert plugins["good_extra"].error is None and "extra_sft" in registry.names("algorithms")
        assert all(p.error is None for p in plugins.values() if p.builtin)
    assert get_registry().algorithm("dpo").__module__ == "zoo_plugins.algorithms.dpo"  # restored afterwards


def test_selecting_a_failed_plugins_algorithm_says_which_plugin_failed_and_why(faulty_site):
    with plugin_path(faulty_site):
        with pytest.raises(PluginError, match=r"'half_done' comes from the plugin 'broken_hook' "
                                              r"\(zoo-faulty-plugins 0.1.0\), which failed to load: "
                                              r"zoo_register_algorithms raised RuntimeError"):
            plan_run(load_config(raw={"algorithm": "half_done"}))
        with pytest.raises(PluginError, match=r"'broken_import' comes from the plugin 'broken_import'.*ImportError"):
            plan_run(load_config(raw={"algorithm": "broken_import"}))
        with pytest.raises(PluginError, match="registered by two plugins"):  # never a silent pick
            plan_run(load_config(raw={"algorithm": "dpo"}))
        with pytest.raises(Exception, match=r"Plugins that failed to load .*broken_import \(zoo-faulty-plugins "
                                            r"0.1.0\): import failed"):
            plan_run(load_config(raw={"algorithm": "nope"}))


def test_other_work_goes_on_while_faulty_plugins_are_installed(faulty_site, tmp_path, tiny_run, capsys):
    with plugin_path(faulty_site):
        raw = tiny_run("sft", tmp_path / "run", steps=1)
        raw["algorithm"] = "extra_sft"
        result = train(load_config(raw=raw))
        assert (result.output_dir / "model" / "model.safetensors").exists()
        capsys.readouterr()  # the run's progress lines

        assert cli.main(["plugins", "--json"]) == 0
        payload = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
        assert payload["broken_import"]["error"].startswith("import failed")
        assert payload["bad_command"]["error"] and "'short' must be registered as" in payload["bad_command"]["error"]
        assert payload["good_extra"]["registers"] == {"algorithms": ["extra_sft"]}

        assert cli.main(["plugins"]) == 0
        table = capsys.readouterr().out
        assert (f"failed: broken_import ({DIST} 0.1.0): import failed: ImportError: this plugin needs the package "
                "'not_installed_anywhere'") in table
        assert f"failed: exits_at_import ({DIST} 0.1.0): import failed: called sys.exit(3)" in table


def test_cli_names_the_failed_plugin_of_a_selected_algorithm_or_command(faulty_site, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"algorithm": "half_done", "output_dir": str(tmp_path / "out")}))
    with plugin_path(faulty_site):
        assert cli.main(["train", str(config)]) == 2
        err = capsys.readouterr().err
        assert "comes from the plugin 'broken_hook'" in err and "boom while registering" in err
        assert "Traceback" not in err
        assert cli.main(["oops"]) == 2
        assert "command 'oops' comes from the plugin bad_command (zoo-faulty-plugins 0.1.0)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_plugin_calling_sys_exit_at_import_does_not_end_the_command(faulty_site):
    """In a real `zoo plugins` process: the exit is caught, the plugin named, the command completes."""
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(faulty_site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "plugins"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"failed: exits_at_import ({DIST} 0.1.0): import failed: called sys.exit(3)" in done.stdout
    assert "exits_in_hook" in done.stdout and "dpo" in done.stdout
