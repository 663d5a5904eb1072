"""Slices of the real shipped Drugs.com reviews, and the stdlib reading of them.

The shipped ``reviews.tsv`` is the test data. A slice is its header plus the first N
reviews, cut at review boundaries (a review's text can span several lines, so "the
first N lines" would cut one in half) and copied byte for byte. Tests that need bad
input append hand-built rows to such a slice.

Expected values come from an independent reading of the same bytes with the standard
library's ``csv`` and ``datetime``, never from the code under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from functools import cache

from reviewops.config import SHIPPED_REVIEWS

# How many real reviews most tests use: enough for repeated products, all three
# classes and many weeks, small enough to keep the layer fast.
SLICE_ROWS = 40

# "Today" for validation: fixed, so future_date does not depend on the clock.
TODAY = dt.date(2024, 6, 3)

# Header of the shipped file, as written (the first column has no name).
HEADER: tuple[str, ...] = ("", "drugName", "condition", "review", "rating", "date", "usefulCount")

Record = dict[str, str]


@cache
def _shipped() -> tuple[tuple[str, ...], tuple[int, ...], tuple[tuple[str, ...], ...]]:
    """The shipped lines, the line number where each record ends, and the records."""
    with open(SHIPPED_REVIEWS, encoding="utf-8", newline="") as handle:
        text = handle.read()  # as stored: some reviews hold \r\r\n inside their text
    lines = tuple(io.StringIO(text, newline="").readlines())
    reader = csv.reader(iter(lines), delimiter="\t")
    header = tuple(next(reader))
    assert header == HEADER, f"the shipped file's header changed: {header}"
    ends, rows = [], []
    for row in reader:
        ends.append(reader.line_num)
        rows.append(tuple(row))
    return lines, tuple(ends), tuple(rows)


def shipped_text(n: int, first: int = 0) -> str:
    """Header plus shipped reviews ``first`` to ``n`` (0-based, ``n`` excluded), as shipped."""
    lines, ends, _ = _shipped()
    header_end = 1
    start = ends[first - 1] if first else header_end
    return "".join(lines[:header_end] + lines[start : ends[n - 1]])


def shipped_records(n: int | None = None) -> list[Record]:
    """The first ``n`` (default: all) shipped reviews as read by the stdlib csv module."""
    _, _, rows = _shipped()
    return [dict(zip(HEADER, row, strict=True)) for row in rows[:n]]


def tsv_line(values: Sequence[str]) -> str:
    """One TSV record, quoted the way the shipped file quotes its fields."""
    out = io.StringIO(newline="")
    csv.writer(out, delimiter="\t", lineterminator="\n").writerow(values)
    return out.getvalue()


def as_row(record: Record) -> list[str]:
    """A record's values in HEADER order."""
    return [record[name] for name in HEADER]


def source_date(text: str) -> dt.date:
    """A shipped date like ``May 30, 2011``, parsed by the standard library."""
    return dt.datetime.strptime(text, "%B %d, %Y").date()


def monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())
