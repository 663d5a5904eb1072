"""Parsing the string values found in review sources."""

from __future__ import annotations

import datetime as dt
import html
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # pandas is for the frame API only
    import pandas as pd

DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%Y-%m-%d", "%d %B %Y", "%Y/%m/%d")

# The Drugs.com labels are words; numeric 1-10 star ratings are mapped the same way
# the shipped file was (below 5 negative, 5-6 neutral, above 6 positive).
_LABEL_WORDS = {"negative": "negative", "neutral": "neutral", "positive": "positive"}

_WHITESPACE = re.compile(r"\s+")
_MAX_COUNT = 2**63 - 1  # stored as int64
# Whole numbers as exports write them: ASCII digits only. int() and float() also accept
# "1e1", "10.0", "1_0" and digits of other scripts ("١٠", "１０"), which no rating or
# count column holds by design.
_ASCII_DIGITS = re.compile(r"[0-9]+")
# Characters that show nothing: format characters such as the zero-width space (U+200B),
# joiners and the byte-order mark, besides separators and whitespace.
_INVISIBLE = {"Cf", "Zs", "Zl", "Zp", "Cc"}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def parse_date(value: str | None) -> dt.date | None:
    """A review date from the forms seen in sources, or None when it is not a date."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    # ISO date-times keep their day: "T" as written, or a space as pyarrow writes the
    # timestamps it infers from JSON strings or reads from Parquet, cast to string.
    if len(text) > 10 and text[4] == "-" and text[10] in "T ":
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        # A time with an offset is a moment: its day is the UTC day, like every week's.
        return (moment.astimezone(dt.UTC) if moment.tzinfo is not None else moment).date()
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_dates(values: Iterable[str | None]) -> list[dt.date | None]:
    """Vectorised :func:`parse_date`: each distinct string is parsed once."""
    cache: dict[str | None, dt.date | None] = {}
    out = []
    for value in values:
        if value not in cache:
            cache[value] = parse_date(value)
        out.append(cache[value])
    return out


def parse_label(value: str | None) -> str | None:
    """The canonical class of a label word or a whole 1-10 star rating, else None."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in _LABEL_WORDS:
        return _LABEL_WORDS[text]
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    stars = int(text)
    if not 1 <= stars <= 10:
        return None
    if stars < 5:
        return "negative"
    return "neutral" if stars <= 6 else "positive"


def parse_count(value: str | None) -> int | None:
    """A non-negative integer count; None for empty; raises ValueError otherwise."""
    if value is None or not value.strip():
        return None
    if not _ASCII_DIGITS.fullmatch(value.strip()):
        raise ValueError(f"count {value.strip()!r} is not a whole number in ASCII digits")
    number = int(value.strip())
    if not 0 <= number <= _MAX_COUNT:
        raise ValueError(f"count {number} out of range")
    return number


def clean_text(value: str) -> str:
    """Review text as a reader sees it: entities decoded, scrape quotes and runs of
    whitespace removed."""
    text = value
    for _ in range(2):  # some scrapes escape twice (&amp;#039;)
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = _WHITESPACE.sub(" ", text).strip()
    while len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].strip()
    return text


def shows_nothing(text: str) -> bool:
    """Whether a text holds no visible character (only blanks and zero-width characters)."""
    return all(unicodedata.category(ch) in _INVISIBLE for ch in text)


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


def content_key(product: str, text: str) -> str:
    """What makes two reviews the same review for deduplication."""
    return f"{product.strip().lower()}\x1f{clean_text(text).lower()}"


# -- the same, over whole Arrow columns --------------------------------------------------
#
# Each function below gives, for every value of a column, what its per-value twin above
# gives (tests/include/test_oracle.py holds them to it on generated input). Arrow's kernels,
# and for texts one compiled pass over their bytes (kernels.py), do the work the values have
# in common; Python sees only the values that need it: the distinct dates, labels and counts
# (a week of reviews has a handful), and the texts that hold an "&" other than the entities
# of review scrapes, or no ASCII letter or digit.

