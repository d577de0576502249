"""The benchmark's report: everything that renders a result, and nothing that computes one.

* :mod:`zoo.bench.report.files`: ``results.json`` and ``results.md`` (the document, its sections in order);
* :mod:`zoo.bench.report.comparisons`: results.md's verdict sections (headline, pairs, selection,
  KL-matched gold, suites, pipelines); :mod:`zoo.bench.report.findings`: the claims, the
  perturbation run and the protocol history; :mod:`zoo.bench.report.judges`: the further judges;
  :mod:`zoo.bench.report.costs`: budgets and times; :mod:`zoo.bench.report.cells`: their cells;
* :mod:`zoo.bench.report.terminal`: the terminal's table;
* :mod:`zoo.bench.report.plots` and :mod:`zoo.bench.report.plot_labels`: the PNGs and their point labels.

Every function here reads a finished result: ``results.json`` (its statistics are
:mod:`zoo.bench.results`), and for the training curves the runs' logs. The package imports
nothing itself, so importing one renderer does not load matplotlib or rich.
"""
