"""Trying plugins without installing them into the environment."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pluggy

import zoo.hookspecs as hookspecs
from zoo.errors import did_you_mean
from zoo.testing.conformance import ConformanceError


def registered_by(plugin: object) -> dict[str, list[str]]:
    """What ``plugin`` (a module or object with hookimpls) registers, by kind, without installing it.

    The plugin's hook implementations are validated against the hookspecs, as when it is loaded.
    """
    from zoo.registry import PluginInfo, Registry

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="plugin")
    known = [name for name in vars(hookspecs) if name.startswith("zoo_")]
    for hook_name, caller in vars(pm.hook).items():
        if isinstance(caller, pluggy.HookCaller) and not caller.has_spec():
            raise ConformanceError(f"the plugin implements {hook_name!r}, which is not a zoo hook"
                                   f"{did_you_mean(hook_name, known)}")
    info = PluginInfo("plugin", "local", "0", builtin=False)
    Registry(pm, {"plugin": info})
    if info.error:
        raise ConformanceError(f"the plugin failed to register: {info.error}")
    return info.registers


@contextmanager
def plugin_path(*paths: str | Path) -> Iterator[Any]:
    """Within the block, distributions installed in ``paths`` (``pip install --target PATH``) are
    importable and their ``zoo`` entry points load; yields the registry rebuilt with them.

    On exit ``sys.path`` is restored, modules imported from ``paths`` are forgotten and the
    registry is rebuilt without them, so a test can try an installed plugin without touching the
    environment.
    """
    from zoo.registry import get_registry, reset_registry

    roots = [Path(p).resolve() for p in paths]
    saved_path = list(sys.path)
    sys.path[:0] = [str(root) for root in roots]
    importlib.invalidate_caches()
    reset_registry()
    try:
        yield get_registry()
    finally:
        sys.path[:] = saved_path
        for name, module in list(sys.modules.items()):
            location = getattr(module, "__file__", None)
            if location and any(Path(location).resolve().is_relative_to(root) for root in roots):
                del sys.modules[name]
        importlib.invalidate_caches()
        reset_registry()
