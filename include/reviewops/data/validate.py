"""Validate: every row read ends either valid or quarantined with a reason."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

if TYPE_CHECKING:  # pandas is for the frame API only
    import pandas as pd

from reviewops.config import EARLIEST_REVIEW_DATE
from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import (
    TextFacts,
    as_frame,
    by_distinct_value,
    check_texts,
    is_blank_array,
    monday_of_array,
    parse_count_array,
    parse_date_array,
    parse_label_array,
    prepare_check_texts,
    strip_all,
    take_rows,
)
from reviewops.data.schema import CANONICAL, CURATED_SCHEMA, QUARANTINE_SCHEMA, REQUIRED, SOURCE_FILE, SOURCE_ROW
from reviewops.data.sources import MALFORMED, WRONG_TYPE
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import atomic_path, parquet_file, release_memory, write_parquet, write_parquet_pieces
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
# Texts are read, cleaned, checked and written this many at a time.
SLICE_ROWS = 32_768


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


# Every check, in the order they apply: a row is quarantined for the first it fails,
# whatever order they are run in (the text's run a slice at a time, after the others).
_CHECKS = (
    "malformed",
    "wrong_type",
    *(f"missing:{field}" for field in REQUIRED),
    "bad_date",
    "future_date",
    "too_old_date",
    "unknown_label",
    "bad_count",
    "control",
    "empty",
    "too_long",
    "conflict",
    "exact",
)
_RANK = {name: rank for rank, name in enumerate(_CHECKS, start=1)}


class _Marks:
    """Which check each row fails first (0: none), over numpy so each mark is one pass."""

    def __init__(self, rows: int) -> None:
        self.first = np.zeros(rows, np.int16)
        self.checks: dict[int, _Check] = {}

    def mark(
        self,
        mask: pa.Array | pa.ChunkedArray | np.ndarray,
        check: str,
        reason: str,
        detail: Callable[[int], str],
        at: slice | np.ndarray = slice(None),
    ) -> None:
        """Mark the rows ``at`` (all rows, a slice of them, or row numbers) where ``mask`` holds."""
        rank = _RANK[check]
        self.checks[rank] = _Check(reason, detail)
        hit = mask if isinstance(mask, np.ndarray) else pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        first = self.first[at]
        self.first[at] = np.where(hit & ((first == 0) | (first > rank)), rank, first)

    def unmarked(self) -> np.ndarray:
        return np.flatnonzero(self.first == 0)

    def quarantined(self) -> tuple[np.ndarray, list[str], list[str]]:
        rows = np.flatnonzero(self.first)
        checks = [self.checks[k] for k in self.first[rows].tolist()]
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


class _Texts(Protocol):
    """Where the batch's texts are read from, a slice at a time or by row number."""

    def slices(self) -> Iterator[tuple[int, pa.Array]]: ...

    def take(self, rows: np.ndarray) -> pa.Array: ...


class _ColumnTexts:
    """The texts of a table in memory."""

    def __init__(self, text: pa.ChunkedArray) -> None:
        self.text = text

    def slices(self) -> Iterator[tuple[int, pa.Array]]:
        for start in range(0, len(self.text), SLICE_ROWS):
            yield start, self.text.slice(start, SLICE_ROWS).combine_chunks()

    def take(self, rows: np.ndarray) -> pa.Array:
        return take_rows(self.text, rows)


class _FileTexts:
    """The texts of a Parquet file, read a batch of rows at a time."""

    def __init__(self, source: pq.ParquetFile) -> None:
        self.source = source

    def slices(self) -> Iterator[tuple[int, pa.Array]]:
        start = 0
        for batch in self.source.iter_batches(batch_size=SLICE_ROWS, columns=["text"]):
            yield start, batch.column(0).cast(pa.string())
            start += batch.num_rows

    def take(self, rows: np.ndarray) -> pa.Array:
        meta = self.source.metadata
        bounds = np.cumsum([0, *(meta.row_group(i).num_rows for i in range(meta.num_row_groups))])
        groups = np.searchsorted(bounds, rows, side="right") - 1
        parts = []
        for group in np.unique(groups).tolist():
            text = self.source.read_row_group(group, columns=["text"]).column(0).cast(pa.string())
            parts.append(take_rows(text, rows[groups == group] - bounds[group]))
        return pa.concat_arrays(parts) if parts else pa.array([], pa.string())


