"""Validate: every row read ends either valid or quarantined with a reason."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

if TYPE_CHECKING:  # pandas is for the frame API only
    import pandas as pd

from reviewops.config import EARLIEST_REVIEW_DATE
from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import (
    as_frame,
    by_distinct_value,
    clean_text_array,
    has_control_characters_array,
    is_blank_array,
    monday_of_array,
    parse_count_array,
    parse_date_array,
    parse_label_array,
    shows_nothing_array,
    strip_all,
)
from reviewops.data.schema import CANONICAL, CURATED_SCHEMA, QUARANTINE_SCHEMA, REQUIRED, SOURCE_FILE, SOURCE_ROW
from reviewops.data.sources import MALFORMED, WRONG_TYPE
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

# Valid rows are typed like curated rows, their text cleaned; transform drops repeats and
# writes the weeks.
VALIDATED_SCHEMA = CURATED_SCHEMA

_NO_ROW = pa.scalar(None, pa.string())


@dataclass(frozen=True)
class ValidateParams:
    data_root: str
    batch_key: str
    max_text_chars: int = 10_000
    today: dt.date | None = None
    earliest: dt.date = EARLIEST_REVIEW_DATE


@dataclass(frozen=True)
class ValidationOutcome:
    """Valid rows (:data:`VALIDATED_SCHEMA`) and quarantined rows (:data:`QUARANTINE_SCHEMA`)
    as Arrow tables; ``valid`` and ``quarantined`` are the same rows as pandas frames."""

    valid_table: pa.Table
    quarantined_table: pa.Table

    @cached_property
    def valid(self) -> pd.DataFrame:
        return as_frame(self.valid_table)

    @cached_property
    def quarantined(self) -> pd.DataFrame:
        return as_frame(self.quarantined_table)

    @property
    def reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(self.quarantined_table.column("reason").to_pylist()).items()))


@dataclass(frozen=True)
class _Check:
    """One reason a row is quarantined for, and what its detail says (from the row's index)."""

    reason: str
    detail: Callable[[int], str]


class _Marks:
    """Which check each row failed first (0: none yet), over numpy so each mark is one pass."""

    def __init__(self, rows: int) -> None:
        self.first = np.zeros(rows, np.int16)
        self.checks: list[_Check] = []

    def mark(self, mask: pa.Array | np.ndarray, reason: str, detail: Callable[[int], str]) -> None:
        self.checks.append(_Check(reason, detail))
        hit = mask if isinstance(mask, np.ndarray) else pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        self.first[(self.first == 0) & hit] = len(self.checks)

    def unmarked(self) -> np.ndarray:
        return np.flatnonzero(self.first == 0)

    def quarantined(self) -> tuple[np.ndarray, list[str], list[str]]:
        rows = np.flatnonzero(self.first)
        checks = [self.checks[k - 1] for k in self.first[rows].tolist()]
        return rows, [c.reason for c in checks], [c.detail(int(r)) for c, r in zip(checks, rows, strict=True)]


def _string_column(raw: pa.Table, name: str) -> pa.Array:
    if name not in raw.column_names:
        return pa.nulls(raw.num_rows, pa.string())
    return raw.column(name).combine_chunks().cast(pa.string())


def _value(values: pa.Array, default: str = "") -> Callable[[int], str]:
    """The detail of a row: its value in ``values`` as a string (``default`` when null)."""
    return lambda row: str(v) if (v := values[row].as_py()) is not None else default


def _constant(detail: str) -> Callable[[int], str]:
    return lambda _: detail


def validate_table(
    raw: pa.Table, max_text_chars: int, today: dt.date, earliest: dt.date = EARLIEST_REVIEW_DATE
) -> ValidationOutcome:
    """Split raw string rows into typed valid rows and quarantined rows with reasons.

    Each check is an Arrow kernel over the whole batch; each row is quarantined for the
    first check it fails, in the order below. Text is cleaned once, for empty_text,
    text_too_long and the duplicate check, and the valid rows keep it cleaned (quarantined
    rows keep every value as it arrived). Python sees only the distinct dates, labels and
    counts, the few texts with an HTML entity it cannot decode exactly, and the
    quarantined rows' details.
    """
    column = {name: _string_column(raw, name) for name in (*CANONICAL, MALFORMED, WRONG_TYPE) if name != "text"}
    # The texts stay in the batch's chunks: combining them would copy the largest column.
    column["text"] = raw.column("text").cast(pa.string()) if "text" in raw.column_names else _string_column(raw, "text")
    marks = _Marks(raw.num_rows)
    marks.mark(pc.is_valid(column[MALFORMED]), MALFORMED_ROW, _value(column[MALFORMED]))
    marks.mark(pc.is_valid(column[WRONG_TYPE]), BAD_TYPE, _value(column[WRONG_TYPE]))
    for field in REQUIRED:
        marks.mark(is_blank_array(column[field]), MISSING_FIELD, _constant(field))

    dates = parse_date_array(column["review_date"])
    marks.mark(pc.is_null(dates), BAD_DATE, _value(column["review_date"]))
    marks.mark(pc.greater(dates, pa.scalar(today, pa.date32())), FUTURE_DATE, _value(dates))
    too_old = f" < {earliest.isoformat()} (earliest_review_date)"
    marks.mark(pc.less(dates, pa.scalar(earliest, pa.date32())), TOO_OLD_DATE, lambda r: f"{dates[r].as_py()}{too_old}")

    labels = parse_label_array(column["label"])
    marks.mark(pc.is_null(labels), UNKNOWN_LABEL, _value(column["label"]))
    counts, bad_counts = parse_count_array(column["useful_count"])
    marks.mark(bad_counts, BAD_TYPE, _constant("useful_count"))

    text = column["text"]
    cleaned, control, empty, lengths = _text_checks(text)
    marks.mark(control, CONTROL_CHARACTERS, _constant("text"))
    marks.mark(empty, EMPTY_TEXT, _constant("text"))
    marks.mark(lengths > max_text_chars, TEXT_TOO_LONG, lambda r: f"{lengths[r]} > {max_text_chars} chars")

    ids = strip_all(pc.fill_null(column["review_id"], ""))
    label_key = by_distinct_value(column["label"], lambda v: (v or "").strip().lower(), pa.string())

    def content(rows: pa.Array) -> tuple[pa.Array, ...]:
        return (
            pc.fill_null(column["product"].take(rows), ""),
            cleaned.take(rows),
            label_key.take(rows),
            strip_all(pc.fill_null(column["review_date"].take(rows), "")),
        )

    conflict, exact = _duplicates(ids, content, marks.unmarked(), raw.num_rows)
    marks.mark(conflict, DUPLICATE_ID_CONFLICT, lambda r: f"review_id {ids[r]}")
    marks.mark(exact, EXACT_DUPLICATE, lambda r: f"review_id {ids[r]}")

    ok = pa.array(marks.unmarked())
    every = len(ok) == raw.num_rows  # the usual batch: its columns are kept as they are, not copied

    def keep(values: pa.Array) -> pa.Array:
        return values if every else values.take(ok)

    condition = strip_all(column["condition"])
    valid = pa.table(
        {
            "review_id": keep(ids),
            "product": keep(strip_all(column["product"])),
            "condition": keep(pc.if_else(pc.equal(condition, ""), _NO_ROW, condition)),
            "text": keep(cleaned),
            "label": keep(labels),
            "review_date": keep(dates),
            "week": monday_of_array(keep(dates)),
            "useful_count": keep(counts),
            SOURCE_FILE: keep(_string_column(raw, SOURCE_FILE)),
            SOURCE_ROW: keep(raw.column(SOURCE_ROW).combine_chunks().cast(pa.int64())),
        },
        schema=VALIDATED_SCHEMA,
    )
    rows, reasons, details = marks.quarantined()
    taken = pa.array(rows, pa.int64())
    quarantined = pa.table(
        {
            "reason": pa.array(reasons, pa.string()),
            "detail": pa.array(details, pa.string()),
            SOURCE_FILE: _string_column(raw, SOURCE_FILE).take(taken),
            SOURCE_ROW: raw.column(SOURCE_ROW).combine_chunks().cast(pa.int64()).take(taken),
            **{name: column[name].take(taken) for name in CANONICAL},
        },
        schema=QUARANTINE_SCHEMA,
    )
    return ValidationOutcome(valid_table=valid, quarantined_table=quarantined)


def _text_checks(
    text: pa.Array | pa.ChunkedArray, slice_rows: int = 65_536
) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray, np.ndarray]:
    """Every text cleaned (the valid rows keep the cleaned text: it is cleaned once), and
    whether it holds control characters, shows nothing once cleaned, and its cleaned
    length; a slice at a time, so each step's temporaries stay small."""
    cleaned, control, empty, lengths = [], [], [], []
    for start in range(0, len(text), slice_rows):
        part = text.slice(start, slice_rows)
        cleaned.append(clean_text_array(part))
        control.append(has_control_characters_array(part).to_numpy(zero_copy_only=False))
        empty.append(shows_nothing_array(cleaned[-1]).to_numpy(zero_copy_only=False))
        lengths.append(pc.utf8_length(cleaned[-1]).to_numpy(zero_copy_only=False))
    if not cleaned:
        return pa.chunked_array([], pa.string()), np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int32)
    return pa.chunked_array(cleaned), np.concatenate(control), np.concatenate(empty), np.concatenate(lengths)


