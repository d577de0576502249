"""``zoo bench``: the head-to-head benchmark of alignment algorithms on one task.

Modules, in the order a run uses them:

* :mod:`zoo.bench.task`: the task contract (data, gold reward, knowledge probes); tasks are plugins;
* :mod:`zoo.bench.config`: the bench config (validated dataclasses) and sweep expansion;
* :mod:`zoo.bench.cache`: stage folders named by fingerprints of their inputs;
* :mod:`zoo.bench.stages` and :mod:`zoo.bench.preferences`: task data → pretraining → SFT →
  preference data → proxy reward model → one alignment run per contender and seed;
* :mod:`zoo.bench.evaluate`: the one evaluation every contender gets;
* :mod:`zoo.bench.runner`: runs all of the above for a config;
* :mod:`zoo.bench.stats`, :mod:`zoo.bench.results`: intervals, paired tests, the results;
* :mod:`zoo.bench.report`, :mod:`zoo.bench.plots`: the table, results.json/.md, the PNGs.
"""
from zoo.bench.task import Task, TaskArgs, TaskData

__all__ = ["Task", "TaskArgs", "TaskData"]
