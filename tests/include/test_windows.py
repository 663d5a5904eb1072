"""Calendar-week windows and how a run's week is resolved."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from reviewops.data.windows import ONE_WEEK, Window, WindowError, monday_of, resolve_week

MONDAY = dt.date(2024, 1, 8)
UTC = dt.UTC


def at_midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_week_of_a_monday_is_seven_days_from_it() -> None:
    window = Window.week(MONDAY)

    assert (window.start, window.end) == (MONDAY, MONDAY + ONE_WEEK)
    assert window.is_single_week
    assert window.contains(MONDAY)
    assert window.contains(MONDAY + dt.timedelta(days=6))
    assert not window.contains(MONDAY + ONE_WEEK)
    assert not window.contains(MONDAY - dt.timedelta(days=1))


@pytest.mark.parametrize("offset", range(1, 7))
def test_week_refuses_a_day_that_is_not_a_monday_and_names_its_monday(offset: int) -> None:
    day = MONDAY + dt.timedelta(days=offset)

    with pytest.raises(WindowError) as raised:
        Window.week(day)

    message = str(raised.value)
    assert f"{day.isoformat()} is a {day.strftime('%A')}, not a Monday" in message
    assert MONDAY.isoformat() in message


def test_monday_of_every_day_of_a_week_is_its_monday() -> None:
    days = [MONDAY + dt.timedelta(days=i) for i in range(7)]

    assert {monday_of(day) for day in days} == {MONDAY}
    assert monday_of(MONDAY + ONE_WEEK) == MONDAY + ONE_WEEK


def test_window_refuses_an_end_that_is_not_after_its_start() -> None:
    with pytest.raises(WindowError, match="empty window"):
        Window(MONDAY, MONDAY)
    with pytest.raises(WindowError, match="empty window"):
        Window(MONDAY, MONDAY - dt.timedelta(days=1))


def test_single_week_window_has_one_week_and_a_week_key() -> None:
    window = Window.week(MONDAY)

    assert list(window.weeks()) == [MONDAY]
    assert window.key == "week=2024-01-08"


def test_multi_week_window_lists_every_overlapping_monday_and_has_a_window_key() -> None:
    # Wednesday 3 January to Saturday 20 January (exclusive) overlaps three weeks.
    window = Window(dt.date(2024, 1, 3), dt.date(2024, 1, 20))

    assert list(window.weeks()) == [dt.date(2024, 1, 1), dt.date(2024, 1, 8), dt.date(2024, 1, 15)]
    assert not window.is_single_week
    assert window.key == "window=2024-01-03_2024-01-20"


def test_two_whole_weeks_are_not_a_single_week() -> None:
    window = Window(MONDAY, MONDAY + 2 * ONE_WEEK)

    assert list(window.weeks()) == [MONDAY, MONDAY + ONE_WEEK]
    assert window.key == f"window={MONDAY.isoformat()}_{(MONDAY + 2 * ONE_WEEK).isoformat()}"


def test_covering_gives_the_whole_weeks_around_first_and_last_day() -> None:
    first, last = dt.date(2024, 1, 10), dt.date(2024, 1, 21)  # a Wednesday and a Sunday

    window = Window.covering(first, last)

    assert (window.start, window.end) == (MONDAY, dt.date(2024, 1, 22))
    assert window.contains(first)
    assert window.contains(last)


def test_manual_run_uses_the_conf_week() -> None:
    assert resolve_week(conf_week="2024-01-08") == Window.week(MONDAY)


def test_conf_week_wins_over_the_data_interval_and_the_partition_key() -> None:
    other = MONDAY + 5 * ONE_WEEK

    window = resolve_week(
        conf_week=MONDAY.isoformat(),
        data_interval_start=at_midnight_utc(other),
        data_interval_end=at_midnight_utc(other + ONE_WEEK),
        partition_key=other.isoformat(),
    )

    assert window == Window.week(MONDAY)


def test_manual_run_with_a_wednesday_is_refused_naming_the_monday() -> None:
    with pytest.raises(WindowError, match=re.escape("pass the Monday that starts the week, e.g. 2024-01-08")):
        resolve_week(conf_week="2024-01-10")


def test_manual_run_with_a_week_that_is_not_a_date_is_refused() -> None:
    with pytest.raises(WindowError, match="use YYYY-MM-DD"):
        resolve_week(conf_week="last week")


def test_scheduled_run_uses_its_one_week_data_interval() -> None:
    window = resolve_week(
        data_interval_start=at_midnight_utc(MONDAY),
        data_interval_end=at_midnight_utc(MONDAY + ONE_WEEK),
    )

    assert window == Window.week(MONDAY)


def test_data_interval_in_another_time_zone_is_read_in_utc() -> None:
    # 02:00 at UTC+2 is Monday 00:00 UTC: the week of MONDAY, although the local dates
    # are the same days; 23:00 at UTC-1 on Sunday is Monday 00:00 UTC too.
    plus_two = dt.timezone(dt.timedelta(hours=2))
    minus_one = dt.timezone(dt.timedelta(hours=-1))
    start = dt.datetime(2024, 1, 7, 23, 0, tzinfo=minus_one)
    end = dt.datetime(2024, 1, 15, 2, 0, tzinfo=plus_two)

    assert resolve_week(data_interval_start=start, data_interval_end=end) == Window.week(MONDAY)


def test_backfill_run_of_a_past_week_resolves_that_week() -> None:
    past = dt.date(2011, 5, 30)

    window = resolve_week(
        data_interval_start=at_midnight_utc(past),
        data_interval_end=at_midnight_utc(past + ONE_WEEK),
    )

    assert window.key == "week=2011-05-30"


def test_data_interval_that_is_not_one_calendar_week_is_refused() -> None:
    with pytest.raises(WindowError, match="not one calendar week starting on a Monday"):
        resolve_week(
            data_interval_start=at_midnight_utc(MONDAY),
            data_interval_end=at_midnight_utc(MONDAY + dt.timedelta(days=1)),
        )
    with pytest.raises(WindowError, match="not one calendar week starting on a Monday"):
        resolve_week(
            data_interval_start=at_midnight_utc(MONDAY + dt.timedelta(days=2)),
            data_interval_end=at_midnight_utc(MONDAY + dt.timedelta(days=9)),
        )


def test_partitioned_run_uses_its_partition_key() -> None:
    assert resolve_week(partition_key="2024-01-08") == Window.week(MONDAY)


def test_partition_key_that_is_not_a_monday_is_refused() -> None:
    with pytest.raises(WindowError, match="2024-01-09 is a Tuesday, not a Monday"):
        resolve_week(partition_key="2024-01-09")


def test_zero_length_data_interval_is_refused_not_processed_as_empty() -> None:
    instant = at_midnight_utc(MONDAY)

    with pytest.raises(WindowError, match="zero-length data interval") as raised:
        resolve_week(data_interval_start=instant, data_interval_end=instant)

    assert "CronDataIntervalTimetable" in str(raised.value)


@pytest.mark.parametrize(
    ("start", "end"),
    [(None, None), (dt.datetime(2024, 1, 8, tzinfo=UTC), None), (None, dt.datetime(2024, 1, 15, tzinfo=UTC))],
)
def test_run_with_no_week_is_refused_with_what_to_pass(start: dt.datetime | None, end: dt.datetime | None) -> None:
    with pytest.raises(WindowError, match=re.escape('trigger it with conf {"week": "YYYY-MM-DD"}')):
        resolve_week(conf_week=None, data_interval_start=start, data_interval_end=end, partition_key=None)


@pytest.mark.parametrize("monday", ["9999-12-27", "9999-12-20"])
def test_the_last_weeks_there_are_give_one_line_or_a_week(monday: str) -> None:
    day = dt.date.fromisoformat(monday)
    if day == dt.date(9999, 12, 20):  # the last week whose end Python can hold
        assert resolve_week(conf_week=monday) == Window(day, dt.date(9999, 12, 27))
        assert list(Window(day, dt.date(9999, 12, 31)).weeks()) == [day]
        return

    with pytest.raises(WindowError) as raised:
        resolve_week(conf_week=monday)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("the week of 9999-12-27 ends after 9999-12-31")
    with pytest.raises(WindowError, match="ends after 9999-12-31"):
        Window.covering(dt.date(2017, 1, 2), dt.date(9999, 12, 29))


def test_plausible_dates_cut_a_window_to_their_weeks_and_refuse_one_outside() -> None:
    from reviewops.data.windows import PlausibleDates

    plausible = PlausibleDates(earliest=dt.date(1995, 1, 1), today=dt.date(2024, 6, 5))  # a Sunday, a Wednesday

    wide = plausible.limit(Window(dt.date(1899, 12, 25), dt.date(2100, 1, 4)))
    inside = Window(dt.date(2017, 1, 2), dt.date(2017, 1, 16))

    assert wide == Window(dt.date(1994, 12, 26), dt.date(2024, 6, 10))
    assert plausible.limit(inside) is inside
    assert plausible.limit(Window.week(dt.date(2024, 6, 3))) == Window.week(dt.date(2024, 6, 3))
    assert plausible.contains(dt.date(1995, 1, 1)) and plausible.contains(dt.date(2024, 6, 5))
    assert not plausible.contains(dt.date(1994, 12, 31)) and not plausible.contains(dt.date(2024, 6, 6))
    for week in (dt.date(1900, 1, 1), dt.date(2030, 1, 7)):
        with pytest.raises(WindowError, match=r"holds no plausible review date \(from 1995-01-01 to today"):
            plausible.limit(Window.week(week))
