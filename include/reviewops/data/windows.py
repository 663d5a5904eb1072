"""Calendar-week windows: [Monday 00:00 UTC, next Monday).

Every output of the weekly pipeline is keyed by the Monday of its week, never by a
logical date or run id, because a manual run and a backfill run of the same week can
carry different logical dates (see the README's backfill runbook).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

ONE_WEEK = dt.timedelta(days=7)
# The last Monday whose week ends on a date Python can hold (9999-12-27 + 7 days cannot).
LAST_MONDAY = dt.date(9999, 12, 20)


class WindowError(ValueError):
    """A window that cannot be resolved; the message says what to pass instead."""


def monday_of(day: dt.date) -> dt.date:
    """The Monday that starts the calendar week holding ``day``."""
    return day - dt.timedelta(days=day.weekday())


@dataclass(frozen=True)
class Window:
    """A half-open range of days ``[start, end)``."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise WindowError(f"empty window: end {self.end} is not after start {self.start}")

    @classmethod
    def week(cls, monday: dt.date) -> Window:
        if monday.weekday() != 0:
            raise WindowError(
                f"{monday.isoformat()} is a {monday.strftime('%A')}, not a Monday: "
                f"pass the Monday that starts the week, e.g. {monday_of(monday).isoformat()}"
            )
        return cls(monday, week_after(monday))

    @classmethod
    def covering(cls, first: dt.date, last: dt.date) -> Window:
        """The whole weeks covering the days ``first`` to ``last`` inclusive."""
        return cls(monday_of(first), week_after(monday_of(last)))

    @property
    def is_single_week(self) -> bool:
        return self.start.weekday() == 0 and self.end - self.start == ONE_WEEK

    @property
    def key(self) -> str:
        """Partition key of a batch read for this window."""
        if self.is_single_week:
            return f"week={self.start.isoformat()}"
        return f"window={self.start.isoformat()}_{self.end.isoformat()}"

    def weeks(self) -> Iterator[dt.date]:
        """Mondays of the calendar weeks that overlap the window."""
        monday = monday_of(self.start)
        while monday < self.end:
            yield monday
            if monday >= LAST_MONDAY:
                return
            monday += ONE_WEEK

    def contains(self, day: dt.date) -> bool:
        return self.start <= day < self.end

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def week_after(monday: dt.date) -> dt.date:
    """The Monday after ``monday``; a one-line WindowError past the last week there is."""
    if monday > LAST_MONDAY:
        raise WindowError(
            f"the week of {monday.isoformat()} ends after {dt.date.max.isoformat()}, the last date there is: "
            "pass a real week (YYYY-MM-DD, a Monday)"
        )
    return monday + ONE_WEEK


@dataclass(frozen=True)
class PlausibleDates:
    """The days a review can be dated: from ``earliest`` to ``today`` inclusive. A date
    outside is a typo or an export error (quarantined), never a reason to write weeks."""

    earliest: dt.date
    today: dt.date

    def contains(self, day: dt.date) -> bool:
        return self.earliest <= day <= self.today

    def limit(self, window: Window) -> Window:
        """The whole weeks of ``window`` that can hold a plausible date."""
        start = max(window.start, monday_of(self.earliest))
        end = min(window.end, week_after(monday_of(self.today)))
        if end <= start:
            raise WindowError(
                f"window {window.start} -> {window.end} holds no plausible review date (from {self.earliest} "
                f"to today, {self.today}): pass a week in that range"
            )
        return window if (start, end) == (window.start, window.end) else Window(start, end)


def parse_day(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise WindowError(f"{what} {value!r} is not a date: use YYYY-MM-DD") from None


def resolve_week(
    conf_week: str | None = None,
    data_interval_start: dt.datetime | dt.date | None = None,
    data_interval_end: dt.datetime | dt.date | None = None,
    partition_key: str | None = None,
) -> Window:
    """The week a run of the weekly pipeline processes.

    Precedence: an explicit ``week`` (manual runs and backfills with conf), then a
    partition key (partitioned timetables carry no data interval), then the data
    interval of a scheduled or backfill run. A zero-length interval (a bare cron string
    in Airflow 3 means CronTriggerTimetable) is refused rather than processed as empty.
    """
    if conf_week:
        return Window.week(parse_day(conf_week, "week"))
    if partition_key:
        return Window.week(parse_day(partition_key, "partition key"))
    if data_interval_start is None or data_interval_end is None:
        raise WindowError('this run has no week: trigger it with conf {"week": "YYYY-MM-DD"} (a Monday)')
    start = _as_date(data_interval_start)
    end = _as_date(data_interval_end)
    if start == end:
        raise WindowError(
            f"zero-length data interval at {start}: the DAG's timetable must be "
            "CronDataIntervalTimetable, not a bare cron string"
        )
    window = Window(start, end)
    if not window.is_single_week:
        raise WindowError(f"data interval {start} -> {end} is not one calendar week starting on a Monday")
    return window


def _as_date(value: dt.datetime | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.date()
    return value
