"""Parsing the string values found in review sources."""

from __future__ import annotations

import datetime as dt
import html
import re
import unicodedata
from collections.abc import Callable, Iterable
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
# gives (tests/include/test_oracle.py holds them to it on generated input). Arrow's kernels
# do the work the values have in common; Python sees only the values that need it: the
# distinct dates, labels and counts (a week of reviews has a handful), and the texts that
# hold an HTML entity or no ASCII letter or digit.

# Every character str.isspace accepts, which is what str.strip removes and what re's \s
# matches in str patterns. RE2's \s is ASCII only, and Arrow's utf8_trim_whitespace
# follows a different table (not U+001C..U+001F, for one).
# Written out: computing it at import took 0.13 s (test_oracle.py checks it).
_SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _SPACES) + "]"
_SPACE_NOT_20 = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _SPACES if c != " ") + "]"
# A run of blanks that is not a lone " " (replacing every lone " " by itself cost 8x):
# leftmost-first, a run of two or more is taken whole from its first character.
_SPACE_RUN = _SPACE + "{2,}|" + _SPACE_NOT_20
# Entities of review scrapes, each read alone by html.unescape (a name or a number, then
# ";"), decoded by Arrow: "&amp;" last, so the "&" it gives is not read again in its round.
_PIECE = 1 << 20  # bytes a byte scan looks at at a time
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
_AMP = _ENTITIES.index("&amp;")
# The bytes after an "&" that html.unescape leaves as it is (its end is another).
_AMPERSAND_ALONE_BEFORE = np.frombuffer(b"\t\n\x0c <&;", np.uint8)


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


def has_control_characters_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`has_control_characters` of every string (nulls give False)."""
    whole = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    found = rows_holding(whole, _control_bytes)
    if whole.null_count:
        found &= whole.is_valid().to_numpy(zero_copy_only=False)
    return pa.array(found)


def _control_bytes(data: np.ndarray) -> np.ndarray:
    """The bytes of :data:`_CONTROL` (ASCII, so never part of a longer UTF-8 character)."""
    low = np.flatnonzero(data < 0x20)
    low = low[~np.isin(data[low], (0x09, 0x0A, 0x0D))]
    return np.concatenate([low, np.flatnonzero(data == 0x7F)])


def clean_text_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`clean_text` of every string (a null is cleaned as "").

    Entities are decoded, and the ends stripped and unquoted, on the column's bytes
    (numpy); runs of blanks are collapsed by Arrow's regex kernel, only in the texts that
    have one. Python cleans only the texts holding an "&" this cannot decode exactly."""
    whole = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    texts = pc.fill_null(whole, "") if whole.null_count else whole
    decoded, unsure, again = _unescaped(texts)
    if again:  # some scrapes escape twice (&amp;#039;): clean_text decodes twice
        decoded, unsure_again, _ = _unescaped(decoded)
        unsure |= unsure_again
    blanks = pc.match_substring_regex(decoded, _SPACE_RUN)
    if pc.any(blanks).as_py():
        collapsed = pc.replace_substring_regex(decoded.filter(blanks), _SPACE_RUN, " ")
        decoded = pc.replace_with_mask(decoded, blanks, collapsed)
    cleaned = _stripped_and_unquoted(decoded)
    if unsure.any():
        others = pa.array([clean_text(t) for t in texts.filter(pa.array(unsure)).to_pylist()], pa.string())
        cleaned = pc.replace_with_mask(cleaned, pa.array(unsure), others)
    return cleaned