# Every character str.isspace accepts, which is what str.strip removes and what re's \s
# matches in str patterns. RE2's \s is ASCII only, and Arrow's utf8_trim_whitespace
# follows a different table (not U+001C..U+001F, for one).
# Written out: computing it at import took 0.13 s (test_oracle.py checks it).
_SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _SPACES) + "]"
# Entities of review scrapes, each read alone by html.unescape (a name or a number, then
# ";"), decoded without Python (kernels.clean_texts); another "&" that html.unescape would
# read sends its text to clean_text.
_ENTITIES = (
    "&#039;",
    "&#39;",
    "&quot;",
    "&lt;",
    "&gt;",
    "&nbsp;",
    "&apos;",
    "&rsquo;",
    "&lsquo;",
    "&rdquo;",
    "&ldquo;",
    "&ndash;",
    "&mdash;",
    "&hellip;",
    "&amp;",
)
_ENTITY_BYTES = tuple((e.encode(), html.unescape(e).encode()) for e in _ENTITIES)


def _entity_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:data:`_ENTITIES` as kernels.clean_texts reads them: each written (padded to 8
    bytes) and its length, what it decodes to (padded to 4) and its length."""
    written = np.zeros((len(_ENTITY_BYTES), 8), np.uint8)
    characters = np.zeros((len(_ENTITY_BYTES), 4), np.uint8)
    for k, (entity, character) in enumerate(_ENTITY_BYTES):
        written[k, : len(entity)] = np.frombuffer(entity, np.uint8)
        characters[k, : len(character)] = np.frombuffer(character, np.uint8)
    lengths = np.array([[len(e), len(c)] for e, c in _ENTITY_BYTES], np.int64)
    return written, lengths[:, 0].copy(), characters, lengths[:, 1].copy()


_ENTITY_TABLE = _entity_table()
# The bytes after an "&" that html.unescape leaves as it is (its end is another).
_ALONE_BEFORE = np.zeros(256, np.bool_)
_ALONE_BEFORE[np.frombuffer(b"\t\n\x0c <&;", np.uint8)] = True
_ASCII_ALNUM = re.compile(r"[0-9A-Za-z]")
# Rows taken from a column are sliced from its chunks when they run on for this many rows
# on average, else taken row by row (take_rows).
_MIN_RUN = 64


def strip_all(values: pa.Array) -> pa.Array:
    """``str.strip()`` of every string (nulls stay null)."""
    return pc.utf8_trim(values, characters=_SPACES)


def is_blank_array(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Whether each value is missing or nothing but blanks (``not v or not v.strip()``),
    without a stripped copy of the column."""
    return pc.fill_null(pc.or_kleene(pc.is_null(values), pc.match_substring_regex(values, f"^{_SPACE}*$")), True)


