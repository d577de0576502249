"""``zoo bench``: the head-to-head benchmark of alignment algorithms on one task.

Modules, in the order a run uses them:

* :mod:`zoo.bench.task`: the task contract (data, gold reward, knowledge probes); tasks are plugins;
* :mod:`zoo.bench.prompts`: helpers for tasks on real text (content-disjoint splits, chat rendering);
* :mod:`zoo.bench.config`: the bench config (validated dataclasses) and sweep expansion;
  :mod:`zoo.bench.checks`: its checks that need the registry; :mod:`zoo.bench.loading`: reading one;
* :mod:`zoo.bench.cache`: stage folders named by fingerprints of their inputs, which hash the code
  (:mod:`zoo.bench.sources`) and the numerical packages (:mod:`zoo.bench.versions`);
* :mod:`zoo.bench.stages` and :mod:`zoo.bench.preferences`: task data → pretraining → SFT →
  preference data → proxy reward model → one alignment run per contender and seed;
* :mod:`zoo.bench.evaluate`: the one evaluation every contender gets;
* :mod:`zoo.bench.budget`: each contender's steps fitted to the matched budget (FLOPs or samples);
* :mod:`zoo.bench.runner`: runs all of the above for a config, into a :mod:`zoo.bench.record`;
* :mod:`zoo.bench.provenance`, :mod:`zoo.bench.check`: where a result came from, and ``zoo bench --check``;
* :mod:`zoo.bench.canary`: carries the stage cache across a change shown to move no number;
* :mod:`zoo.bench.stats`, :mod:`zoo.bench.results`: intervals, paired tests, the results (stored
  values, and every statistic derived from them alone);
* :mod:`zoo.bench.claims`: the declared claims' verdicts and the protocol history;
* :mod:`zoo.bench.perturb`: the same protocol on shifted seeds, and which verdicts survive it;
* :mod:`zoo.bench.report`: every renderer: results.json/.md, the terminal's table, the PNGs.

This package is the front module of the benchmark: task plugins and the ``bench`` command import
from ``zoo.bench`` only. The harness's own names are imported on first use, so that a task
plugin loading ``zoo.bench`` for :class:`Task` does not pull in matplotlib or the trainer.

Decoding-time contenders (``best_of_n: N`` in a run entry: the SFT model sampled N times per
prompt, the sample the proxy reward prefers kept) are the one kind of contender that is not a
registered algorithm: they train nothing, so no ``zoo train`` run stands behind them. They are
the one special case of the harness, and it is read in four places only: the bench config
(``Contender.best_of_n``, validated and sweepable), the runner (which reward picks the sample),
the evaluation (:func:`zoo.rollout.sampler.best_of_n`) and the results (the baseline is the contender
that neither trains nor decodes best-of-n). Every other contender is an algorithm plugin.
"""
from __future__ import annotations

import importlib
from typing import Any

from zoo.bench.prompts import chat_renderer, content_key, split_order
from zoo.bench.task import Judge, Task, TaskArgs, TaskData

#: The harness's names, imported on first use, by owning module.
_LAZY_EXPORTS: dict[str, tuple[str, ...]] = {
    "zoo.bench.canary": ("run_canary",),
    "zoo.bench.config": ("BenchConfig",),
    "zoo.bench.loading": ("load_bench_config",),
    "zoo.bench.perturb": ("perturbation_record", "shifted"),
    "zoo.bench.report.plots": ("frontier", "pairwise", "training_curves"),
    "zoo.bench.check": ("CHECK_OK", "CHECK_STALE", "CHECK_UNKNOWN", "check_results"),
    "zoo.bench.report.files": ("write_outputs",),
    "zoo.bench.results": ("summarise",),
    "zoo.bench.runner": ("build_as_worker", "run_bench"),
    "zoo.bench.report.terminal": ("print_report",),
}
_OWNER = {name: module for module, names in _LAZY_EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _OWNER:
        raise AttributeError(f"module 'zoo.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_OWNER[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_OWNER))


__all__ = ["Judge", "Task", "TaskArgs", "TaskData", "chat_renderer", "content_key", "split_order", *sorted(_OWNER)]
