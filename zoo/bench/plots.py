"""PNG plots of a benchmark (matplotlib, Agg backend: no display needed).

* ``frontier.png``: gold reward (left) and proxy reward-model score (right) against
  KL(π‖π_SFT), one point per contender with 95% intervals across seeds on both axes; the
  settings of a swept contender (β, KL coefficient, n, ...) are joined into one curve.
  Where the proxy keeps rising while the gold reward falls, the proxy is being over-optimised.
* ``training_curves.png``: every run's training curve (one line per seed) and the shared
  stages', read from each run's ``logs/metrics.csv``: the reward an online run optimised when it
  logs one (``train/reward``, ``train/reward_mean``), else the training loss.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _points(contender: dict[str, Any], metric: str) -> tuple[float, float, float, float]:
    s = contender["summary"]
    x, y = s["kl"], s[metric]
    finite = lambda v: 0.0 if v is None or math.isnan(v) else v  # noqa: E731
    return x["mean"], y["mean"], finite(x["ci95"]), finite(y["ci95"])


def frontier(results: dict[str, Any], path: Path) -> Path:
    """Gold and proxy reward against KL for every contender; sweeps become curves."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for contender in results["contenders"]:
        groups.setdefault(contender["group"], []).append(contender)
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.8), sharex=True)
    for axis, metric, title in ((axes[0], "gold", "gold reward"), (axes[1], "proxy", "proxy reward-model score")):
        for index, (group, members) in enumerate(groups.items()):
            members = sorted(members, key=lambda c: c["summary"]["kl"]["mean"])
            points = [_points(c, metric) for c in members]
            xs, ys, xerr, yerr = (list(v) for v in zip(*points))
            colour = colours(index % colours.N)
            marker = "*" if members[0]["baseline"] else "o"
            axis.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt=marker + ("-" if len(members) > 1 else ""),
                          color=colour, capsize=3, markersize=11 if marker == "*" else 6, label=group, alpha=0.9)
            for c, x, y in zip(members, xs, ys):
                text = f"{c['sweep_value']}" if len(members) > 1 else group
                axis.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
        # KL spans orders of magnitude once a proxy is over-optimised: linear below 1 nat, log above.
        axis.set_xscale("symlog", linthresh=1.0, linscale=1.0)
        axis.set_xlim(left=-0.3)  # KL is never negative; only an interval's lower end can be
        axis.set_xlabel("KL(π ‖ π_SFT), nats per response (linear below 1, log above)")
        axis.set_ylabel(title)
        axis.set_title(f"{title} vs KL")
        axis.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    rows_of_legend = math.ceil(len(labels) / 6)
    figure.legend(handles, labels, loc="lower center", ncol=math.ceil(len(labels) / rows_of_legend), fontsize=8,
                  frameon=False)
    seeds = results["seeds"]
    figure.suptitle(f"zoo bench, task {results['config']['task']['name']!r}: means over {len(seeds)} seed(s), "
                    f"bars are 95% intervals", fontsize=11)
    figure.tight_layout(rect=(0, 0.04 + 0.035 * rows_of_legend, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


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


def training_curves(run_dirs: dict[str, dict[int, Path]], shared_dirs: dict[str, Path], path: Path) -> Path | None:
    """One panel per run (all seeds) and per shared training stage."""
    panels: list[tuple[str, dict[str, Path]]] = [(name, {name: d}) for name, d in shared_dirs.items()]
    panels += [(label, {f"seed {seed}": d for seed, d in seeds.items()}) for label, seeds in run_dirs.items() if seeds]
    if not panels:
        return None
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)
    for axis, (title, lines) in zip(axes.flat, panels):
        column = CURVE_COLUMNS[-1]
        for name, run_dir in lines.items():
            column, steps, values = read_metrics_csv(run_dir)
            if steps:
                axis.plot(steps, values, linewidth=1, label=name)
        axis.set_title(f"{title}: {column}", fontsize=9)
        axis.set_xlabel("logged step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        if len(lines) > 1:
            axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.suptitle("training curves (the reward an online run optimised, else the training loss)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def pairwise(results: dict[str, Any], path: Path) -> Path:
    """The pairwise gold-reward matrix (row − column); pale cells are not significant (Holm)."""
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
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    image = axis.imshow(np.where(significant, values, np.nan), cmap="RdBu", vmin=-limit, vmax=limit)
    axis.imshow(np.where(~significant & np.isfinite(values), 0.0, np.nan), cmap="Greys", vmin=-1, vmax=4, alpha=0.5)
    for i in range(n):
        for j in range(n):
            if i != j and np.isfinite(values[i, j]):
                axis.text(j, i, f"{values[i, j]:+.2f}" + ("" if significant[i, j] else "\nn.s."), ha="center",
                          va="center", fontsize=6 if n > 12 else 7)
    axis.set_xticks(range(n), [str(i + 1) for i in range(n)], fontsize=7)
    axis.set_yticks(range(n), [f"{i + 1}. {label}" for i, label in enumerate(labels)], fontsize=7)
    axis.set_xlabel("column")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="gold reward, row − column")
    axis.set_title(f"every pair: {results['comparisons']['correction']}; n.s. = not significant", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