def rows_holding(values: pa.Array, find: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Which strings of ``values`` hold a byte ``find`` points at: ``find`` gets pieces of
    the column's UTF-8 bytes and returns positions in them. One pass over the bytes."""
    data, offsets = bytes_of(values)
    positions = _found(data, find)
    found = np.zeros(len(values), bool)
    if len(positions):
        found[np.searchsorted(offsets, positions, side="right") - 1] = True
    if values.null_count:
        found &= values.is_valid().to_numpy(zero_copy_only=False)
    return found


def bytes_of(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a string array and its offsets into them (from 0), not copied."""
    offsets = np.frombuffer(values.buffers()[1], np.int32, count=len(values) + 1, offset=values.offset * 4)
    first, size = int(offsets[0]), int(offsets[-1] - offsets[0])
    buffer = values.buffers()[2]
    data = np.frombuffer(buffer, np.uint8, count=size, offset=first) if size else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64) - first


def _string_array(data: np.ndarray, offsets: np.ndarray) -> pa.Array:
    return pa.StringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(data))
    )


def _found(data: np.ndarray, find: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The positions ``find`` gives in ``data``, handed to it a piece at a time (its
    temporaries stay small)."""
    found = [find(data[start : start + _PIECE]) + start for start in range(0, len(data), _PIECE)]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _ampersands(data: np.ndarray) -> np.ndarray:
    return np.flatnonzero(data == 0x26)


def _unescaped(texts: pa.Array) -> tuple[pa.Array, np.ndarray, bool]:
    """One ``html.unescape`` of every text (no nulls), where each "&" starts one of
    :data:`_ENTITIES` or is one it leaves alone; which texts hold another "&" (their value
    here is not theirs: :func:`clean_text` cleans them); and whether an "&amp;" was decoded
    (its "&" a second unescape may read).

    Every "&" is read on its own: no entity holds a second "&", so a match of
    ``html.unescape`` never spans two. Decoded entities are shorter than what they
    replace: each is overwritten by its character and the rest of it dropped."""
    data, offsets = bytes_of(texts)
    amps = _found(data, _ampersands)
    unsure = np.zeros(len(texts), bool)
    if not len(amps):
        return texts, unsure, False
    rows = np.searchsorted(offsets, amps, side="right") - 1
    ends = offsets[rows + 1]
    # The 8 bytes from each "&" as one little-endian number (every entity fits in 8).
    windows = np.zeros(len(amps), np.uint64)
    inner = amps < len(data) - 7
    if inner.any():
        whole = np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
        windows[inner] = whole[amps[inner]]
    for i in np.flatnonzero(~inner):  # the last 7 bytes: at most 7 of them
        windows[i] = int.from_bytes(data[amps[i] :].tobytes(), "little")
    kind = np.full(len(amps), -1, np.int8)
    for k, (written, _) in enumerate(_ENTITY_BYTES):
        mask = (1 << (8 * len(written))) - 1
        pattern = int.from_bytes(written, "little")
        kind[(kind < 0) & ((windows & np.uint64(mask)) == np.uint64(pattern)) & (amps + len(written) <= ends)] = k
    after = amps + 1
    alone = (after >= ends) | np.isin(data[np.minimum(after, len(data) - 1)], _AMPERSAND_ALONE_BEFORE)
    unsure[rows[(kind < 0) & ~alone]] = True
    if not (kind >= 0).any():
        return texts, unsure, False
    out = data.copy()
    drop = []
    shrink = np.zeros(len(amps), np.int64)
    for k, (written, character) in enumerate(_ENTITY_BYTES):
        these = kind == k
        at = amps[these]
        for j, byte in enumerate(character):
            out[at + j] = byte
        drop.append(_ranges(at + len(character), np.full(len(at), len(written) - len(character))))
        shrink[these] = len(written) - len(character)
    keep = np.ones(len(data), bool)
    keep[np.concatenate(drop)] = False
    removed = np.concatenate([np.zeros(1, np.int64), np.cumsum(shrink)])
    decoded = _string_array(out[keep], offsets - removed[np.searchsorted(amps, offsets, side="left")])
    return decoded, unsure, bool((kind == _AMP).any())


def _stripped_and_unquoted(texts: pa.Array) -> pa.Array:
    """Each text (no nulls, blanks collapsed to single " ") stripped of " " at both ends,
    then of the scrape's quotes a pair at a time, stripped again after each pair, as
    :func:`clean_text` does: new ends for every text, then one copy of the bytes between."""
    data, offsets = bytes_of(texts)
    if not len(data):
        return texts
    start, end = offsets[:-1].copy(), offsets[1:].copy()
    last = len(data) - 1
    while True:
        # Blanks are single " " by now: strip() takes one at each end at most.
        start += (start < end) & (data[np.minimum(start, last)] == 0x20)
        end -= (start < end) & (data[np.maximum(end - 1, 0)] == 0x20)
        quoted = (end - start >= 2) & (data[np.minimum(start, last)] == 0x22) & (data[np.maximum(end - 1, 0)] == 0x22)
        if not quoted.any():
            break
        start += quoted
        end -= quoted
    if (start == offsets[:-1]).all() and (end == offsets[1:]).all():
        return texts
    keep = np.ones(len(data), bool)
    keep[_ranges(offsets[:-1], start - offsets[:-1])] = False
    keep[_ranges(end, offsets[1:] - end)] = False
    return _string_array(data[keep], np.concatenate([np.zeros(1, np.int64), np.cumsum(end - start)]))


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions ``starts[i] .. starts[i] + counts[i] - 1`` of every i, in order."""
    total = int(counts.sum())
    before = np.repeat(np.cumsum(counts) - counts, counts)
    positions: np.ndarray = np.repeat(starts, counts) + (np.arange(total) - before)
    return positions


def shows_nothing_array(cleaned: pa.Array) -> pa.Array:
    """:func:`shows_nothing` of every string (no nulls): a text with an ASCII letter or
    digit shows something; the others (few) are checked one by one."""
    unsure = pc.invert(pc.match_substring_regex(cleaned, "[0-9A-Za-z]"))
    if not pc.any(unsure).as_py():
        return pa.array([False] * len(cleaned), pa.bool_())
    answers = pa.array([shows_nothing(t) for t in cleaned.filter(unsure).to_pylist()], pa.bool_())
    return pc.replace_with_mask(pa.array([False] * len(cleaned), pa.bool_()), unsure, answers)


def monday_of_array(dates: pa.Array) -> pa.Array:
    """The Monday of every date's week (date32; nulls stay null): 1970-01-01 was a Thursday."""
    days = pc.fill_null(dates.cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
    mondays = (days - (days + 3) % 7).astype(np.int32)  # numpy's % floors, as the calendar does
    return pa.array(mondays, pa.int32(), mask=pc.is_null(dates).to_numpy(zero_copy_only=False)).cast(pa.date32())


def lower_all(values: pa.Array) -> pa.Array:
    """``str.lower()`` of every string: Arrow's for ASCII texts, Python's for the others
    (Arrow's Unicode case mapping differs: "İ" becomes "i", not "i̇")."""
    ascii_only = pc.string_is_ascii(values)
    lowered = pc.ascii_lower(values)
    other = pc.invert(pc.fill_null(ascii_only, True))
    if not pc.any(other).as_py():
        return lowered
    python = pa.array([v.lower() for v in values.filter(other).to_pylist()], pa.string())
    return pc.replace_with_mask(lowered, other, python)


def take_rows(values: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``values.take(rows)``, chunk by chunk (Arrow's take of a chunked array may combine
    its chunks first: a copy of the whole column)."""
    bounds = np.cumsum([0, *(len(c) for c in values.chunks)])
    chunks = np.searchsorted(bounds, rows, side="right") - 1
    by_chunk = np.argsort(chunks, kind="stable")
    parts = []
    for i in np.unique(chunks).tolist():
        local = rows[by_chunk][chunks[by_chunk] == i] - bounds[i]
        parts.append(values.chunk(i).take(pa.array(local, pa.int64())))
    if not parts:
        return pa.array([], values.type)
    taken = pa.concat_arrays(parts)
    in_order = np.all(by_chunk[1:] > by_chunk[:-1])
    return taken if in_order else taken.take(pa.array(np.argsort(by_chunk), pa.int64()))


def as_frame(table: pa.Table) -> pd.DataFrame:
    """A table as pandas with the types the row-at-a-time frames had: strings and dates as
    Python objects with None for a missing value, counts as Python ints."""
    frame = table.to_pandas(integer_object_nulls=True)
    for f in table.schema:
        if pa.types.is_string(f.type):
            column = frame[f.name].astype(object)
            frame[f.name] = column.where(column.notna(), None)
    return frame
