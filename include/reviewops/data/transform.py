"""Transform: clean the valid rows, drop repeated reviews, write one curated partition a week."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import as_frame, clean_text_array, lower_all
from reviewops.data.schema import CURATED_SCHEMA, QUARANTINE_SCHEMA
from reviewops.data.windows import Window
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import read_parquet_metadata, read_table, write_parquet
from reviewops.storage.paths import Layout, StoragePath, glob, to_uri
from reviewops.storage.publish import StagedFiles

log = logging.getLogger(__name__)

DUPLICATE_TEXT = "duplicate_text"
# Texts are cleaned this many at a time, so the raw and the cleaned copies of a batch are
# never both whole in memory.
SLICE_ROWS = 65_536
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class TransformParams:
    data_root: str
    window: Window


def curate_table(valid: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Clean text; keep the earliest of reviews that repeat the same text for the same
    product under different ids. Returns the curated rows (:data:`CURATED_SCHEMA`), in
    review_date then review_id order, and the repeats set aside (:data:`QUARANTINE_SCHEMA`)."""
    table = valid.select(CURATED_SCHEMA.names).cast(CURATED_SCHEMA)
    del valid
    text = table.column("text")
    cleaned = [clean_text_array(text.slice(start, SLICE_ROWS)) for start in range(0, len(text), SLICE_ROWS)]
    del text  # with the caller's table gone, the raw texts are freed once cleaned
    table = table.set_column(
        table.schema.get_field_index("text"), "text", pa.chunked_array(cleaned or [pa.array([], pa.string())])
    )
    # Arrow's sort is stable and orders strings by code point, as Python's sort does.
    table = table.take(pc.sort_indices(table, [("review_date", "ascending"), ("review_id", "ascending")]))
    first_row = _first_of_each_text(table)
    repeated = first_row != np.arange(table.num_rows)
    ids = _array(table, "review_id")
    originals = ids.take(pa.array(first_row[repeated]))
    duplicates = table.filter(pa.array(repeated))
    quarantine = {
        "reason": pa.array([DUPLICATE_TEXT] * duplicates.num_rows, pa.string()),
        "detail": pc.binary_join_element_wise("same product and text as review_id ", originals, ""),
        **{name: _array(duplicates, name) for name in QUARANTINE_SCHEMA.names[2:]},
    }
    as_quarantine = pa.table(
        {f.name: quarantine[f.name].cast(f.type) for f in QUARANTINE_SCHEMA}, schema=QUARANTINE_SCHEMA
    )
    return table.filter(pa.array(~repeated)), as_quarantine


def _first_of_each_text(table: pa.Table) -> np.ndarray:
    """For every row, the first row with the same product and text, both lowercased.

    Rows are first grouped by a short key that equal lowercased texts share (byte length,
    first and last 24 characters): only the rows whose key repeats have their whole texts
    lowercased and compared, so no lowercased copy of every text is made."""
    product = pc.dictionary_encode(lower_all(_array(table, "product"))).indices.to_numpy(zero_copy_only=False)
    text = table.column("text")  # in its chunks: combined, it would be copied whole
    ascii_only = pc.string_is_ascii(text).combine_chunks()
    other = pc.invert(ascii_only)
    # str.lower may change a text's length ("İ"): those few texts are keyed by Python's lowercase.
    lowered = [t.lower() for t in text.filter(other).to_pylist()]
    length = pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.int64)
    length[other.to_numpy(zero_copy_only=False)] = [len(t.encode()) for t in lowered]
    head = pc.ascii_lower(pc.utf8_slice_codeunits(text, 0, 24)).combine_chunks()
    tail = pc.ascii_lower(pc.utf8_slice_codeunits(text, -24)).combine_chunks()
    if lowered:
        head = pc.replace_with_mask(head, other, pa.array([t[:24] for t in lowered], pa.string()))
        tail = pc.replace_with_mask(tail, other, pa.array([t[-24:] for t in lowered], pa.string()))
    codes = [product, length, *(pc.dictionary_encode(a).indices.to_numpy(zero_copy_only=False) for a in (head, tail))]
    first, count = _first_rows(*codes)
    candidates = np.flatnonzero(count > 1)
    if len(candidates):
        whole = lower_all(text.take(pa.array(candidates, pa.int64())).combine_chunks())
        inner, _ = _first_rows(product[candidates], pc.dictionary_encode(whole).indices.to_numpy(zero_copy_only=False))
        first[candidates] = candidates[inner]
    return first


