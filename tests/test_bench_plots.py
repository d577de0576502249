"""The benchmark's plots read as a reader needs: no text cut off at the figure's edge, point
labels that do not overlap, legend colours far apart, and every training-curve axis labelled."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgb
from matplotlib.text import Text

from zoo.bench.report.plots import frontier_figure, pairwise_figure, training_curves_figure

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _results(name: str) -> dict:
    return json.loads((RESULTS / name / "results.json").read_text())


def _lab(colour) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour, written out from the CIE definitions."""
    rgb = np.asarray(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _visible_texts(figure) -> list[Text]:
    """The texts a reader sees: not tick labels of ticks outside their axis's view (matplotlib keeps
    those Text objects, at stale positions, but does not draw them)."""
    figure.canvas.draw()
    hidden = set()
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    hidden.update({id(tick.label1), id(tick.label2)})
    return [t for t in figure.findobj(Text) if id(t) not in hidden
            and t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.get_visible())]


def _assert_nothing_cut(figure) -> None:
    renderer = figure.canvas.get_renderer()
    box = figure.bbox
    for text in _visible_texts(figure):
        extent = text.get_window_extent(renderer)
        assert (extent.x0 >= box.x0 - 1 and extent.y0 >= box.y0 - 1 and extent.x1 <= box.x1 + 1
                and extent.y1 <= box.y1 + 1), f"{text.get_text()!r} is cut off: {extent} outside {box}"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", ["tiny", "frontier", "smollm2"])
def test_the_frontier_cuts_nothing_and_its_point_labels_do_not_overlap(name):
    figure = frontier_figure(_results(name))
    _assert_nothing_cut(figure)
    renderer = figure.canvas.get_renderer()
    for axis in figure.axes:
        labels = [t for t in axis.texts if t.get_text().strip()]
        assert labels, "every point is labelled"
        boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text itself, not its leader line
        for (a, ta), (b, tb) in itertools.combinations(zip(boxes, labels), 2):
            assert not a.overlaps(b), f"{ta.get_text()!r} and {tb.get_text()!r} overlap"
        area = axis.get_window_extent(renderer)
        assert all(area.x0 <= b.x0 and b.x1 <= area.x1 and area.y0 <= b.y0 and b.y1 <= area.y1 for b in boxes)


def test_the_legend_entries_get_colours_far_apart_and_dark_enough_for_white():
    """The committed tiny run has 22 groups: the first 20 get colours at least ΔE 25 apart; the 21st
    and 22nd reuse a colour with another marker, so no two entries look alike."""
    results = _results("tiny")
    figure = frontier_figure(results)
    legend = figure.legends[0]
    handles = [handle.lines[0] if hasattr(handle, "lines") else handle for handle in legend.legend_handles]
    colours = [to_hex(handle.get_color()) for handle in handles]
    assert len(colours) == len({c["group"] for c in results["contenders"]}) == 22
    labs = [_lab(c) for c in colours[:20]]
    closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(labs, 2))
    assert closest > 25, f"two legend colours are only ΔE {closest:.1f} apart"
    assert max(lab[0] for lab in labs) < 75, "a pale colour does not read on white"
    drawn = [container.lines[0] for container in figure.axes[0].containers]  # each group's points
    assert [to_hex(line.get_color()) for line in drawn] == colours
    styles = [(to_hex(line.get_color()), line.get_marker()) for line in drawn]
    assert len(set(styles)) == len(styles), "two legend entries share a colour and a marker"
    names = [t.get_text() for t in legend.get_texts()]
    assert names[0] == "1  SFT" and names[-1] == "22  ORPO"


def test_the_cielab_conversion_matches_published_values():
    # sRGB primaries in CIELAB (D65), as tabulated by Bruce Lindbloom's calculator.
    assert np.allclose(_lab("#ff0000"), [53.24, 80.09, 67.20], atol=0.1)
    assert np.allclose(_lab("#0000ff"), [32.30, 79.19, -107.86], atol=0.1)
    assert np.allclose(_lab("#ffffff"), [100, 0, 0], atol=0.05)


@pytest.mark.parametrize("name", ["tiny", "frontier"])
def test_the_pairwise_matrix_names_its_columns_and_cuts_no_label(name):
    results = _results(name)
    figure = pairwise_figure(results)
    _assert_nothing_cut(figure)
    axis = figure.axes[0]
    labels = [c["label"] for c in results["contenders"]]
    expected = [f"{i + 1}. {label}" for i, label in enumerate(labels)]
    assert [t.get_text() for t in axis.get_xticklabels()] == expected
    assert [t.get_text() for t in axis.get_yticklabels()] == expected


def _metrics(folder: Path, column: str, steps: list[int], values: list[float]) -> Path:
    (folder / "logs").mkdir(parents=True)
    rows = [f"step,{column}"] + [f"{s},{v}" for s, v in zip(steps, values)]
    (folder / "logs" / "metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_training_curves_label_both_axes_on_one_step_scale(tmp_path):
    shared = {"sft": _metrics(tmp_path / "sft", "train/loss", [9, 19, 29, 39], [2.0, 1.5, 1.2, 1.0])}
    runs = {"PPO (proxy RM)": {0: _metrics(tmp_path / "ppo0", "train/reward", [4, 9, 14, 19, 24], [0, .1, .2, .3, .4]),
                               1: _metrics(tmp_path / "ppo1", "train/reward", [4, 9, 14, 19, 24], [0, .2, .2, .3, .5])},
            "DPO": {0: _metrics(tmp_path / "dpo0", "train/loss", [24, 49, 74, 99], [0.69, 0.6, 0.55, 0.5])}}
    figure = training_curves_figure(runs, shared)
    _assert_nothing_cut(figure)
    panels = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_ylabel() for axis in panels] == ["training loss", "reward optimised (batch mean)",
                                                      "training loss"]
    assert {axis.get_xlabel() for axis in panels} == {"% of the run's steps"}
    # PPO's last logged step 24 and DPO's 99 both end at 100%; DPO's step 49 sits at 49/99 of its run.
    ends = [line.get_xdata()[-1] for axis in panels for line in axis.get_lines()]
    assert ends == pytest.approx([100.0] * 4)
    dpo = panels[2].get_lines()[0]
    assert dpo.get_xdata()[1] == pytest.approx(100 * 49 / 99)
    assert "100% = step 24" in panels[1].get_title() and "100% = step 99" in panels[2].get_title()
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["seed 0", "seed 1"]
