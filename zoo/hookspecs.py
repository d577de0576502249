"""The hooks a zoo plugin can implement.

Every hook is shaped ``zoo_register_*(register)``: the plugin calls ``register(thing)`` once per
thing it provides. Hooks are called with keyword arguments, so adding an argument later never
breaks an existing plugin. All of them are called once, when the plugin manager is first built;
none of them return anything.

A plugin is any module (or object) with functions decorated by :data:`hookimpl`. Third-party
plugins are found through the ``zoo`` entry-point group::

    [project.entry-points.zoo]
    my_algorithms = "my_package.plugin"
"""
from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "zoo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def zoo_register_algorithms(register: Callable) -> None:
    """Register alignment algorithms.

    Called once at start-up. Call ``register(AlgorithmClass)`` for each
    :class:`zoo.Algorithm` subclass the plugin provides. Names must be unique across all
    plugins; a clash is an error naming both plugins.
    """


@hookspec
def zoo_register_datasets(register: Callable) -> None:
    """Register built-in data sets that need no download.

    Call ``register(zoo.data.BuiltinDataset(...))``. A config selects one as ``data.train:
    builtin:NAME``.
    """


@hookspec
def zoo_register_rewards(register: Callable) -> None:
    """Register reward sources (programmatic reward functions).

    Call ``register(zoo.RewardFunction(...))``. A config selects one as
    ``reward: {function: NAME}``; a learned reward model is selected as ``reward: {model: PATH}``.
    """


@hookspec
def zoo_register_suites(register: Callable) -> None:
    """Register evaluation suites.

    Call ``register(SuiteClass)`` for each :class:`zoo.eval.Suite` subclass. ``zoo eval
    --suites NAME,...`` and the benchmark harness select them by name.
    """


@hookspec
def zoo_register_tasks(register: Callable) -> None:
    """Register benchmark tasks (a data generator, a gold reward and probes for ``zoo bench``)."""


@hookspec
def zoo_register_commands(register: Callable) -> None:
    """Register extra CLI sub-commands.

    Call ``register(name, add_arguments, run, help)`` where ``add_arguments(parser)`` adds the
    sub-command's arguments to an :class:`argparse.ArgumentParser` and ``run(args)`` executes it
    and returns an exit status.
    """