def _ahead(slices: Iterator[tuple[int, pa.Array]], depth: int = 2) -> Iterator[tuple[int, pa.Array, TextFacts]]:
    """Each slice with its :class:`TextFacts`, worked out in ``depth`` threads ahead of
    the caller (the compiled kernel releases the GIL): at most ``depth`` slices are read and
    not yet handed over."""
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="validate") as pool:
        pending: deque[tuple[int, pa.Array, Future[TextFacts]]] = deque()
        for start, text in slices:
            pending.append((start, text, pool.submit(check_texts, text)))
            if len(pending) == depth:
                first, head, checks = pending.popleft()
                yield first, head, checks.result()
        while pending:
            first, head, checks = pending.popleft()
            yield first, head, checks.result()


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    found: np.ndarray = values.to_numpy(zero_copy_only=False)
    return found


class _Validation:
    """The checks of one batch. The fields but the text are checked whole when it is
    made; the texts are then cleaned and checked a slice at a time by :meth:`valid_slices`,
    which yields each slice's valid rows as soon as the slice is checked; after it,
    :meth:`quarantined` gives the other rows with their reasons.

    Only the rows whose id repeats need the cleaned texts of others (the duplicate
    checks): their texts are cleaned first, so each slice's verdicts are final when it
    is read, and the valid rows never wait for the whole batch."""

    def __init__(
        self,
        fields: pa.Table,
        texts: _Texts,
        max_text_chars: int,
        today: dt.date,
        earliest: dt.date,
    ) -> None:
        self.rows = fields.num_rows
        self.texts = texts
        self.max_text_chars = max_text_chars
        column = {name: _string_column(fields, name) for name in (*CANONICAL, MALFORMED, WRONG_TYPE) if name != "text"}
        self.column = column
        self.lengths = np.zeros(self.rows, np.int64)
        marks = self.marks = _Marks(self.rows)
        marks.mark(pc.is_valid(column[MALFORMED]), "malformed", MALFORMED_ROW, _value(column[MALFORMED]))
        marks.mark(pc.is_valid(column[WRONG_TYPE]), "wrong_type", BAD_TYPE, _value(column[WRONG_TYPE]))
        for field in REQUIRED:
            if field != "text":
                marks.mark(is_blank_array(column[field]), f"missing:{field}", MISSING_FIELD, _constant(field))

        dates = parse_date_array(column["review_date"])
        marks.mark(pc.is_null(dates), "bad_date", BAD_DATE, _value(column["review_date"]))
        marks.mark(pc.greater(dates, pa.scalar(today, pa.date32())), "future_date", FUTURE_DATE, _value(dates))
        too_old = f" < {earliest.isoformat()} (earliest_review_date)"
        marks.mark(
            pc.less(dates, pa.scalar(earliest, pa.date32())),
            "too_old_date",
            TOO_OLD_DATE,
            lambda r: f"{dates[r].as_py()}{too_old}",
        )
        labels = parse_label_array(column["label"])
        marks.mark(pc.is_null(labels), "unknown_label", UNKNOWN_LABEL, _value(column["label"]))
        counts, bad_counts = parse_count_array(column["useful_count"])
        marks.mark(bad_counts, "bad_count", BAD_TYPE, _constant("useful_count"))

        self.ids = strip_all(pc.fill_null(column["review_id"], ""))
        condition = strip_all(column["condition"])
        self.typed = pa.table(
            {
                "review_id": self.ids,
                "product": strip_all(column["product"]),
                "condition": pc.if_else(pc.equal(condition, ""), _NO_ROW, condition),
                "label": labels,
                "review_date": dates,
                "week": monday_of_array(dates),
                "useful_count": counts,
                SOURCE_FILE: _string_column(fields, SOURCE_FILE),
                SOURCE_ROW: fields.column(SOURCE_ROW).combine_chunks().cast(pa.int64()),
            }
        )
        self._check_repeated_ids()
        self.quarantined_texts: list[pa.Array] = []

    def _mark_texts(self, checks: TextFacts, at: slice | np.ndarray) -> None:
        marks, limit, lengths = self.marks, self.max_text_chars, self.lengths
        lengths[at] = checks.lengths
        marks.mark(checks.blank, "missing:text", MISSING_FIELD, _constant("text"), at)
        marks.mark(checks.control, "control", CONTROL_CHARACTERS, _constant("text"), at)
        marks.mark(checks.empty, "empty", EMPTY_TEXT, _constant("text"), at)
        too_long = checks.lengths > limit
        # (The details hold no reference to self: the marks would then keep the batch alive.)
        marks.mark(too_long, "too_long", TEXT_TOO_LONG, lambda r: f"{lengths[r]} > {limit} chars", at)

    def _check_repeated_ids(self) -> None:
        """The duplicate checks, over the rows whose id repeats among those that passed
        every check so far (their texts cleaned and checked here first)."""
        ids = self.ids
        candidates = self.marks.unmarked()
        codes = pc.dictionary_encode(ids.take(pa.array(candidates, pa.int64()))).indices.to_numpy(zero_copy_only=False)
        suspects = candidates[np.bincount(codes)[codes] > 1] if len(codes) else candidates
        conflict = exact = np.zeros(self.rows, bool)
        if len(suspects):
            checks = check_texts(self.texts.take(suspects))
            self._mark_texts(checks, suspects)
            column = self.column
            label_key = by_distinct_value(column["label"], lambda v: (v or "").strip().lower(), pa.string())

            def content(rows: pa.Array) -> tuple[pa.Array, ...]:
                at = pa.array(np.searchsorted(suspects, rows.to_numpy()), pa.int64())
                return (
                    pc.fill_null(column["product"].take(rows), ""),
                    checks.cleaned.take(at),
                    label_key.take(rows),
                    strip_all(pc.fill_null(column["review_date"].take(rows), "")),
                )

            live = suspects[self.marks.first[suspects] == 0]
            conflict, exact = _duplicates(ids, content, live, self.rows)
        self.marks.mark(conflict, "conflict", DUPLICATE_ID_CONFLICT, lambda r: f"review_id {ids[r]}")
        self.marks.mark(exact, "exact", EXACT_DUPLICATE, lambda r: f"review_id {ids[r]}")

    def valid_slices(self) -> Iterator[pa.Table]:
        """The valid rows (:data:`VALIDATED_SCHEMA`, text cleaned), a slice at a time."""
        for start, text, checks in _ahead(self.texts.slices()):
            at = slice(start, start + len(text))
            self._mark_texts(checks, at)
            ok = self.marks.first[at] == 0
            if not ok.all():
                self.quarantined_texts.append(text.filter(pa.array(~ok)))
            mask = pa.array(ok)
            typed = self.typed.slice(start, len(text)).filter(mask)
            columns = {**{name: typed.column(name) for name in typed.column_names}, "text": checks.cleaned.filter(mask)}
            yield pa.table({name: columns[name] for name in VALIDATED_SCHEMA.names}, schema=VALIDATED_SCHEMA)

    def quarantined(self) -> pa.Table:
        """The rows quarantined (:data:`QUARANTINE_SCHEMA`), every value as it arrived;
        after :meth:`valid_slices` has run."""
        rows, reasons, details = self.marks.quarantined()
        taken = pa.array(rows, pa.int64())
        texts = pa.concat_arrays(self.quarantined_texts) if self.quarantined_texts else pa.array([], pa.string())
        return pa.table(
            {
                "reason": pa.array(reasons, pa.string()),
                "detail": pa.array(details, pa.string()),
                SOURCE_FILE: self.typed.column(SOURCE_FILE).take(taken),
                SOURCE_ROW: self.typed.column(SOURCE_ROW).take(taken),
                **{name: texts if name == "text" else self.column[name].take(taken) for name in CANONICAL},
            },
            schema=QUARANTINE_SCHEMA,
        )


