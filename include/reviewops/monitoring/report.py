"""The self-contained HTML report of a week's metrics: inline SVG bar charts, the metrics
table and the gate's verdict; every value escaped."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from reviewops.monitoring.thresholds import METRIC_PATHS, Breach

log = logging.getLogger(__name__)


_E = html.escape


_WEEK_COLOUR = "#2f6db5"


_REFERENCE_COLOUR = "#b8b8b8"


_LABEL_WIDTH = 230


_BAR_WIDTH = 360


_BAR_HEIGHT = 14


_MAX_SLICE_BARS = 15


Series = tuple[str, Sequence[float | None], str]


def _short(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], fmt: Callable[[float], str]) -> str:
    """A horizontal grouped bar chart as inline SVG; every text is escaped here."""
    values = [v for _, vs, _ in series for v in vs if v is not None]
    if not labels or not values:
        return f"<h3>{_E(title)}</h3><p class='none'>No data this week.</p>"
    top = max(max(values), 1e-12)
    group = len(series) * (_BAR_HEIGHT + 2) + 8
    height = 24 + group * len(labels)
    width = _LABEL_WIDTH + _BAR_WIDTH + 80
    parts = [f"<h3>{_E(title)}</h3>", f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    for k, (name, _, colour) in enumerate(series):
        x = _LABEL_WIDTH + k * 140
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="14">{_E(name)}</text>')
    for i, label in enumerate(labels):
        y = 24 + i * group
        parts.append(f'<text x="{_LABEL_WIDTH - 6}" y="{y + group / 2}" text-anchor="end">')
        parts.append(f"<title>{_E(label)}</title>{_E(_short(label))}</text>")
        for k, (_, vs, colour) in enumerate(series):
            parts.append(_bar(vs[i], top, y + k * (_BAR_HEIGHT + 2), colour, fmt))
    parts.append("</svg>")
    return "".join(parts)


def _bar(value: float | None, top: float, y: float, colour: str, fmt: Callable[[float], str]) -> str:
    if value is None:
        return f'<text x="{_LABEL_WIDTH}" y="{y + _BAR_HEIGHT - 3}" class="none">n/a</text>'
    length = max(0.0, value) / top * _BAR_WIDTH
    return (
        f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{_BAR_HEIGHT}" fill="{colour}"/>'
        f'<text x="{_LABEL_WIDTH + length + 4:.1f}" y="{y + _BAR_HEIGHT - 3}">{_E(fmt(value))}</text>'
    )


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _length_labels(edges: Sequence[int]) -> list[str]:
    if not edges:
        return ["all lengths"]
    inner = [f"{low}–{high - 1}" for low, high in pairwise(edges)]
    return [f"< {edges[0]}", *inner, f"≥ {edges[-1]}"]


def _class_chart(metrics: Mapping[str, Any]) -> str:
    week = metrics.get("predicted_class_distribution") or {}
    reference = metrics["reference"]["class_distribution"]
    names = list(reference)
    return _bar_chart(
        "Predicted class distribution",
        names,
        [
            ("this week", [week.get(n) for n in names], _WEEK_COLOUR),
            ("training", list(reference.values()), _REFERENCE_COLOUR),
        ],
        _percent,
    )


def _length_chart(metrics: Mapping[str, Any]) -> str:
    reference = metrics["reference"]["length_distribution"]
    week = metrics["length_distribution"]["shares"] or [None] * len(reference["shares"])
    return _bar_chart(
        "Text length (characters)",
        _length_labels(reference["edges"]),
        [("this week", week, _WEEK_COLOUR), ("training", reference["shares"], _REFERENCE_COLOUR)],
        _percent,
    )


def _latency_chart(metrics: Mapping[str, Any]) -> str:
    latency = metrics["batch_latency_seconds"]
    names = ["p50", "p95", "max"]
    return _bar_chart(
        f"Scoring batch latency ({latency['batches']} batches)",
        names,
        [("seconds", [latency[n] for n in names], _WEEK_COLOUR)],
        lambda v: f"{v:.3g} s",
    )


def _slice_charts(metrics: Mapping[str, Any]) -> str:
    charts = []
    overall = metrics["accuracy"]
    for dimension, rows in metrics["slices"].items():
        shown = rows[:_MAX_SLICE_BARS]  # worst first
        title = f"Accuracy by {dimension} (worst {len(shown)} of {len(rows)} slices"
        title += f"; overall {overall:.1%})" if overall is not None else ")"
        labels = [f"{row['name']} (n={row['count']})" for row in shown]
        charts.append(_bar_chart(title, labels, [("accuracy", [r["accuracy"] for r in shown], _WEEK_COLOUR)], _percent))
    return "".join(charts)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        return [item for key, inner in value.items() for item in _flatten(inner, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), value)]


def _metrics_table(metrics: Mapping[str, Any], breaches: Sequence[Breach]) -> str:
    breached = {".".join(METRIC_PATHS.get(b.metric, (b.metric,))) for b in breaches}
    rows = []
    for key, value in _flatten({k: v for k, v in metrics.items() if k not in ("slices", "reference")}):
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
        css = ' class="breach"' if key in breached else ""
        rows.append(f"<tr{css}><th>{_E(key)}</th><td>{_E(shown)}</td></tr>")
    return "<h2>Metrics</h2><table>" + "".join(rows) + "</table>"


def _accuracy(metrics: Mapping[str, Any]) -> str:
    """Estimated accuracy (from the calibrated probabilities, known as soon as the week is
    scored) beside the realised one (once ratings arrive)."""
    estimate, interval = metrics.get("estimated_accuracy"), metrics.get("estimated_accuracy_interval")
    if estimate is None:
        return ""
    text = f"Estimated accuracy {_percent(estimate)}"
    if interval:
        text += f" (95% interval {_percent(interval[0])} to {_percent(interval[1])})"
    if metrics.get("accuracy") is not None:
        text += (
            f"; realised accuracy {_percent(metrics['accuracy'])} on {metrics['labelled_count']} rated reviews"
            f" (estimate minus realised {metrics['estimation_error']:+.3f})"
        )
    else:
        text += "; no rating has arrived yet"
    return f"<p>{_E(text)}.</p>"


def _gate(breaches: Sequence[Breach]) -> str:
    if not breaches:
        return "<div class='ok'>No threshold breached.</div>"
    items = "".join(f"<li>{_E(b.message)}</li>" for b in breaches)
    return f"<div class='breaches'><strong>{len(breaches)} threshold(s) breached</strong><ul>{items}</ul></div>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 60em; }
svg text { font-size: 12px; fill: #222; } .none { color: #777; fill: #777; }
table { border-collapse: collapse; margin-top: 0.5em; } th, td { padding: 2px 10px; border-bottom: 1px solid #ddd; }
th { text-align: left; font-weight: normal; color: #444; } td { font-family: monospace; }
tr.breach { background: #fde2e1; font-weight: bold; }
.breaches { background: #fde2e1; border-left: 6px solid #c62828; padding: 0.5em 1em; }
.ok { background: #e3f4e4; border-left: 6px solid #2e7d32; padding: 0.5em 1em; }
"""


def render_report_html(week: str, metrics: Mapping[str, Any], breaches: list[Breach]) -> str:
    """A self-contained HTML page of a week's metrics: no script, no external asset;
    charts are inline SVG and every text taken from data is escaped."""
    title = f"Review monitoring, week {week}"
    body = [
        f"<h1>{_E(title)}</h1>",
        f"<p>{_E(str(metrics['review_count']))} reviews scored; "
        f"{_E(str(metrics['labelled_count']))} arrived with a rating.</p>",
        _accuracy(metrics),
        _gate(breaches),
        "<h2>Charts</h2>",
        _class_chart(metrics),
        _length_chart(metrics),
        _latency_chart(metrics),
        _slice_charts(metrics),
        _metrics_table(metrics, breaches),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_E(title)}</title><style>{_STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
