"""Week-over-week trends of the monitoring metrics, as series and chart geometry.

Each monitored week's ``metrics.json`` is one point per series; a metric a week could not
define (no labelled reviews, too few rows for drift) is a gap, not a zero. The estimated
accuracy (``estimated_accuracy``, when the monitoring step wrote one) is drawn beside the
realised accuracy. The geometry (points in a fixed box, axis ticks) is computed here so a
page only draws it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIDTH = 560
HEIGHT = 170
PAD_LEFT = 52
PAD_RIGHT = 36
PAD_TOP = 12
PAD_BOTTOM = 34

Getter = Callable[[Mapping[str, Any]], float | None]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _at(*keys: str) -> Getter:
    def get(metrics: Mapping[str, Any]) -> float | None:
        value: Any = metrics
        for key in keys:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return _number(value)

    return get


def _breaches(metrics: Mapping[str, Any]) -> float | None:
    breaches = metrics.get("breaches")
    return float(len(breaches)) if isinstance(breaches, list) else None


# chart title -> its series (name, how to read it from a week's metrics, colour)
CHARTS: dict[str, list[tuple[str, Getter, str]]] = {
    "Volume (reviews)": [("reviews", _at("review_count"), "#2f6db5")],
    "Accuracy": [
        ("realised accuracy", _at("accuracy"), "#1b5e20"),
        ("estimated accuracy", _at("estimated_accuracy"), "#e07b00"),
    ],
    "Drift (PSI)": [
        ("prediction PSI", _at("drift", "prediction_psi"), "#8e24aa"),
        ("length PSI", _at("drift", "length_psi"), "#00838f"),
    ],
    "Safety flagged rate": [("flagged rate", _at("safety", "flagged_rate"), "#b00020")],
    "Breaches": [("breaches", _breaches, "#b00020")],
}


@dataclass(frozen=True)
class Point:
    week: str
    value: float
    x: float
    y: float


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: tuple[Point, ...]
    segments: tuple[str, ...]  # SVG polyline point lists; a missing week breaks the line


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    y_ticks: tuple[tuple[float, str], ...]  # (y, label)
    x_ticks: tuple[tuple[float, str], ...]  # (x, week)
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def plot_left(self) -> int:
        return PAD_LEFT

    @property
    def plot_right(self) -> int:
        return self.width - PAD_RIGHT

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def values(weeks: Sequence[tuple[str, Mapping[str, Any] | None]]) -> dict[str, dict[str, list[float | None]]]:
    """Every chart's series as one value (or None) per week, oldest week first."""
    return {
        title: {name: [get(m) if m is not None else None for _, m in weeks] for name, get, _ in series}
        for title, series in CHARTS.items()
    }


def trend_charts(weeks: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[Chart]:
    """One chart per entry of :data:`CHARTS` over ``weeks`` (oldest first; None for a week
    whose metrics could not be read). A series with no value at all is left out (e.g.
    the estimated accuracy before the monitoring step wrote it)."""
    labels = [week for week, _ in weeks]
    table = values(weeks)
    charts = []
    for title, specs in CHARTS.items():
        present = [(name, colour, table[title][name]) for name, _, colour in specs]
        present = [(n, c, vs) for n, c, vs in present if any(v is not None for v in vs)]
        numbers = [v for _, _, vs in present for v in vs if v is not None]
        top = _nice_top(max(numbers, default=0.0))
        charts.append(
            Chart(
                title=title,
                series=tuple(_series(name, colour, labels, vs, top) for name, colour, vs in present),
                y_ticks=tuple((_y(top * k / 4, top), _fmt(top * k / 4)) for k in range(5)),
                x_ticks=_x_ticks(labels),
            )
        )
    return charts


def _series(name: str, colour: str, labels: Sequence[str], vs: Sequence[float | None], top: float) -> Series:
    points = []
    segments: list[str] = []
    current: list[str] = []
    for i, (week, value) in enumerate(zip(labels, vs, strict=True)):
        if value is None:
            if current:
                segments.append(" ".join(current))
            current = []
            continue
        point = Point(week, value, _x(i, len(labels)), _y(value, top))
        points.append(point)
        current.append(f"{point.x:.1f},{point.y:.1f}")
    if current:
        segments.append(" ".join(current))
    return Series(name, colour, tuple(points), tuple(s for s in segments if " " in s))


def _x(i: int, count: int) -> float:
    span = WIDTH - PAD_LEFT - PAD_RIGHT
    return PAD_LEFT + (span / 2 if count == 1 else span * i / (count - 1))


def _y(value: float, top: float) -> float:
    return PAD_TOP + (HEIGHT - PAD_TOP - PAD_BOTTOM) * (1 - value / top)


def _x_ticks(labels: Sequence[str], most: int = 6) -> tuple[tuple[float, str], ...]:
    if not labels:
        return ()
    step = max(1, -(-len(labels) // most))
    picked = list(range(0, len(labels), step))
    if picked[-1] != len(labels) - 1:
        picked.append(len(labels) - 1)
    return tuple((_x(i, len(labels)), labels[i]) for i in picked)


def _nice_top(value: float) -> float:
    """The axis top: 1 for rates up to 1, else the value rounded up to 1, 2, 2.5 or 5 × 10^k."""
    if value <= 0:
        return 1.0
    return 1.0 if 0.5 < value <= 1 else _round_up(value)


def _round_up(value: float) -> float:
    scale = 10.0 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5):
        if value <= factor * scale:
            return factor * scale
    return 10 * scale


def _fmt(value: float) -> str:
    """A tick label as short as its value needs (12.5 stays 12.5; 0.005 stays 0.005)."""
    return f"{value:.4g}"
