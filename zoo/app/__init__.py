"""The application layer: what the ``zoo`` commands (``plugins/commands/``) and scripts import.

``zoo.app`` is the front module for driving the core rather than extending it: loading, planning,
building and training runs, the registry of plugins, the consoles, the reference cache's files,
reward sources by config, and the small applications that live here, one module each:

* :mod:`zoo.app.pairs`: preference data from samples (``zoo pairs``);
* :mod:`zoo.app.scaffold`: a new plugin distribution from templates (``zoo plugins new``);
* :mod:`zoo.app.config_reference`: ``docs/config-reference.md`` from the config dataclasses.

Plugins that extend the core (algorithms, suites, tasks, data sets) import from :mod:`zoo` and the
other plugin-facing fronts instead (``tests/test_public_api.py``). Every name is imported on first
use, so that loading the command plugins (``zoo --help``) stays cheap.
"""
from zoo.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(globals(), {
    # runs: load and check a config, plan it, build and train it
    "zoo.config": ("RunConfig", "load_config", "parse_override"),
    "zoo.planning": ("RunPlan", "plan_run"),
    "zoo.run": ("Run", "RunResult", "build_run", "fit"),
    "zoo.training_guard": ("train",),
    "zoo.signals": ("RunInterrupted",),
    # plugins, consoles, caches, reward sources
    "zoo.registry": ("get_registry", "reset_registry"),
    "zoo.terminal": ("console", "err_console"),
    "zoo.progress": ("to_stderr",),
    "zoo.refcache.storage": ("cache_root", "describe_cache_files"),
    "zoo.rewards.loading": ("load_reward_source",),
    # the applications of this package
    "zoo.app.pairs": ("load_pairs_config", "make_pairs", "samples_per_prompt"),
    "zoo.app.scaffold": ("add_new_command",),
})

__all__ = [
    "RunConfig", "load_config", "parse_override", "RunPlan", "plan_run", "Run", "RunResult", "build_run", "fit",
    "train", "RunInterrupted", "get_registry", "reset_registry", "console", "err_console", "to_stderr",
    "cache_root", "describe_cache_files", "load_reward_source", "load_pairs_config", "make_pairs",
    "samples_per_prompt", "add_new_command",
]