def by_distinct_value(values: pa.Array, parse: Callable[[Any], Any], type_: pa.DataType) -> pa.Array:
    """``parse`` of each value, called once per distinct value (nulls included, as None)."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    parsed = pa.array([parse(v) for v in encoded.dictionary.to_pylist()], type_)
    return pc.take(parsed, encoded.indices)


def parse_date_array(values: pa.Array) -> pa.Array:
    """:func:`parse_date` of every value, as date32."""
    return by_distinct_value(values, parse_date, pa.date32())


def parse_label_array(values: pa.Array) -> pa.Array:
    """:func:`parse_label` of every value."""
    return by_distinct_value(values, parse_label, pa.string())


def _count_or_bad(value: str | None) -> int | None:
    try:
        return parse_count(value)
    except ValueError:
        return -1  # counts are never negative: -1 marks one that is not a count


def parse_count_array(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """:func:`parse_count` of every value as int64, and where it raised ValueError."""
    parsed = by_distinct_value(values, _count_or_bad, pa.int64())
    bad = pc.fill_null(pc.equal(parsed, -1), False)
    return pc.if_else(bad, pa.scalar(None, pa.int64()), parsed), bad


@dataclass(frozen=True)
class TextFacts:
    """Texts cleaned (:func:`clean_text`), with what validate checks of them: each as it
    came is missing or blank (``not v or not v.strip()``), holds a control character
    (:func:`has_control_characters`; False for a missing one), and once cleaned shows
    nothing (:func:`shows_nothing`) and is ``lengths`` characters long."""

    cleaned: pa.Array
    blank: np.ndarray
    control: np.ndarray
    empty: np.ndarray
    lengths: np.ndarray


def check_texts(values: pa.Array | pa.ChunkedArray) -> TextFacts:
    """:class:`TextFacts` of every string (a missing one is cleaned as "").

    One compiled pass over the column's bytes per text (:func:`reviewops.data.kernels.clean_texts`)
    cleans it and checks it; Python sees only the texts holding an "&" that is not one of
    :data:`_ENTITIES` (their cleaning) and those without an ASCII letter or digit (whether
    they show anything)."""
    from reviewops.data import kernels

    whole = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    texts = pc.fill_null(whole, "") if whole.null_count else whole
    data, offsets = bytes_of(texts)
    out, out_offsets, unsure, blank, control, lengths, alnum = kernels.clean_texts(
        data, offsets, kernels.BYTE_CLASSES, _ENTITY_TABLE, _ALONE_BEFORE
    )
    cleaned = string_array(out, out_offsets)
    if unsure.any():
        mask = pa.array(unsure)
        redone = [clean_text(t) for t in texts.filter(mask).to_pylist()]
        cleaned = pc.replace_with_mask(cleaned, mask, pa.array(redone, pa.string()))
        lengths[unsure] = [len(t) for t in redone]
        alnum[unsure] = [_ASCII_ALNUM.search(t) is not None for t in redone]
    empty = ~alnum
    if empty.any():
        empty[empty] = [shows_nothing(t) for t in cleaned.filter(pa.array(empty)).to_pylist()]
    if whole.null_count:
        control &= whole.is_valid().to_numpy(zero_copy_only=False)
    return TextFacts(cleaned=cleaned, blank=blank, control=control, empty=empty, lengths=lengths)


def prepare_check_texts() -> None:
    """Load :func:`check_texts`' compiled kernel now: importing numba and loading the
    kernel from its cache take 0.7-0.9 s of CPU in a new process (compiling it, after an
    install, about 10 s). A step starts this in a thread while it reads its batch."""
    check_texts(pa.array(["&amp; "], pa.string()))


def clean_text_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`clean_text` of every string (a missing one is cleaned as "")."""
    return check_texts(values).cleaned