def validate_table(
    raw: pa.Table, max_text_chars: int, today: dt.date, earliest: dt.date = EARLIEST_REVIEW_DATE
) -> ValidationOutcome:
    """Split raw string rows into typed valid rows and quarantined rows with reasons.

    Each check is an Arrow kernel (or numpy) over the batch; each row is quarantined for
    the first check it fails, in the order of :data:`_CHECKS`. Text is cleaned once, for
    empty_text, text_too_long and the duplicate check, and the valid rows keep it cleaned
    (quarantined rows keep every value as it arrived). Python sees only the distinct
    dates, labels and counts, the few texts with an HTML entity it cannot decode exactly,
    and the quarantined rows' details.
    """
    text = raw.column("text").cast(pa.string()) if "text" in raw.column_names else None
    if text is None:
        text = pa.chunked_array([pa.nulls(raw.num_rows, pa.string())])
    fields = raw.drop_columns(["text"]) if "text" in raw.column_names else raw
    validation = _Validation(fields, _ColumnTexts(text), max_text_chars, today, earliest)
    pieces = list(validation.valid_slices())
    valid = pa.concat_tables(pieces) if pieces else VALIDATED_SCHEMA.empty_table()
    return ValidationOutcome(valid_table=valid, quarantined_table=validation.quarantined())


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
    _check_counts(rows_read, outcome.valid_table.num_rows, outcome.quarantined_table.num_rows)