def _first_rows(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every row, the first row with the same combination of codes, and how many
    rows share it."""
    rows = len(codes[0])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, firsts, inverse, counts = np.unique(
        np.stack([np.asarray(c, np.int64) for c in codes], axis=1),
        axis=0,
        return_index=True,
        return_inverse=True,
        return_counts=True,
    )
    inverse = inverse.reshape(rows)
    return firsts[inverse], counts[inverse]


def _array(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def curate_frame(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`curate_table` of a frame of valid rows (as ``validate_frame`` gives them)."""
    curated, duplicates = curate_table(pa.Table.from_pandas(valid, schema=CURATED_SCHEMA, preserve_index=False))
    return as_frame(curated), as_frame(duplicates)


def transform_reviews(params: TransformParams, validated: Artifact) -> StepResult:
    """Write ``curated/week=YYYY-MM-DD/`` for every week of the window (empty weeks too,
    so a week that had no reviews is visibly processed), replacing earlier versions: all
    of them at once, or none when the step fails (see :func:`stage_transform`)."""
    result, staged = stage_transform(params, validated)
    staged.publish()
    return result


def stage_transform(params: TransformParams, validated: Artifact) -> tuple[StepResult, StagedFiles]:
    """Write the window's week partitions and its duplicates file aside; nothing is
    visible until ``publish()`` moves them all into place. The result describes them
    at the places they are published to (same bytes, same sha256).

    A caller that records lineage publishes after its record is written, so the new
    partitions never stand without a record describing them; on a failure before
    that, ``discard()`` (a run killed in between leaves a staging folder the next
    publication deletes)."""
    layout = Layout(params.data_root)
    # integer_object_nulls: a count column with nulls stays integers (not float64), so a
    # set-aside repeat keeps "4" rather than "4.0" in the quarantine's string columns.
    curated, duplicates = curate_table(read_table(validated.path))
    rows_in = curated.num_rows + duplicates.num_rows
    # Curated rows are in review_date order, so each week is one slice of them.
    weeks = curated.column("week").cast(pa.int32()).to_numpy()
    outputs: list[Artifact] = []
    rows_by_week: dict[str, int] = {}
    with StagedFiles(layout.root, "curated") as staged:
        for monday in params.window.weeks():
            day = (monday - EPOCH).days
            start, end = np.searchsorted(weeks, [day, day + 1])
            table = curated.slice(start, end - start)
            target = layout.curated(monday.isoformat())
            path = write_parquet(table, staged.path(target))
            outputs.append(_published_as(path, target, ArtifactKind.CURATED, rows=table.num_rows))
            rows_by_week[monday.isoformat()] = table.num_rows
        dup_target = layout.quarantine(params.window.key).with_name("duplicates.parquet")
        dup_path = write_parquet(duplicates, staged.path(dup_target))
        outputs.append(_published_as(dup_path, dup_target, ArtifactKind.QUARANTINE))
    log.info(
        "curated %d rows into %d week partitions; %d repeated reviews set aside",
        curated.num_rows,
        len(rows_by_week),
        duplicates.num_rows,
    )
    result = StepResult(
        subject=params.window.key,
        outputs=tuple(outputs),
        metrics={
            "rows_in": rows_in,
            "rows_curated": curated.num_rows,
            "rows_duplicate_text": duplicates.num_rows,
            "weeks_written": len(rows_by_week),
            "weeks_with_reviews": sum(1 for n in rows_by_week.values() if n),
        },
    )
    return result, staged


def _published_as(staged: StoragePath, target: StoragePath, kind: str, rows: int | None = None) -> Artifact:
    """The artifact of a staged file, at the place it is published to."""
    return dataclasses.replace(Artifact.of_file(staged, kind, rows=rows), uri=to_uri(target))


def curated_weeks(data_root: str) -> dict[str, int]:
    """Week (Monday, ISO) -> number of curated reviews, for every curated partition."""
    weeks = {}
    for path in glob(Layout(data_root).curated_dir(), "week=*/reviews.parquet"):
        weeks[path.parent.name.removeprefix("week=")] = read_parquet_metadata(path).num_rows
    return weeks