def bytes_of(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a string array and its offsets into them (from 0), not copied."""
    offsets = np.frombuffer(values.buffers()[1], np.int32, count=len(values) + 1, offset=values.offset * 4)
    first, size = int(offsets[0]), int(offsets[-1] - offsets[0])
    buffer = values.buffers()[2]
    data = np.frombuffer(buffer, np.uint8, count=size, offset=first) if size else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64) - first


def string_array(data: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """The string array of UTF-8 ``data`` cut at ``offsets`` (from 0): :func:`bytes_of` undone."""
    return pa.StringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(data))
    )


def monday_of_array(dates: pa.Array) -> pa.Array:
    """The Monday of every date's week (date32; nulls stay null): 1970-01-01 was a Thursday."""
    days = pc.fill_null(dates.cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
    mondays = (days - (days + 3) % 7).astype(np.int32)  # numpy's % floors, as the calendar does
    return pa.array(mondays, pa.int32(), mask=pc.is_null(dates).to_numpy(zero_copy_only=False)).cast(pa.date32())


def lower_all(values: pa.Array) -> pa.Array:
    """``str.lower()`` of every string: Arrow's for ASCII texts, Python's for the others
    (Arrow's Unicode case mapping differs: "İ" becomes "i", not "i̇")."""
    lowered = pc.ascii_lower(values)
    other = not_ascii(values)
    if not pc.any(other).as_py():
        return lowered
    python = pa.array([v.lower() for v in values.filter(other).to_pylist()], pa.string())
    return pc.replace_with_mask(lowered, other, python)


def not_ascii(values: pa.Array) -> pa.BooleanArray:
    """Whether each string holds a character beyond ASCII (a missing one does not)."""
    return pc.invert(pc.fill_null(pc.string_is_ascii(values), True))


def take_rows(values: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``values.take(rows)`` as one array, with no combined copy of the column (Arrow's
    take of a chunked array combines its chunks first)."""
    return _RowPlan.of(tuple(len(c) for c in values.chunks), rows).take(values)


def take_table_rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)``, each column one array, with no combined copy of a column
    (Arrow's take of a chunked array combines its chunks first): where the rows lie in
    each column's chunks is worked out once for all the columns that share a chunking."""
    plans: dict[tuple[int, ...], _RowPlan] = {}
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        lengths = tuple(len(c) for c in column.chunks)
        if lengths not in plans:
            plans[lengths] = _RowPlan.of(lengths, rows)
        columns[name] = plans[lengths].take(column)
    return pa.table(columns, schema=table.schema)


@dataclass(frozen=True)
class _RowPlan:
    """How to take given rows from a column of chunks of known lengths. Rows that mostly
    follow one another (a batch already in curated order, as a synthetic or re-sorted
    source gives) are ``runs``, slices (chunk, start, length) concatenated; scattered rows
    are taken chunk by chunk (``takes``: chunk, positions in it), and ``order`` then puts
    them back in the order asked for (None when they already are)."""

    runs: list[tuple[int, int, int]] | None
    takes: list[tuple[int, pa.Array]]
    order: pa.Array | None

    @classmethod
    def of(cls, lengths: tuple[int, ...], rows: np.ndarray) -> _RowPlan:
        bounds = np.cumsum([0, *lengths])
        chunk = np.searchsorted(bounds, rows, side="right") - 1
        local = rows - bounds[chunk]
        # A run starts where a row does not follow the one before in the same chunk.
        starts = np.flatnonzero((np.diff(local, prepend=-2) != 1) | (np.diff(chunk, prepend=-1) != 0))
        if len(starts) * _MIN_RUN <= len(rows):
            ends = [*starts[1:].tolist(), len(rows)] if len(rows) else []
            runs = [(int(chunk[a]), int(local[a]), b - a) for a, b in zip(starts.tolist(), ends, strict=True)]
            return cls(runs=runs, takes=[], order=None)
        in_order = bool(np.all(chunk[1:] >= chunk[:-1]))
        by_chunk = np.arange(len(rows)) if in_order else np.argsort(chunk, kind="stable")
        chunk, local = chunk[by_chunk], local[by_chunk]
        cuts = [0, *(np.flatnonzero(chunk[1:] != chunk[:-1]) + 1).tolist(), len(rows)]
        takes = [(int(chunk[a]), pa.array(local[a:b], pa.int64())) for a, b in itertools.pairwise(cuts) if b > a]
        return cls(runs=None, takes=takes, order=None if in_order else pa.array(np.argsort(by_chunk), pa.int64()))

    def take(self, column: pa.ChunkedArray) -> pa.Array:
        if self.runs is not None:
            parts = [column.chunk(i).slice(start, length) for i, start, length in self.runs]
        else:
            parts = [column.chunk(i).take(at) for i, at in self.takes]
        if not parts:
            return pa.array([], column.type)
        taken = pa.concat_arrays(parts)
        return taken if self.order is None else taken.take(self.order)


def as_frame(table: pa.Table) -> pd.DataFrame:
    """A table as pandas with the types the row-at-a-time frames had: strings and dates as
    Python objects with None for a missing value, counts as Python ints."""
    frame = table.to_pandas(integer_object_nulls=True)
    for f in table.schema:
        if pa.types.is_string(f.type):
            column = frame[f.name].astype(object)
            frame[f.name] = column.where(column.notna(), None)
    return frame
