"""The row-at-a-time validate and curate, kept as the oracle of the Arrow ones.

This is the implementation ``validate_frame`` and ``curate_frame`` had before they were
rewritten on ``pyarrow.compute`` kernels (issue #12), unchanged but for its names: every
value goes through the per-value parsers of ``reviewops.data.parsing``, which remain the
specification. ``test_oracle.py`` asserts that the Arrow code gives the same valid rows,
the same quarantined rows and the same reasons on generated messy input.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from reviewops.config import EARLIEST_REVIEW_DATE
from reviewops.data.parsing import (
    clean_text,
    has_control_characters,
    parse_count,
    parse_dates,
    parse_label,
    shows_nothing,
)
from reviewops.data.schema import CANONICAL, QUARANTINE_SCHEMA, REQUIRED, SOURCE_FILE, SOURCE_ROW
from reviewops.data.sources import MALFORMED, WRONG_TYPE
from reviewops.data.transform import DUPLICATE_TEXT
from reviewops.data.validate import (
    BAD_DATE,
    BAD_TYPE,
    CONTROL_CHARACTERS,
    DUPLICATE_ID_CONFLICT,
    EMPTY_TEXT,
    EXACT_DUPLICATE,
    FUTURE_DATE,
    MALFORMED_ROW,
    MISSING_FIELD,
    TEXT_TOO_LONG,
    TOO_OLD_DATE,
    UNKNOWN_LABEL,
)
from reviewops.data.windows import monday_of


@dataclass(frozen=True)
class ValidationOutcome:
    valid: pd.DataFrame
    quarantined: pd.DataFrame

    @property
    def reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(self.quarantined["reason"]).items()))


def validate_rowwise(
    raw: pd.DataFrame, max_text_chars: int, today: dt.date, earliest: dt.date = EARLIEST_REVIEW_DATE
) -> ValidationOutcome:
    """Split raw string rows into typed valid rows and quarantined rows with reasons."""
    frame = raw.reset_index(drop=True)
    for name in (*CANONICAL, MALFORMED, WRONG_TYPE):
        column = frame[name].astype(object) if name in frame else pd.Series([None] * len(frame), dtype=object)
        frame[name] = column.where(column.notna(), None)
    reason = pd.Series([None] * len(frame), dtype=object)
    detail = pd.Series([""] * len(frame), dtype=object)

    def mark(mask: pd.Series, why: str, what: pd.Series | str = "") -> None:
        hit = mask & reason.isna()
        reason[hit] = why
        detail[hit] = what[hit] if isinstance(what, pd.Series) else what

    mark(frame[MALFORMED].notna(), MALFORMED_ROW, frame[MALFORMED])
    mark(frame[WRONG_TYPE].notna(), BAD_TYPE, frame[WRONG_TYPE])
    for field in REQUIRED:
        values = frame[field]
        mark(values.isna() | (values.fillna("").str.strip() == ""), MISSING_FIELD, field)

    dates = pd.Series(parse_dates(frame["review_date"].tolist()), dtype=object)
    mark(dates.isna(), BAD_DATE, frame["review_date"].fillna("").astype(str))
    mark(dates.map(lambda d: d is not None and d > today), FUTURE_DATE, dates.astype(str))
    too_old = dates.map(lambda d: d is not None and d < earliest)
    mark(too_old, TOO_OLD_DATE, dates.astype(str) + f" < {earliest.isoformat()} (earliest_review_date)")

    labels = frame["label"].map(parse_label)
    mark(labels.isna(), UNKNOWN_LABEL, frame["label"].fillna("").astype(str))

    # As objects: Series.map infers float64 when the counts are all numbers or null, and a
    # count above 2**53 then loses its last digits.
    counts = pd.Series([_safe_count(v) for v in frame["useful_count"]], index=frame.index, dtype=object)
    mark(counts.map(lambda c: c == "bad"), BAD_TYPE, "useful_count")

    text = frame["text"].fillna("")
    mark(text.map(has_control_characters), CONTROL_CHARACTERS, "text")
    cleaned = text.map(clean_text)
    mark(cleaned.map(shows_nothing), EMPTY_TEXT, "text")
    lengths = cleaned.str.len()
    mark(lengths > max_text_chars, TEXT_TOO_LONG, lengths.astype(str) + f" > {max_text_chars} chars")

    _mark_duplicates(frame, reason, mark)

    ok = reason.isna()
    valid = pd.DataFrame(
        {
            "review_id": frame["review_id"].str.strip(),
            "product": frame["product"].str.strip(),
            "condition": frame["condition"].map(lambda v: v.strip() if isinstance(v, str) and v.strip() else None),
            "text": frame["text"],
            "label": labels,
            "review_date": dates,
            "week": dates.map(lambda d: monday_of(d) if d is not None else None),
            # Built as objects, like ``counts`` (the two changes here).
            "useful_count": pd.Series([None if c in (None, "bad") else c for c in counts], dtype=object),
            SOURCE_FILE: frame[SOURCE_FILE],
            SOURCE_ROW: frame[SOURCE_ROW],
        }
    )[ok].reset_index(drop=True)
    quarantined = frame[~ok].drop(columns=[MALFORMED, WRONG_TYPE])
    quarantined.insert(0, "detail", detail[~ok].astype(str))
    quarantined.insert(0, "reason", reason[~ok])
    return ValidationOutcome(valid=valid, quarantined=quarantined.reset_index(drop=True))


def _safe_count(value: str | None) -> int | str | None:
    try:
        return parse_count(value)
    except ValueError:
        return "bad"


def _mark_duplicates(frame: pd.DataFrame, reason: pd.Series, mark: object) -> None:
    """Same id with different content: all copies out. Same id and content: keep the first."""
    candidates = reason.isna()
    ids = frame["review_id"].fillna("").str.strip()
    content = (
        frame["product"].fillna("")
        + "\x1f"
        + frame["text"].fillna("").map(clean_text)
        + "\x1f"
        + frame["label"].fillna("").str.strip().str.lower()
        + "\x1f"
        + frame["review_date"].fillna("").str.strip()
    )
    live = pd.DataFrame({"id": ids[candidates], "content": content[candidates]})
    distinct = live.groupby("id")["content"].transform("nunique")
    conflict = pd.Series(False, index=frame.index)
    conflict[live.index] = distinct > 1
    exact = pd.Series(False, index=frame.index)
    exact[live.index] = (distinct == 1) & live.duplicated(subset=["id"], keep="first")
    mark(conflict, DUPLICATE_ID_CONFLICT, "review_id " + ids)  # type: ignore[operator]
    mark(exact, EXACT_DUPLICATE, "review_id " + ids)  # type: ignore[operator]


def curate_rowwise(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean text; keep the earliest of reviews that repeat the same text for the same
    product under different ids. Returns (curated, duplicates)."""
    frame = valid.copy()
    frame["text"] = frame["text"].map(clean_text)
    frame = frame.sort_values(["review_date", "review_id"], kind="stable").reset_index(drop=True)
    key = frame["product"].str.lower() + "\x1f" + frame["text"].str.lower()
    repeated = key.duplicated(keep="first")
    first_id = frame.groupby(key)["review_id"].transform("first")
    duplicates = frame[repeated].copy()
    duplicates["reason"] = DUPLICATE_TEXT
    duplicates["detail"] = "same product and text as review_id " + first_id[repeated]
    return frame[~repeated].reset_index(drop=True), duplicates.reset_index(drop=True)


def as_quarantine(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the quarantine layout: every canonical value as the string it was."""
    out = frame.reindex(columns=[f.name for f in QUARANTINE_SCHEMA])
    for f in QUARANTINE_SCHEMA:
        if pa.types.is_string(f.type):
            out[f.name] = out[f.name].astype(object).map(lambda v: None if v is None or v != v else str(v))
    return out
