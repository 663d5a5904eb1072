"""Validate: every row read ends either valid or quarantined with a reason."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from reviewops.config import EARLIEST_REVIEW_DATE
from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import (
    clean_text,
    has_control_characters,
    parse_count,
    parse_dates,
    parse_label,
    shows_nothing,
)
from reviewops.data.schema import CANONICAL, CURATED_SCHEMA, QUARANTINE_SCHEMA, REQUIRED, SOURCE_FILE, SOURCE_ROW
from reviewops.data.sources import MALFORMED, WRONG_TYPE
from reviewops.data.windows import monday_of
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import atomic_path, read_table, write_parquet
from reviewops.storage.paths import Layout, StoragePath

log = logging.getLogger(__name__)

# Reasons, in the order they are checked: a row is quarantined for the first that applies.
# bad_type is checked twice: for a list or object where a value belongs (as the reader
# found it), and later for a useful_count that is not a non-negative integer.
MALFORMED_ROW = "malformed_row"
MISSING_FIELD = "missing_field"
BAD_DATE = "bad_date"
FUTURE_DATE = "future_date"
TOO_OLD_DATE = "too_old_date"
UNKNOWN_LABEL = "unknown_label"
BAD_TYPE = "bad_type"
CONTROL_CHARACTERS = "control_characters"
EMPTY_TEXT = "empty_text"
TEXT_TOO_LONG = "text_too_long"
DUPLICATE_ID_CONFLICT = "duplicate_id_conflict"
EXACT_DUPLICATE = "exact_duplicate"

Marker = Callable[[pd.Series, str, "pd.Series | str"], None]

# Valid rows are typed like curated rows; transform only cleans text and drops repeats.
VALIDATED_SCHEMA = CURATED_SCHEMA


@dataclass(frozen=True)
class ValidateParams:
    data_root: str
    batch_key: str
    max_text_chars: int = 10_000
    today: dt.date | None = None
    earliest: dt.date = EARLIEST_REVIEW_DATE


@dataclass(frozen=True)
class ValidationOutcome:
    valid: pd.DataFrame
    quarantined: pd.DataFrame

    @property
    def reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(self.quarantined["reason"]).items()))


def validate_frame(
    raw: pd.DataFrame, max_text_chars: int, today: dt.date, earliest: dt.date = EARLIEST_REVIEW_DATE
) -> ValidationOutcome:
    """Split raw string rows into typed valid rows and quarantined rows with reasons."""
    frame = raw.reset_index(drop=True)
    # pandas reads Arrow string columns as the ``str`` dtype, whose missing value is NaN:
    # give the parsers None for a missing value (nulls come from JSONL, Parquet and
    # optional columns a file does not have). Raw batches written before the reader
    # reported malformed rows and wrong types have no such columns: nothing to report.
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

    counts = frame["useful_count"].map(_safe_count)
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
            "useful_count": counts.map(lambda c: None if c in (None, "bad") else c),
            SOURCE_FILE: frame[SOURCE_FILE],
            SOURCE_ROW: frame[SOURCE_ROW],
        }
    )[ok].reset_index(drop=True)
    quarantined = frame[~ok].drop(columns=[MALFORMED, WRONG_TYPE])
    quarantined.insert(0, "detail", detail[~ok].astype(str))
    quarantined.insert(0, "reason", reason[~ok])
    return ValidationOutcome(valid=valid, quarantined=quarantined.reset_index(drop=True))


def check_conservation(rows_read: int, outcome: ValidationOutcome) -> None:
    """Fail unless every row read ended valid or quarantined, exactly once."""
    valid, quarantined = len(outcome.valid), len(outcome.quarantined)
    if rows_read != valid + quarantined:
        raise AssertionError(f"validation lost rows: {rows_read} read, {valid} valid, {quarantined} quarantined")


def _safe_count(value: str | None) -> int | str | None:
    try:
        return parse_count(value)
    except ValueError:
        return "bad"


def _mark_duplicates(frame: pd.DataFrame, reason: pd.Series, mark: Marker) -> None:
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
    mark(conflict, DUPLICATE_ID_CONFLICT, "review_id " + ids)
    mark(exact, EXACT_DUPLICATE, "review_id " + ids)


def validate_reviews(params: ValidateParams, raw: Artifact) -> StepResult:
    """Validate a raw batch; write its valid rows and its quarantine file."""
    layout = Layout(params.data_root)
    frame = read_table(raw.path).to_pandas()
    today = params.today or dt.datetime.now(dt.UTC).date()
    outcome = validate_frame(frame, params.max_text_chars, today, params.earliest)
    rows_read = len(frame)
    check_conservation(rows_read, outcome)
    valid_path = write_parquet(
        pa.Table.from_pandas(outcome.valid, schema=VALIDATED_SCHEMA, preserve_index=False),
        layout.validated(params.batch_key),
    )
    quarantine_path = write_quarantined(outcome, layout.quarantine(params.batch_key))
    if len(outcome.quarantined):
        log.warning("quarantined %d of %d rows: %s", len(outcome.quarantined), rows_read, outcome.reasons)
    return StepResult(
        subject=params.batch_key,
        outputs=(
            Artifact.of_file(valid_path, ArtifactKind.VALIDATED),
            Artifact.of_file(quarantine_path, ArtifactKind.QUARANTINE),
        ),
        metrics={
            "rows_read": rows_read,
            "rows_valid": len(outcome.valid),
            "rows_quarantined": len(outcome.quarantined),
            "reasons": outcome.reasons,
        },
    )


def write_quarantined(outcome: ValidationOutcome, target: StoragePath) -> StoragePath:
    """The quarantined rows with their reasons as Parquet, or as CSV when ``target`` ends in .csv."""
    table = pa.Table.from_pandas(
        outcome.quarantined[QUARANTINE_SCHEMA.names], schema=QUARANTINE_SCHEMA, preserve_index=False
    )
    if target.suffix.lower() != ".csv":
        return write_parquet(table, target)
    with atomic_path(target) as tmp:
        pacsv.write_csv(table, tmp)
    return target


def validation_report(raw: pd.DataFrame, outcome: ValidationOutcome) -> dict[str, Any]:
    """Rows read, valid and quarantined with the reasons: in total, and per source file."""
    files = []
    for name in dict.fromkeys(raw[SOURCE_FILE]):
        quarantined = outcome.quarantined[outcome.quarantined[SOURCE_FILE] == name]
        files.append({"file": str(name), **_counts(int((raw[SOURCE_FILE] == name).sum()), quarantined)})
    return {**_counts(len(raw), outcome.quarantined), "files": files}


def _counts(rows_read: int, quarantined: pd.DataFrame) -> dict[str, Any]:
    return {
        "rows_read": rows_read,
        "rows_valid": rows_read - len(quarantined),
        "rows_quarantined": len(quarantined),
        "reasons": dict(sorted(Counter(str(r) for r in quarantined["reason"]).items())),
    }
