"""Safety flags of review text: personal data (email, phone, URL) and toxic language.

Personal data is found by regular expressions shaped on real review text, where numbers
are mostly dosages ("16-24mg", "100-150mcg"), dates ("02.25.2016") and pain scores
("10 to 6"): a phone number needs a real phone shape (a North American 3-3-4 number with
separators, an international number starting with +, or a national number with a
leading trunk 0), never just a run of digits. Toxic language is found by whole-word
matching against the small curated lexicon in ``data/toxic_terms.txt``.

A personal-data hit scores 1.0; ``n`` toxic hits score ``1 - 0.5**n`` (0.5, 0.75,
0.875, ...); a text's score is the maximum over its categories.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

EMAIL = "email"
PHONE = "phone"
URL = "url"
TOXIC = "toxic"
CATEGORIES: tuple[str, ...] = (EMAIL, PHONE, URL, TOXIC)

TOXIC_TERMS_FILE = Path(__file__).resolve().parent / "toxic_terms.txt"

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")

# Scheme or www. URLs, and bare domains on a short list of common top-level domains
# ("drugs.com/...", "nhs.uk"), matched in lowercased text. A bare domain is not preceded
# by @ or a word character, so the domain of an email address is not a URL as well.
_URL = re.compile(
    r"\bhttps?://[^\s<>\"']+"
    r"|\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s<>\"']*"
    r"|(?<![@\w.-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|info|biz|io|co\.uk|org\.uk|nhs\.uk)\b"
    r"(?:/[^\s<>\"']*)?"
)

# The end of a phone number: not followed by a word character, a hyphen, a decimal
# part or a unit, so "150-200-1000 mg", "555-123-4567mg" or "555-123-4567.5" are not
# phone numbers.
_END = r"(?![\w-]|\.\d|\s?(?:mg|mcg|µg|ml|mmol|iu|units?|kg|lbs?|pounds)\b|\s?%)"
_START = r"(?<![\w+.-])"
_PHONE_SHAPES: tuple[tuple[re.Pattern[str], int, int], ...] = (
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, +1 555 123 4567.
    (re.compile(_START + r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)[\s.-]?|\d{3}[\s.-])\d{3}[\s.-]\d{4}" + _END), 10, 11),
    # International with a country code: +44 20 7946 0958, +49-30-1234567.
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}" + _END), 9, 15),
    # National with a trunk 0: 020 7946 0958, (01632) 960 123, 07700-900123.
    (re.compile(_START + r"\(?0\d{1,4}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}" + _END), 10, 11),
)
_DIGIT = re.compile(r"\d")
# Every phone shape above holds a "+" or two runs of three digits at most one separator
# apart; texts with neither (most reviews) skip the three patterns.
_PHONE_HINT = re.compile(r"\d\d\d[\s.-]?\d\d\d")
# Every URL shape above holds one of these; the text is lowercased first.
_URL_HINT = re.compile(r"://|www\.|\.(?:com|org|net|edu|gov|info|biz|io|uk)\b")
# Whole words of lowercased text as the lexicon sees them: every lexicon term is ASCII
# letters and spaces, so a term can only match where its last word is one of these.
_WORD = re.compile(r"[a-z]+")
_TERM = re.compile(r"[a-z]+(?: [a-z]+)*")


@dataclass(frozen=True)
class SafetyFlags:
    """The safety categories found in one text and a score in [0, 1] (0: nothing found)."""

    categories: tuple[str, ...]
    score: float

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


def load_toxic_terms(path: Path = TOXIC_TERMS_FILE) -> tuple[str, ...]:
    """The lexicon's terms in file order; ``#`` comments and blank lines are skipped."""
    terms: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        term = line.strip()
        if not term or term.startswith("#"):
            continue
        if not _TERM.fullmatch(term):
            raise ValueError(
                f"{path}:{number}: a term is lowercase ASCII words separated by single spaces, got {term!r}"
            )
        if term in terms:
            raise ValueError(f"{path}:{number}: {term!r} is listed twice")
        terms.append(term)
    if not terms:
        raise ValueError(f"{path}: the toxic-language lexicon holds no terms")
    return tuple(terms)


@dataclass(frozen=True)
class _Lexicon:
    pattern: re.Pattern[str]
    last_words: frozenset[str]


@cache
def _lexicon() -> _Lexicon:
    terms = load_toxic_terms()
    # Longest first, so a phrase ("piece of shit") is one match, not its last word.
    alternatives = sorted((r"\s+".join(term.split()) for term in terms), key=len, reverse=True)
    log.debug("compiled %d toxic-language terms from %s", len(terms), TOXIC_TERMS_FILE)
    return _Lexicon(
        pattern=re.compile(r"\b(?:" + "|".join(alternatives) + r")\b"),
        last_words=frozenset(term.split()[-1] for term in terms),
    )