def _check_counts(rows_read: int, valid: int, quarantined: int) -> None:
    if rows_read != valid + quarantined:
        raise AssertionError(f"validation lost rows: {rows_read} read, {valid} valid, {quarantined} quarantined")


def validate_reviews(params: ValidateParams, raw: Artifact) -> StepResult:
    """Validate a raw batch; write its valid rows and its quarantine file.

    The batch is read a slice of rows at a time (its fields but the text whole): each
    slice's valid rows are written, in a second thread, while the next is checked, so
    neither the batch nor its valid rows are ever whole in memory."""
    layout = Layout(params.data_root)
    today = params.today or dt.datetime.now(dt.UTC).date()
    rows_valid = 0

    def counted(slices: Iterator[pa.Table]) -> Iterator[pa.Table]:
        nonlocal rows_valid
        for table in slices:
            rows_valid += table.num_rows
            yield table

    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as preparing,
        parquet_file(raw.path) as source,
    ):
        # The text checks' kernel loads while the fields are read and checked.
        prepared = preparing.submit(prepare_check_texts)
        rows_read = source.metadata.num_rows
        fields = source.read(columns=[n for n in source.schema_arrow.names if n != "text"])
        texts: _Texts = (
            _FileTexts(source)
            if "text" in source.schema_arrow.names
            else _ColumnTexts(pa.chunked_array([pa.nulls(rows_read, pa.string())]))
        )
        validation = _Validation(fields, texts, params.max_text_chars, today, params.earliest)
        del fields  # the checks keep what they need of it
        prepared.result()
        valid_path = write_parquet_pieces(
            counted(validation.valid_slices()), VALIDATED_SCHEMA, layout.validated(params.batch_key)
        )
    outcome = ValidationOutcome(valid_table=VALIDATED_SCHEMA.empty_table(), quarantined_table=validation.quarantined())
    del validation
    release_memory()
    rows_quarantined = outcome.quarantined_table.num_rows
    _check_counts(rows_read, rows_valid, rows_quarantined)
    quarantine_path = write_quarantined(outcome, layout.quarantine(params.batch_key))
    if rows_quarantined:
        log.warning("quarantined %d of %d rows: %s", rows_quarantined, rows_read, outcome.reasons)
    return StepResult(
        subject=params.batch_key,
        outputs=(
            Artifact.of_file(valid_path, ArtifactKind.VALIDATED, rows=rows_valid),
            Artifact.of_file(quarantine_path, ArtifactKind.QUARANTINE),
        ),
        metrics={
            "rows_read": rows_read,
            "rows_valid": rows_valid,
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
