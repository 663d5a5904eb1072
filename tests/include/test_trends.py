"""Week-over-week trend series: a week that cannot define a metric is a gap, never a zero."""

from __future__ import annotations

from reviewops.monitoring.trends import HEIGHT, PAD_BOTTOM, PAD_TOP, trend_charts, values

WEEKS = [
    ("2017-11-20", {"review_count": 40, "accuracy": 0.5, "drift": {"prediction_psi": 0.1}, "breaches": []}),
    ("2017-11-27", None),  # its metrics.json could not be read
    ("2017-12-04", {"review_count": 10, "accuracy": None, "breaches": [{"metric": "x"}]}),
    ("2017-12-11", {"review_count": 30, "accuracy": 1.0, "estimated_accuracy": 0.8, "breaches": []}),
]


def test_a_missing_value_is_a_gap_that_breaks_the_line() -> None:
    table = values(WEEKS)
    assert table["Volume (reviews)"]["reviews"] == [40.0, None, 10.0, 30.0]
    assert table["Accuracy"]["realised accuracy"] == [0.5, None, None, 1.0]
    assert table["Breaches"]["breaches"] == [0.0, None, 1.0, 0.0]
    charts = {c.title: c for c in trend_charts(WEEKS)}
    (volume,) = charts["Volume (reviews)"].series
    assert [p.week for p in volume.points] == ["2017-11-20", "2017-12-04", "2017-12-11"]
    assert len(volume.segments) == 1, "the lone point before the gap is a dot, the two after it a line"
    accuracy = {s.name: s for s in charts["Accuracy"].series}
    assert accuracy["realised accuracy"].segments == ()  # two points, not adjacent
    assert [p.value for p in accuracy["estimated accuracy"].points] == [0.8]


def test_the_axis_starts_at_zero_and_tops_at_a_round_number_above_the_largest_value() -> None:
    charts = {c.title: c for c in trend_charts(WEEKS)}
    volume = charts["Volume (reviews)"]
    assert [label for _, label in volume.y_ticks] == ["0", "12.5", "25", "37.5", "50"]
    (series,) = volume.series
    top, bottom = PAD_TOP, HEIGHT - PAD_BOTTOM
    assert all(top <= p.y <= bottom for p in series.points)
    assert series.points[0].y < series.points[1].y, "more reviews is higher up"
    assert charts["Accuracy"].y_ticks[-1][1] == "1"
    drift = charts["Drift (PSI)"]
    assert [s.name for s in drift.series] == ["prediction PSI"], "a series no week defines is left out"


def test_no_week_gives_empty_charts() -> None:
    assert all(chart.empty for chart in trend_charts([]))