def _duplicates(
    ids: pa.Array, content: Callable[[pa.Array], tuple[pa.Array, ...]], live: np.ndarray, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Among the ``live`` rows (not quarantined yet): the same id with different content
    marks all its copies (conflict); the same id and content marks all but the first
    (exact). Content (``content`` of some rows) is compared by group_by, only for the rows
    whose id repeats."""
    conflict = np.zeros(rows, bool)
    exact = np.zeros(rows, bool)
    codes = pc.dictionary_encode(ids.take(pa.array(live, pa.int64()))).indices.to_numpy(zero_copy_only=False)
    copies = np.bincount(codes)[codes] > 1 if len(codes) else np.zeros(0, bool)
    if not copies.any():
        return conflict, exact
    repeated = live[copies]
    values = content(pa.array(repeated, pa.int64()))
    keys = pa.table({"id": pa.array(codes[copies]), **{f"c{i}": c for i, c in enumerate(values)}})
    distinct = keys.group_by(keys.column_names).aggregate([]).column("id").to_numpy()
    contents = np.bincount(distinct, minlength=int(codes.max()) + 1)[codes[copies]]
    first = np.zeros(len(repeated), bool)
    first[np.unique(codes[copies], return_index=True)[1]] = True
    conflict[repeated] = contents > 1
    exact[repeated] = (contents == 1) & ~first
    return conflict, exact


def validate_frame(
    raw: pd.DataFrame, max_text_chars: int, today: dt.date, earliest: dt.date = EARLIEST_REVIEW_DATE
) -> ValidationOutcome:
    """:func:`validate_table` of a frame of string columns (as the readers give them)."""
    columns = {
        name: pa.array(raw[name].astype(object), pa.string(), from_pandas=True)
        for name in (*CANONICAL, MALFORMED, WRONG_TYPE, SOURCE_FILE)
        if name in raw
    }
    columns[SOURCE_ROW] = pa.array(raw[SOURCE_ROW], pa.int64())
    return validate_table(pa.table(columns), max_text_chars, today, earliest)


def check_conservation(rows_read: int, outcome: ValidationOutcome) -> None:
    """Fail unless every row read ended valid or quarantined, exactly once."""
    valid, quarantined = outcome.valid_table.num_rows, outcome.quarantined_table.num_rows
    if rows_read != valid + quarantined:
        raise AssertionError(f"validation lost rows: {rows_read} read, {valid} valid, {quarantined} quarantined")


def validate_reviews(params: ValidateParams, raw: Artifact) -> StepResult:
    """Validate a raw batch; write its valid rows and its quarantine file."""
    layout = Layout(params.data_root)
    table = read_table(raw.path)
    today = params.today or dt.datetime.now(dt.UTC).date()
    outcome = validate_table(table, params.max_text_chars, today, params.earliest)
    rows_read = table.num_rows
    del table  # the raw batch is not needed for the writes
    check_conservation(rows_read, outcome)
    valid_path = write_parquet(outcome.valid_table, layout.validated(params.batch_key))
    quarantine_path = write_quarantined(outcome, layout.quarantine(params.batch_key))
    rows_quarantined = outcome.quarantined_table.num_rows
    if rows_quarantined:
        log.warning("quarantined %d of %d rows: %s", rows_quarantined, rows_read, outcome.reasons)
    return StepResult(
        subject=params.batch_key,
        outputs=(
            Artifact.of_file(valid_path, ArtifactKind.VALIDATED),
            Artifact.of_file(quarantine_path, ArtifactKind.QUARANTINE),
        ),
        metrics={
            "rows_read": rows_read,
            "rows_valid": outcome.valid_table.num_rows,
            "rows_quarantined": rows_quarantined,
            "reasons": outcome.reasons,
        },
    )


def write_quarantined(outcome: ValidationOutcome, target: StoragePath) -> StoragePath:
    """The quarantined rows with their reasons as Parquet, or as CSV when ``target`` ends in .csv."""
    table = outcome.quarantined_table
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
