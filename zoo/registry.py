"""Plugin loading and the registry of everything plugins provide.

Built-in plugins are the modules of the ``zoo_plugins`` package (the repository's ``plugins/``
folder, one sub-folder per kind); third-party plugins come from the ``zoo`` entry-point group.
Both go through the same hooks, so a built-in has no back door a third-party plugin lacks.

Environment variables:

``ZOO_PLUGINS``
    Unset: load every installed third-party plugin. Empty: load none (built-ins only).
    ``a,b``: load only the entry points named ``a`` and ``b``.
``ZOO_DISABLE_PLUGINS``
    Comma-separated plugin names (entry-point names, or built-in module names such as ``dpo``
    or ``mmlu``) that are not loaded.
"""
from __future__ import annotations

import importlib
import importlib.metadata as metadata
import contextlib
import os
import pkgutil
import sys
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pluggy

import zoo.hookspecs as hookspecs
from zoo.errors import ConfigError, PluginError, did_you_mean
from zoo.paths import is_safe_name

ENTRY_POINT_GROUP = "zoo"
BUILTIN_PACKAGE = "zoo_plugins"
KINDS = ("algorithms", "datasets", "rewards", "suites", "tasks", "commands")


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin, as ``zoo plugins`` shows it."""

    name: str
    distribution: str
    version: str
    builtin: bool
    registers: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    #: Names the plugin had registered before it failed (withdrawn), by kind.
    withdrawn: dict[str, list[str]] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        self.error = message if self.error is None else f"{self.error}; {message}"

    def describe(self) -> str:
        return f"{self.name} ({self.distribution} {self.version}): {self.error}"


@dataclass
class Entry:
    name: str
    obj: Any
    plugin: str


class Registry:
    """Everything the loaded plugins registered, looked up by kind and name."""

    def __init__(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo]):
        self.pm = pm
        self.plugins = infos
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        #: Names registered by more than one plugin: selecting one is an error, not a silent pick.
        self._clashes: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            self._collect(kind)

    def _collect(self, kind: str) -> None:
        hook = getattr(self.pm.hook, f"zoo_register_{kind}")
        for impl in hook.get_hookimpls():  # registration order: built-ins first, so a clash blames the newcomer
            plugin_name = self.pm.get_name(impl.plugin)
            info = self.plugins[plugin_name]
            found: list[str] = []

            def register(obj: Any, *args: Any, _found=found, _plugin=plugin_name) -> None:
                name = obj if isinstance(obj, str) else getattr(obj, "name", None)
                if not isinstance(name, str) or not name:
                    raise PluginError(f"plugin {_plugin!r} registered a {kind[:-1]} without a name: {obj!r}")
                if not is_safe_name(name):  # names become file names (e.g. samples_<suite>.jsonl)
                    raise PluginError(f"plugin {_plugin!r} registered a {kind[:-1]} named {name!r}; names may only "
                                      f"use letters, digits, '_', '.' and '-'")
                if kind == "algorithms" and not _is_algorithm(obj):
                    raise PluginError(f"plugin {_plugin!r} registered {obj!r} as an algorithm; an algorithm must be "
                                      f"a subclass of zoo.Algorithm")
                value = (obj, *args) if args else obj
                existing = self._entries[kind].get(name)
                if existing is not None:
                    message = (f"{kind[:-1]} {name!r} is registered by two plugins: {existing.plugin!r} and "
                               f"{_plugin!r}. Uninstall one of them or disable it with "
                               f"ZOO_DISABLE_PLUGINS={_plugin}.")
                    self._clashes[kind][name] = message
                    self.plugins[_plugin].fail(message)
                    return
                self._entries[kind][name] = Entry(name, value, _plugin)
                _found.append(name)

            try:
                impl.function(register=register)
            except (Exception, SystemExit) as exc:  # a faulty plugin must not stop the others
                info.fail(f"zoo_register_{kind} {'' if isinstance(exc, SystemExit) else 'raised '}{_raised(exc)}")
                info.traceback = traceback.format_exc()
                for name in found:
                    self._entries[kind].pop(name, None)
                if found:
                    info.withdrawn.setdefault(kind, []).extend(found)
                continue
            if found:
                info.registers.setdefault(kind, []).extend(found)

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> dict[str, Entry]:
        return dict(self._entries[kind])

    def get(self, kind: str, name: str) -> Any:
        entries = self._entries[kind]
        if name in self._clashes[kind]:
            raise PluginError(self._clashes[kind][name])
        if name not in entries:
            for plugin in self.plugins.values():
                if name in plugin.withdrawn.get(kind, []) or (plugin.error and plugin.name == name):
                    raise PluginError(f"{kind[:-1]} {name!r} comes from the plugin {plugin.name!r} "
                                      f"({plugin.distribution} {plugin.version}), which failed to load: {plugin.error}")
            disabled = _csv_env("ZOO_DISABLE_PLUGINS") or set()
            if name in disabled:
                raise ConfigError(f"{kind[:-1]} {name!r} comes from the plugin {name!r}, which is disabled "
                                  f"(ZOO_DISABLE_PLUGINS={os.environ.get('ZOO_DISABLE_PLUGINS')}); remove it from "
                                  f"that list to use it.")
            failed = [p.describe() for p in self.plugins.values() if p.error]
            hint = (f" Plugins that failed to load (see `zoo plugins`): {'; '.join(failed)}." if failed else "")
            if disabled:
                hint += f" Plugins disabled by ZOO_DISABLE_PLUGINS: {', '.join(sorted(disabled))}."

            available = ", ".join(sorted(entries)) or "none"
            raise ConfigError(
                f"unknown {kind[:-1]} {name!r}{did_you_mean(name, entries)}. "
                f"Available: {available}.{hint}")
        return entries[name].obj

    def algorithm(self, name: str):
        return self.get("algorithms", name)


def _is_algorithm(obj: Any) -> bool:
    from zoo.algorithm import Algorithm

    return isinstance(obj, type) and issubclass(obj, Algorithm)


def _raised(exc: BaseException) -> str:
    """``TypeName: message``, or ``called sys.exit(CODE)`` for a plugin that tried to end the process."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _csv_env(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _builtin_modules() -> dict[str, str]:
    """The built-in plugins, ``{plugin name: module}``: each module of ``zoo_plugins``'s kind folders
    (``algorithms/``, ``suites/``, ``tasks/``, ``datasets/``, ``commands/``), named after its file."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    modules: dict[str, str] = {}
    for folder in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if folder.name.startswith("_"):
            continue
        if not folder.ispkg:
            modules[folder.name] = f"{BUILTIN_PACKAGE}.{folder.name}"
            continue
        kind = importlib.import_module(f"{BUILTIN_PACKAGE}.{folder.name}")
        for module in sorted(pkgutil.iter_modules(kind.__path__), key=lambda m: m.name):
            if module.name.startswith("_"):
                continue
            qualified = f"{BUILTIN_PACKAGE}.{folder.name}.{module.name}"
            if module.name in modules:  # names are what ZOO_DISABLE_PLUGINS and `zoo plugins` know
                raise PluginError(f"two built-in plugins are named {module.name!r}: {modules[module.name]} and "
                                  f"{qualified}")
            modules[module.name] = qualified
    return modules


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    disabled = _csv_env("ZOO_DISABLE_PLUGINS") or set()
    allowed = _csv_env("ZOO_PLUGINS")
    try:
        zoo_version = metadata.version("alignment-zoo")
    except metadata.PackageNotFoundError:
        zoo_version = "unknown"

    for short, qualified in _builtin_modules().items():
        if short in disabled:
            continue
        info = PluginInfo(short, "alignment-zoo", zoo_version, builtin=True)
        infos[short] = info
        try:
            module = importlib.import_module(qualified)
            pm.register(module, name=short)
        except (Exception, SystemExit) as exc:
            info.error = f"import failed: {_raised(exc)}"

    if allowed is None or allowed:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or (allowed is not None and ep.name not in allowed):
                continue
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "unknown"
            info = PluginInfo(ep.name, dist, version, builtin=False)
            if ep.name in infos:
                info.error = f"name clashes with the already loaded plugin {ep.name!r}"
                infos[f"{ep.name} ({dist})"] = info
                continue
            infos[ep.name] = info
            try:
                pm.register(ep.load(), name=ep.name)
            except (Exception, SystemExit) as exc:  # sys.exit() in a plugin must not end every command
                info.fail(f"import failed: {_raised(exc)}")
                info.traceback = traceback.format_exc()

    _withdraw_unknown_hooks(pm, infos)
    return pm, infos


def _withdraw_unknown_hooks(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
    """Unload plugins implementing a hook that is not in the hookspecs (``check_pending``, per plugin)."""
    known = [name for name in vars(hookspecs) if name.startswith("zoo_")]
    for hook_name in list(vars(pm.hook)):
        caller = getattr(pm.hook, hook_name)
        if hook_name.startswith("_") or not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook or not pm.is_registered(impl.plugin):
                continue
            name = pm.get_name(impl.plugin)
            infos[name].fail(f"implements {hook_name!r}, which is not a zoo hook{did_you_mean(hook_name, known)}")
            pm.unregister(impl.plugin)


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    # A plugin that prints while it loads must not corrupt a command's standard output (--json).
    with contextlib.redirect_stdout(sys.stderr):
        pm, infos = build_plugin_manager()
        return Registry(pm, infos)


def reset_registry() -> None:
    """Forget the cached registry, e.g. after changing ZOO_PLUGINS in a test."""
    get_registry.cache_clear()
