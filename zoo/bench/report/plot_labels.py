"""Point labels that do not overlap: each label takes the first free spot around its point.

Crowded scatter plots (a dozen contenders between KL 1 and 5) make labels drawn at a fixed
offset collide. :func:`place_labels` tries spots on rings of growing radius around each point
and keeps the first whose box overlaps no label placed before, no point and nothing outside the
axes; a label pushed away from its point gets a thin leader line. It works in display
coordinates, so it must run after the figure's layout is final.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.transforms import Bbox

#: Distances tried, in display pixels, from the point to the label's nearest corner.
RADII = (7, 12, 18, 28, 40, 55, 75)
#: Directions tried on each ring, starting up-right (where a reader looks first), in degrees.
ANGLES = (45, 0, 90, -45, 135, 180, -90, -135, 22, 68, 112, 158, -22, -68, -112, -158)
#: Half the side of the square kept free around every point, in display pixels.
POINT_HALF = 6.0


@dataclass
class Label:
    x: float
    y: float
    text: str
    colour: str


def _box_at(width: float, height: float, px: float, py: float, radius: float, angle: float) -> Bbox:
    """A label box whose nearest corner or edge sits ``radius`` from the point in direction ``angle``."""
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    cx = px + dx * (radius + width / 2)
    cy = py + dy * (radius + height / 2)
    return Bbox.from_extents(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(axis: Axes, labels: list[Label], fontsize: float = 7) -> list:
    """Draw ``labels`` on ``axis`` where they collide with nothing; returns the text artists."""
    figure = axis.figure
    renderer = figure.canvas.get_renderer()
    area = axis.get_window_extent(renderer)
    to_display = axis.transData.transform
    points = [to_display((label.x, label.y)) for label in labels]
    taken = [Bbox.from_extents(px - POINT_HALF, py - POINT_HALF, px + POINT_HALF, py + POINT_HALF)
             for px, py in points if math.isfinite(px) and math.isfinite(py)]
    artists = []
    for label, (px, py) in zip(labels, points):
        if not (math.isfinite(px) and math.isfinite(py)):
            continue
        probe = axis.text(0, 0, label.text, fontsize=fontsize, fontweight="bold", transform=None)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        best, best_cost = None, math.inf
        for radius in RADII:
            for angle in ANGLES:
                box = _box_at(extent.width + 2, extent.height + 2, px, py, radius, angle)
                outside = (max(0.0, area.x0 - box.x0) + max(0.0, box.x1 - area.x1) +
                           max(0.0, area.y0 - box.y0) + max(0.0, box.y1 - area.y1))
                cost = sum(_overlap(box, other) for other in taken) + 1000 * outside
                if cost < best_cost:
                    best, best_cost = box, cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        taken.append(best)
        centre = axis.transData.inverted().transform(((best.x0 + best.x1) / 2, (best.y0 + best.y1) / 2))
        far = math.hypot((best.x0 + best.x1) / 2 - px, (best.y0 + best.y1) / 2 - py) > RADII[2] + extent.width / 2
        artist = axis.annotate(label.text, (label.x, label.y), xytext=centre, textcoords="data", fontsize=fontsize,
                               color=label.colour, ha="center", va="center", fontweight="bold",
                               # on a pale ground, so that an error bar behind a label does not cross it out
                               bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
                                     "alpha": 0.8},
                               arrowprops={"arrowstyle": "-", "color": label.colour, "lw": 0.6, "alpha": 0.7,
                                           "shrinkA": 0, "shrinkB": 3} if far else None)
        artists.append(artist)
    return artists
