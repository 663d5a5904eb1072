"""Where the records of a CSV/TSV file begin and end when its quoting went wrong.

A quote that opens a value and is never closed, or is closed in the middle of a later
value, makes a CSV parser read the lines after it as part of that value: one stray quote
early in a file can swallow the rest of it into a single "row", or join two reviews into
one that looks valid. :func:`record_spans` tells the records apart line by line, as a
careful reader would:

- a record on one line is read as any CSV parser reads it (a quote closed in the middle
  of a value is kept, as before);
- a record that runs over several lines must be well formed: each quoted value closed by
  a quote followed by the delimiter or the line end, and as many fields as the header.
  Otherwise the record is damaged: its first line is set aside on its own and reading
  starts again on the next line.

So a stray quote costs the line it is on, and the lines of a record it really broke,
never the records after it. Only the line boundaries are decided here; the values are
still read by the same parser as a file without damage.

Up to the first damaged record, the careful reading and a lenient parser's agree, so
:func:`damaged_spans` only checks the parser's records that run over several lines (a
few in a file of reviews) and reads the file line by line from the first damaged one.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

# A review can be longer than the csv module's default field limit (131,072 characters);
# validation, not the reader, decides what is too long.
_FIELD_LIMIT = 2**31 - 1


class Lines(Sequence[bytes]):
    """The physical lines of ``data`` with their line ends, as ``data.splitlines(keepends=True)``
    gives them (ended by LF, CRLF or CR), found as offsets: a line is sliced out when asked
    for, so a large file is not held twice, once as a list of lines."""

    _CHUNK = 1 << 26  # bytes scanned at a time: the scan's temporaries stay small

    def __init__(self, data: bytes) -> None:
        whole = np.frombuffer(data, np.uint8)
        found = []
        for start in range(0, len(whole), self._CHUNK):
            part = whole[start : start + self._CHUNK]
            found.append(np.flatnonzero((part == 10) | (part == 13)) + start)
        breaks = np.concatenate(found) if found else np.zeros(0, np.int64)
        after = breaks + 1
        crlf = np.zeros(len(breaks), bool)
        inside = after < len(whole)
        crlf[inside] = (whole[breaks[inside]] == 13) & (whole[after[inside]] == 10)
        ends = after[~crlf]  # a CR followed by LF ends its line at the LF
        if not len(ends) or ends[-1] != len(data):
            ends = np.append(ends, len(data)) if len(data) else ends
        self._data = data
        self._bounds = np.concatenate([np.zeros(1, np.int64), ends.astype(np.int64)])

    def __len__(self) -> int:
        return len(self._bounds) - 1

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._data[int(self._bounds[index]) : int(self._bounds[index + 1])]


@dataclass(frozen=True)
class Span:
    """The physical lines ``[first, end)`` of one record (0-based, the header is line 0)."""

    first: int
    end: int
    damaged: bool = False


def damaged_spans(lines: Sequence[bytes], counts: Sequence[int], width: int, delimiter: str) -> list[Span] | None:
    """The records of a file as a careful reader finds them, when a lenient parser's are
    damaged; None when they are all sound.

    ``lines`` are the file's physical lines with their line ends (the header first);
    ``counts`` how many of them each record the parser read takes, in file order.
    """
    if 1 + sum(counts) != len(lines):  # blank lines (which are no record): check every line
        spans = record_spans(_decoded(lines), 1, width, delimiter)
        return spans if any(span.damaged for span in spans) else None
    starts = list(itertools.accumulate(counts, initial=1))
    several = [i for i, count in enumerate(counts) if count > 1]
    # One strict reader over the records that run over several lines, each handed to it
    # whole: it starts each at its first line as long as every record before was sound.
    records = (b"".join(lines[starts[i] : starts[i + 1]]).decode("utf-8") for i in several)
    reader = csv.reader(records, delimiter=delimiter, strict=True)
    with _unlimited_fields():
        unsound = (i for n, i in enumerate(several, start=1) if not _next_record_sound(reader, width, n))
        damaged = next(unsound, None)
    if damaged is None:
        return None
    sound = [Span(starts[i], starts[i + 1]) for i in range(damaged)]
    return sound + record_spans(_decoded(lines), starts[damaged], width, delimiter)


def _next_record_sound(reader: Any, width: int, texts: int) -> bool:
    """Whether the reader's next record is well formed, ``width`` fields, and ends with
    the ``texts``-th text handed to it (a record that ends earlier meets a line end
    outside quotes, an error; one that ends later took the next record's text)."""
    try:
        row = next(reader)
    except (csv.Error, StopIteration):
        return False
    return len(row) == width and reader.line_num == texts


def _decoded(lines: Sequence[bytes]) -> list[str]:
    return [line.decode("utf-8") for line in lines]


def record_spans(lines: Sequence[str], start: int, width: int, delimiter: str) -> list[Span]:
    """The records of ``lines`` (each with its line end) from line ``start`` on, in order;
    blank lines are not records. ``width`` is the header's number of fields."""
    spans: list[Span] = []
    position = start
    with _unlimited_fields():
        while position < len(lines):
            position = _spans_until_damage(lines, position, width, delimiter, spans)
    return spans


def _spans_until_damage(lines: Sequence[str], start: int, width: int, delimiter: str, spans: list[Span]) -> int:
    """Append the records from line ``start`` on until a damaged one (appended as its
    first line alone); return the line to start again from (the end when none is damaged)."""
    reader = csv.reader(itertools.islice(lines, start, None), delimiter=delimiter, strict=True)
    while True:
        first = start + reader.line_num
        row: list[str] | None
        try:
            row = next(reader)
        except StopIteration:
            return len(lines)
        except csv.Error:
            row = None  # a quote closed in the middle of a value, or never closed
        end = start + reader.line_num
        if row == []:
            continue  # a blank line
        if _damaged(lines, first, end, row, width, delimiter):
            spans.append(Span(first, first + 1, damaged=True))
            return first + 1
        spans.append(Span(first, end))


def _damaged(lines: Sequence[str], first: int, end: int, row: list[str] | None, width: int, delimiter: str) -> bool:
    if row is not None:
        return end - first > 1 and len(row) != width
    # The strict reader stopped on line ``first`` itself: a lenient reader (the parser that
    # reads the values) may still take the record as that one line, which is not damage.
    return end - first > 1 or _lenient_lines(lines, first, delimiter) > 1


def _lenient_lines(lines: Sequence[str], first: int, delimiter: str) -> int:
    """How many lines a lenient reader takes for the record starting on line ``first``."""
    reader = csv.reader(itertools.islice(lines, first, None), delimiter=delimiter)
    try:
        next(reader, None)
    except csv.Error:
        return 1
    return reader.line_num


@contextmanager
def _unlimited_fields() -> Iterator[None]:
    previous = csv.field_size_limit(_FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(previous)
