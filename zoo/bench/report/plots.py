"""PNG plots of a benchmark (matplotlib, Agg backend: no display needed).

* ``frontier.png``: gold reward (left) and proxy reward-model score (right) against
  KL(π‖π_SFT), one point per contender with 95% intervals across seeds on both axes; the
  settings of a swept contender (β, KL coefficient, n, ...) are joined into one curve.
  Where the proxy keeps rising while the gold reward falls, the proxy is being over-optimised.
  Each run has its own colour and marker and a number, written beside its point where it
  overlaps nothing (:mod:`zoo.bench.report.plot_labels`).
* ``training_curves.png``: every run's training curve (one line per seed) and the shared
  stages', read from each run's ``logs/metrics.csv``: the reward an online run optimised when it
  logs one (``train/reward``, ``train/reward_mean``), else the training loss, against the share
  of the run's steps.
* ``pairwise.png``: every pair's gold-reward difference, named rows and columns.

Each ``*_figure`` function returns the figure (for tests to inspect); the plain names write the PNG.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from zoo.bench.report.plot_labels import Label, place_labels  # noqa: E402


#: Qualitative colours picked greedily for distance in CIELAB (every pair ΔE76 > 26), none paler than
#: L* 72 so that each reads on white; a group past the 20th reuses a colour with another marker.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#ee3377", "#654522", "#00b8a9", "#332288", "#000000", "#f99379",
           "#999933", "#aa4499", "#a0b1ba", "#d62728", "#e68fac", "#882d17", "#8db600", "#33bbee", "#008856",
           "#2b3d26", "#b3446c")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "d")


def _points(contender: dict[str, Any], metric: str) -> tuple[float, float, float, float]:
    s = contender["summary"]
    x, y = s["kl"], s[metric]
    finite = lambda v: 0.0 if v is None or math.isnan(v) else v  # noqa: E731
    return x["mean"], y["mean"], finite(x["ci95"]), finite(y["ci95"])


def frontier(results: dict[str, Any], path: Path) -> Path:
    """Gold and proxy reward against KL for every contender (:func:`frontier_figure`), as a PNG."""
    return _save(frontier_figure(results), path, dpi=110)


def _save(figure: Figure, path: Path, dpi: int) -> Path:
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def frontier_figure(results: dict[str, Any]) -> Figure:
    """Gold and proxy reward against KL for every contender; sweeps become curves.

    Each group (a run, or a sweep's settings) has its own colour and marker and a number; the
    number labels its point (a sweep's points carry the swept value) where it overlaps nothing,
    and the legend gives the name. Labels are placed once the layout is final.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for contender in results["contenders"]:
        groups.setdefault(contender["group"], []).append(contender)
    figure, axes = plt.subplots(1, 2, figsize=(13, 6.2), sharex=True)
    labels: dict[int, list[Label]] = {0: [], 1: []}
    for side, (axis, metric, title) in enumerate(((axes[0], "gold", "gold reward"),
                                                  (axes[1], "proxy", "proxy reward-model score"))):
        for index, (group, members) in enumerate(groups.items()):
            members = sorted(members, key=lambda c: c["summary"]["kl"]["mean"])
            points = [_points(c, metric) for c in members]
            xs, ys, xerr, yerr = (list(v) for v in zip(*points))
            colour = PALETTE[index % len(PALETTE)]
            marker = "*" if members[0]["baseline"] else MARKERS[index % len(MARKERS)]
            sweep = len(members) > 1
            axis.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt=marker + ("-" if sweep else ""), color=colour,
                          ecolor=colour, elinewidth=0.8, capsize=2, markersize=12 if marker == "*" else 6,
                          label=f"{index + 1}  {group}", alpha=0.9, linewidth=1.2)
            for c, x, y in zip(members, xs, ys):
                text = f"{c['sweep_value']}" if sweep else str(index + 1)
                labels[side].append(Label(x, y, text, colour))
        # KL spans orders of magnitude once a proxy is over-optimised: linear below 1 nat, log above.
        axis.set_xscale("symlog", linthresh=1.0, linscale=1.0)
        axis.set_xlim(left=-0.3)  # KL is never negative; only an interval's lower end can be
        axis.set_xlabel("KL(π ‖ π_SFT), nats per response (linear below 1, log above)")
        axis.set_ylabel(title)
        axis.set_title(f"{title} vs KL")
        axis.grid(alpha=0.3, which="both")
    handles, names = axes[0].get_legend_handles_labels()
    columns = min(len(names), 4)
    legend_rows = math.ceil(len(names) / columns)
    figure.legend(handles, names, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    seeds = results["seeds"]
    sweeps = any(len(m) > 1 for m in groups.values())
    spread = "bars are 95% intervals across seeds" if len(seeds) > 1 else "one seed, so no interval"
    figure.suptitle(f"zoo bench, task {results['config']['task']['name']!r}: means over {len(seeds)} seed(s), "
                    f"{spread}; numbers name the runs below"
                    + ("; a curve's points carry its swept value" if sweeps else ""), fontsize=10)
    figure.tight_layout(rect=(0, 0.03 + 0.032 * legend_rows, 1, 1))
    figure.canvas.draw()
    for side, axis in enumerate(axes):
        place_labels(axis, labels[side])
    return figure


CURVE_COLUMNS = ("train/reward", "train/reward_mean", "train/loss")


def read_metrics_csv(run_dir: Path, columns: tuple[str, ...] = CURVE_COLUMNS) -> tuple[str, list[float], list[float]]:
    """The first of ``columns`` a run's ``logs/metrics.csv`` has, with its logged steps and values."""
    rows: list[dict[str, str]] = []
    for path in sorted(run_dir.glob("logs/**/metrics.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    for column in columns:
        points = sorted((float(row["step"]), float(row[column])) for row in rows
                        if row.get(column) not in (None, "") and row.get("step") not in (None, ""))
        if points:
            return column, [x for x, _ in points], [y for _, y in points]
    return columns[-1], [], []


#: The y-axis label of each curve column.
CURVE_NAMES = {"train/reward": "reward optimised (batch mean)", "train/reward_mean": "reward of the samples (mean)",
               "train/loss": "training loss"}


def training_curves(run_dirs: dict[str, dict[int, Path]], shared_dirs: dict[str, Path], path: Path) -> Path | None:
    """The training curves (:func:`training_curves_figure`) as a PNG; None when no stage logged any."""
    figure = training_curves_figure(run_dirs, shared_dirs)
    return None if figure is None else _save(figure, path, dpi=100)


def training_curves_figure(run_dirs: dict[str, dict[int, Path]], shared_dirs: dict[str, Path]) -> Figure | None:
    """One panel per run (all seeds) and per shared training stage.

    Runs count steps differently (an online step samples, scores and updates; an offline step is
    one batch), so the x-axis is the share of each run's logged steps, 0 to 100%, and the title
    says how many steps 100% is. Seeds share one colour each across panels, with one legend.
    """
    panels: list[tuple[str, dict[str, Path]]] = [(name, {"": d}) for name, d in shared_dirs.items()]
    panels += [(label, {f"seed {seed}": d for seed, d in seeds.items()}) for label, seeds in run_dirs.items() if seeds]
    if not panels:
        return None
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows + 0.8), squeeze=False)
    colours = plt.get_cmap("tab10")
    seed_handles: dict[str, Any] = {}
    for axis, (title, lines) in zip(axes.flat, panels):
        column, last = CURVE_COLUMNS[-1], 0.0
        for position, (name, run_dir) in enumerate(lines.items()):
            column, steps, values = read_metrics_csv(run_dir)
            if not steps:
                continue
            last = max(last, steps[-1])
            share = [100.0 * step / steps[-1] for step in steps] if steps[-1] > 0 else [100.0] * len(steps)
            (line,) = axis.plot(share, values, linewidth=1,
                                color=colours(int(name.split()[-1]) % 10 if name else position))
            if name:
                seed_handles.setdefault(name, line)
        axis.set_title(f"{title} (100% = step {last:.0f})", fontsize=9)
        axis.set_xlabel("% of the run's steps", fontsize=8)
        axis.set_ylabel(CURVE_NAMES.get(column, column), fontsize=8)
        axis.set_xlim(0, 100)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    if seed_handles:
        figure.legend(list(seed_handles.values()), list(seed_handles), loc="lower center", ncol=len(seed_handles),
                      fontsize=8, frameon=False)
    figure.suptitle("training curves: the reward an online run optimised, else the training loss (shared stages: "
                    "the first seed's)", fontsize=11)
    figure.tight_layout(rect=(0, 0.5 / (3.0 * rows + 0.8) if seed_handles else 0, 1, 1))
    return figure


def pairwise(results: dict[str, Any], path: Path) -> Path:
    """The pairwise gold-reward matrix (:func:`pairwise_figure`) as a PNG."""
    return _save(pairwise_figure(results), path, dpi=110)


def pairwise_figure(results: dict[str, Any]) -> Figure:
    """The pairwise gold-reward matrix (row − column); pale cells are not significant (Holm).

    Both axes carry the runs' numbers and names (columns' slanted), and the figure's layout is
    computed from the labels, so a long name is never cut; numbers on dark cells are white.
    """
    import numpy as np

    labels = [c["label"] for c in results["contenders"]]
    index = {label: i for i, label in enumerate(labels)}
    n = len(labels)
    values = np.full((n, n), np.nan)
    significant = np.zeros((n, n), dtype=bool)
    for pair in results["comparisons"]["pairs"]:
        i, j = index[pair["a"]], index[pair["b"]]
        d = pair["difference_mean"]
        if d is not None and not math.isnan(d):
            values[i, j], values[j, i] = d, -d
            significant[i, j] = significant[j, i] = bool(pair["significant"])
    size = max(4.0, 0.55 * n + 2.5)
    figure, axis = plt.subplots(figsize=(size + 2.5, size + 1.5), layout="constrained")
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    image = axis.imshow(np.where(significant, values, np.nan), cmap="RdBu", vmin=-limit, vmax=limit)
    axis.imshow(np.where(~significant & np.isfinite(values), 0.0, np.nan), cmap="Greys", vmin=-1, vmax=4, alpha=0.5)
    for i in range(n):
        for j in range(n):
            if i != j and np.isfinite(values[i, j]):
                dark = significant[i, j] and abs(values[i, j]) > 0.6 * limit  # RdBu is dark at both ends
                axis.text(j, i, f"{values[i, j]:+.2f}" + ("" if significant[i, j] else "\nn.s."), ha="center",
                          va="center", fontsize=6 if n > 12 else 7, color="white" if dark else "black")
    names = [f"{i + 1}. {label}" for i, label in enumerate(labels)]
    axis.set_xticks(range(n), names, fontsize=7, rotation=40, ha="right", rotation_mode="anchor")
    axis.set_yticks(range(n), names, fontsize=7)
    axis.set_xlabel("column")
    axis.set_ylabel("row")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.02, shrink=0.8, label="gold reward, row − column")
    axis.set_title(f"every pair: {results['comparisons']['correction']}; n.s. = not significant", fontsize=9)
    return figure