def _toxic_in(lowered: str) -> list[str]:
    lexicon = _lexicon()
    # The word check is cheap and rules out almost every text before the alternation runs.
    if lexicon.last_words.isdisjoint(_WORD.findall(lowered)):
        return []
    matches: list[str] = lexicon.pattern.findall(lowered)
    return matches


def _has_phone(text: str) -> bool:
    if "+" not in text and not _PHONE_HINT.search(text):
        return False
    for pattern, min_digits, max_digits in _PHONE_SHAPES:
        for match in pattern.finditer(text):
            if min_digits <= len(_DIGIT.findall(match.group())) <= max_digits:
                return True
    return False


def toxic_matches(text: str) -> list[str]:
    """The lexicon terms found in ``text`` as whole words, one entry per occurrence, as
    written in the lowercased text."""
    return _toxic_in(text.lower())


def scan_text(text: str) -> SafetyFlags:
    """Safety flags of one review text."""
    lowered = text.lower()
    categories: list[str] = []
    if "@" in text and _EMAIL.search(text):
        categories.append(EMAIL)
    if _has_phone(text):
        categories.append(PHONE)
    if _URL_HINT.search(lowered) and _URL.search(lowered):
        categories.append(URL)
    score = 1.0 if categories else 0.0
    toxic = len(_toxic_in(lowered))
    if toxic:
        categories.append(TOXIC)
        score = max(score, 1.0 - 0.5**toxic)
    return SafetyFlags(categories=tuple(categories), score=score)


# The batch prefilter: one RE2 pass over a whole batch (pyarrow.compute) finds the texts
# that hold any hint of a category; only those go through scan_text, the others have
# nothing to find. Each hint is looser than the check scan_text starts with, so no text
# scan_text would flag is skipped: case-insensitive instead of lowercased (RE2 folds the
# Kelvin sign to k as str.lower does), any digit (\p{Nd}, as Python's \d) and any one
# character between two runs of three, no word boundaries, and a lexicon term's last word
# anywhere (a whole term holds it).
_HINTS: tuple[str, ...] = (
    r"@",
    r"\+",
    r"(?s)\p{Nd}\p{Nd}\p{Nd}.?\p{Nd}\p{Nd}\p{Nd}",
    r"(?i)://|www\.|\.(?:com|org|net|edu|gov|info|biz|io|uk)",
)
_NOTHING = SafetyFlags(categories=(), score=0.0)


@cache
def _hint_pattern() -> str:
    last_words = sorted(_lexicon().last_words, key=len, reverse=True)
    return "|".join((*_HINTS, "(?i)(?:" + "|".join(last_words) + ")"))


def candidates(texts: Sequence[str]) -> list[bool]:
    """Which texts may carry a safety flag (a superset of those that do), found for the
    whole batch at once by Arrow's regular-expression kernel."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hits = pc.match_substring_regex(pa.array(texts, pa.string()), _hint_pattern())
    return [bool(hit) for hit in hits.to_pylist()]


def scan_texts(texts: Sequence[str]) -> list[SafetyFlags]:
    """Safety flags of many texts, in order: :func:`scan_text` of every text that the
    batch prefilter (:func:`candidates`) cannot rule out, no flags for the others."""
    flags = [scan_text(text) if hit else _NOTHING for text, hit in zip(texts, candidates(texts), strict=True)]
    log.info("scanned %d texts: %d flagged", len(flags), sum(f.flagged for f in flags))
    return flags


def scan_text_array(texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """:func:`scan_texts` of an Arrow column, as Arrow columns: each text's categories
    (list<string>) and its score (float32). Python sees only the prefilter's candidates."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    hits = pc.fill_null(pc.match_substring_regex(texts, _hint_pattern()), False)
    rows = np.flatnonzero(hits.to_numpy(zero_copy_only=False))
    flags = [scan_text(t) for t in texts.take(pa.array(rows, pa.int64())).to_pylist()]
    lengths = np.zeros(len(texts), np.int32)
    lengths[rows] = [len(f.categories) for f in flags]
    offsets = np.concatenate([np.zeros(1, np.int32), np.cumsum(lengths, dtype=np.int32)])
    values = pa.array([c for f in flags for c in f.categories], pa.string())
    scores = np.zeros(len(texts), np.float32)
    scores[rows] = [f.score for f in flags]
    log.info("scanned %d texts: %d flagged", len(texts), sum(f.flagged for f in flags))
    return pa.ListArray.from_arrays(pa.array(offsets), values), pa.array(scores, pa.float32())
