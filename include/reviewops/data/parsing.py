"""Parsing the string values found in review sources."""

from __future__ import annotations

import datetime as dt
import html
import re
import unicodedata
from collections.abc import Iterable

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
