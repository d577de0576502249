"""Plugin loading: clashes, the ZOO_PLUGINS switches, bad hook names, faulty plugins."""
from __future__ import annotations

import importlib
import pkgutil
import sys
import textwrap
import types
import uuid

import pluggy
import pytest

import zoo
import zoo_plugins
from zoo import Algorithm, hookimpl, hookspecs
from zoo.errors import ConfigError, PluginError, ZooError
from zoo.registry import PluginInfo, Registry, get_registry


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch, fresh_registry):
    """Install a one-module distribution with a ``zoo`` entry point onto sys.path (as pip would lay it out)."""
    created: list[str] = []

    def install(source: str, *, entry_point: str = "fakeplug", dist: str = "zoo-fake-plugin",
                version: str = "1.2.3") -> str:
        module = f"zoo_test_plugin_{uuid.uuid4().hex[:8]}"
        root = tmp_path / module
        root.mkdir()
        (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(f"[zoo]\n{entry_point} = {module}\n", encoding="utf-8")
        monkeypatch.syspath_prepend(str(root))
        created.append(module)
        return module

    yield install
    for module in created:
        sys.modules.pop(module, None)


ALGORITHM_PLUGIN = """
    from zoo import Algorithm, hookimpl

    class Mirror(Algorithm):
        name = "mirror_test_algo"
        data_shape = "sft"

    @hookimpl
    def zoo_register_algorithms(register):
        register(Mirror)
"""


def _manager_with(**plugins: object) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos = {}
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
        infos[name] = PluginInfo(name, f"dist-{name}", "0.1", builtin=False)
    return pm, infos


def _plugin_registering(cls: type) -> types.SimpleNamespace:
    @hookimpl
    def zoo_register_algorithms(register):
        register(cls)

    return types.SimpleNamespace(zoo_register_algorithms=zoo_register_algorithms)


def test_duplicate_algorithm_names_name_both_plugins():
    class First(Algorithm):
        name = "same_name"

    class Second(Algorithm):
        name = "same_name"

    class Unrelated(Algorithm):
        name = "unrelated_algo"

    pm, infos = _manager_with(alpha_plugin=_plugin_registering(First), beta_plugin=_plugin_registering(Second),
                              gamma_plugin=_plugin_registering(Unrelated))
    registry = Registry(pm, infos)
    # selecting the clashing name is an error naming both plugins, never a silent pick of one
    with pytest.raises(PluginError) as info:
        registry.algorithm("same_name")
    message = str(info.value)
    assert "'same_name'" in message and "'alpha_plugin'" in message and "'beta_plugin'" in message
    assert "ZOO_DISABLE_PLUGINS=" in message
    assert any("'same_name'" in (p.error or "") for p in registry.plugins.values())  # shown by `zoo plugins`
    assert registry.algorithm("unrelated_algo") is Unrelated  # the rest of the registry works


def test_a_raising_hook_is_reported_and_the_others_still_load():
    class Fine(Algorithm):
        name = "fine_algo"

    @hookimpl
    def zoo_register_algorithms(register):
        register(Fine)  # registered, then withdrawn when the hook fails
        raise RuntimeError("boom")

    class Other(Algorithm):
        name = "other_algo"

    pm, infos = _manager_with(broken=types.SimpleNamespace(zoo_register_algorithms=zoo_register_algorithms),
                              good=_plugin_registering(Other))
    registry = Registry(pm, infos)
    assert registry.names("algorithms") == ["other_algo"]
    assert "RuntimeError: boom" in registry.plugins["broken"].error
    with pytest.raises(PluginError, match=r"'fine_algo' comes from the plugin 'broken'.*failed to load.*boom"):
        registry.algorithm("fine_algo")


def test_builtin_plugins_load_cleanly():
    registry = get_registry()
    builtins = {name: p for name, p in registry.plugins.items() if p.builtin}
    assert {"sft", "dpo", "rrhf", "slic_hf", "tiny_reviews", "train", "plugins", "mmlu", "fables"} <= set(builtins)
    assert {name: p.error for name, p in builtins.items() if p.error} == {}
    assert builtins["rrhf"].registers == {"algorithms": ["rrhf"]}


def test_every_module_imports():
    for package in (zoo, zoo_plugins):
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            importlib.import_module(module.name)


def test_third_party_plugin_is_discovered(installed_plugin, monkeypatch):
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS", raising=False)
    installed_plugin(ALGORITHM_PLUGIN)
    registry = get_registry()
    plugin = registry.plugins["fakeplug"]
    assert (plugin.distribution, plugin.version, plugin.builtin, plugin.error) == ("zoo-fake-plugin", "1.2.3",
                                                                                   False, None)
    assert plugin.registers == {"algorithms": ["mirror_test_algo"]}
    assert registry.algorithm("mirror_test_algo").name == "mirror_test_algo"


@pytest.mark.parametrize("variable,value", [("ZOO_PLUGINS", ""), ("ZOO_PLUGINS", "someone_else"),
                                            ("ZOO_DISABLE_PLUGINS", "fakeplug")])
def test_environment_switches_turn_third_party_plugins_off(variable, value, installed_plugin, monkeypatch):
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS", raising=False)
    installed_plugin(ALGORITHM_PLUGIN)
    monkeypatch.setenv(variable, value)
    registry = get_registry()
    assert "fakeplug" not in registry.plugins
    assert "mirror_test_algo" not in registry.names("algorithms")
    assert {"sft", "dpo", "rrhf", "slic_hf"} <= set(registry.names("algorithms"))  # built-ins stay


def test_zoo_plugins_allow_list_selects_by_name(installed_plugin, monkeypatch):
    installed_plugin(ALGORITHM_PLUGIN)
    monkeypatch.setenv("ZOO_PLUGINS", "fakeplug")
    assert "mirror_test_algo" in get_registry().names("algorithms")


def test_misspelled_hook_fails_loudly(installed_plugin, monkeypatch):
    """A hook pluggy does not know (``check_pending``) unloads the plugin, with a suggestion.

    Its correctly spelled hooks are withdrawn too, so nothing half-loaded is ever used, and asking
    for its algorithm points at the failure.
    """
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    installed_plugin(ALGORITHM_PLUGIN + """
    @hookimpl
    def zoo_register_dataset(register):  # singular: no such hook
        pass
    """)
    registry = get_registry()
    error = registry.plugins["fakeplug"].error
    assert "'zoo_register_dataset'" in error and "did you mean 'zoo_register_datasets'" in error
    assert "mirror_test_algo" not in registry.names("algorithms")
    with pytest.raises(ZooError, match=r"unknown algorithm 'mirror_test_algo'.*fakeplug.*zoo_register_dataset"):
        registry.algorithm("mirror_test_algo")


def test_plugin_that_fails_to_import_is_reported(installed_plugin, monkeypatch):
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    installed_plugin("import a_module_that_is_not_installed_anywhere\n")
    registry = get_registry()
    assert "ModuleNotFoundError" in registry.plugins["fakeplug"].error
    assert "sft" in registry.names("algorithms")


def test_registry_names_are_the_single_source_for_algorithms():
    """Help and errors read names from the registry, so a new algorithm appears everywhere at once."""
    names = get_registry().names("algorithms")
    with pytest.raises(ConfigError) as info:
        get_registry().algorithm("no_such_algorithm")
    assert all(name in str(info.value) for name in names)

