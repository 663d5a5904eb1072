"""Transform: drop repeated reviews among the valid rows, write one curated partition a week."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import as_frame, bytes_of, lower_all, not_ascii, take_rows, take_table_rows
from reviewops.data.schema import CURATED_SCHEMA, QUARANTINE_SCHEMA
from reviewops.data.windows import Window
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import (
    read_parquet_metadata,
    read_table,
    release_memory,
    write_parquet,
    write_parquet_pieces,
)
from reviewops.storage.paths import Layout, StoragePath, glob, to_uri
from reviewops.storage.publish import StagedFiles

log = logging.getLogger(__name__)

DUPLICATE_TEXT = "duplicate_text"
# Curated rows are taken from the validated batch and written this many at a time (one
# row group each), so no sorted copy of the whole batch is made.
ROW_GROUP_ROWS = 65_536
EPOCH = dt.date(1970, 1, 1)
# Bytes from each end of a text in its key, and odd 64-bit multipliers mixing the key's
# parts into one number.
_KEY_BYTES = 24
# For n = 0..8, a 64-bit word whose n low bytes are set.
_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(9)], np.uint64)
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)


@dataclass(frozen=True)
class TransformParams:
    data_root: str
    window: Window


@dataclass(frozen=True)
class Curation:
    """What transform does with a batch of valid rows (:data:`CURATED_SCHEMA`, text
    cleaned by validate): ``keep``, the rows curated, in review_date then review_id order
    (row numbers of the batch), and ``duplicates``, the repeats set aside
    (:data:`QUARANTINE_SCHEMA`)."""

    table: pa.Table
    keep: np.ndarray
    duplicates: pa.Table

    def curated(self) -> pa.Table:
        return self.rows(self.keep)

    def rows(self, rows: np.ndarray) -> pa.Table:
        """The batch's ``rows``, in that order (taken chunk by chunk: no combined copy of a column)."""
        return take_table_rows(self.table, rows)


def curate(valid: pa.Table) -> Curation:
    """Keep the earliest of reviews that repeat the same text for the same product under
    different ids (compared lowercased); order the rest by review_date then review_id."""
    table = valid.select(CURATED_SCHEMA.names).cast(CURATED_SCHEMA)
    # The texts' numbers (see _first_of_each_text) are worked out in a second thread while
    # Arrow sorts: both release the GIL.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="text-keys") as pool:
        keys = pool.submit(_row_keys, table)
        # Arrow's sort is stable and orders strings by code point, as Python's sort does.
        order = pc.sort_indices(table, [("review_date", "ascending"), ("review_id", "ascending")]).to_numpy()
        product, key = keys.result()
    first = _first_of_each_text(table, order, product, key)
    repeated = first != np.arange(len(order))
    ids = _array(table, "review_id")
    rows = order[repeated]
    duplicates = take_table_rows(table, rows)
    quarantine = {
        "reason": pa.array([DUPLICATE_TEXT] * duplicates.num_rows, pa.string()),
        "detail": pc.binary_join_element_wise(
            "same product and text as review_id ", ids.take(pa.array(order[first[repeated]], pa.int64())), ""
        ),
        **{name: _array(duplicates, name) for name in QUARANTINE_SCHEMA.names[2:]},
    }
    as_quarantine = pa.table(
        {f.name: quarantine[f.name].cast(f.type) for f in QUARANTINE_SCHEMA}, schema=QUARANTINE_SCHEMA
    )
    return Curation(table=table, keep=order[~repeated], duplicates=as_quarantine)


def curate_table(valid: pa.Table) -> tuple[pa.Table, pa.Table]:
    """:func:`curate` as tables: the curated rows in their order, and the repeats set aside."""
    curation = curate(valid)
    return curation.curated(), curation.duplicates


def _row_keys(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Each row's product (a code per lowercased product) and a number that rows with the
    same product and lowercased text share: see :func:`_first_of_each_text`."""
    product = pc.dictionary_encode(lower_all(_array(table, "product"))).indices.to_numpy(zero_copy_only=False)
    text = table.column("text")
    keys = [_text_key(chunk) for chunk in text.chunks]
    key = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    return product, (key ^ np.asarray(product, np.uint64)) * np.uint64(_MIX[0])


def _first_of_each_text(table: pa.Table, order: np.ndarray, product: np.ndarray, key: np.ndarray) -> np.ndarray:
    """For every position of ``order``, the first position holding the same product and
    text, both lowercased.

    Rows are first grouped by a short key that equal lowercased texts share (``key``, of
    the product, byte length, first and last 24 bytes, mixed into one number: see
    :func:`_row_keys`): only the rows whose number repeats have their whole texts
    lowercased and compared, so no lowercased copy of every text is made (two different
    keys mixing to one number only make more comparisons)."""
    key = key[order]
    # A row whose number no other row has is the first of its text; numpy's sort of
    # 64-bit numbers is fast enough that finding the numbers that repeat this way beats
    # np.unique's inverse and counts.
    first = np.arange(len(order))
    ascending = np.sort(key)
    candidates = np.flatnonzero(np.isin(key, ascending[1:][ascending[1:] == ascending[:-1]]))
    if len(candidates):
        text = table.column("text")
        whole = lower_all(take_rows(text, order[candidates]))
        inner = _first_rows(
            product[order[candidates]], pc.dictionary_encode(whole).indices.to_numpy(zero_copy_only=False)
        )
        first[candidates] = candidates[inner]
    return first


def _text_key(text: pa.Array) -> np.ndarray:
    """A number per text that equal lowercased texts share: its byte length and first and
    last 24 bytes, lowercased (ASCII by numpy; texts with other characters by Python's
    ``str.lower``, which may change a text's length: "İ"), mixed."""
    key, other = _byte_key(text), not_ascii(text).to_numpy(zero_copy_only=False)
    if other.any():
        lowered = pa.array([t.lower() for t in text.filter(pa.array(other)).to_pylist()], pa.string())
        key[other] = _byte_key(lowered)
    return key


def _byte_key(text: pa.Array) -> np.ndarray:
    """Byte length and the first and last 24 bytes (A-Z lowercased) of each text, mixed:
    read as 64-bit words straight from the column's bytes, the bytes outside a short text
    masked out."""
    data, offsets = bytes_of(text)
    starts, ends = offsets[:-1], offsets[1:]
    key: np.ndarray = (ends - starts).astype(np.uint64)
    if not len(data):
        return key
    pad = _KEY_BYTES
    padded = np.concatenate([np.zeros(pad, np.uint8), data, np.zeros(pad, np.uint8)])
    words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    for k, mix in zip(range(0, _KEY_BYTES, 8), _MIX, strict=False):
        inside = np.clip(ends - starts - k, 0, 8)  # bytes of the text in head word k
        head = words[starts + pad + k] & _LOW_BYTES[inside]
        outside = np.clip(starts - (ends - _KEY_BYTES + k), 0, 8)  # bytes before the text in tail word k
        tail = words[ends - _KEY_BYTES + k + pad] & ~_LOW_BYTES[outside]
        key = (key ^ _ascii_lower(head)) * np.uint64(mix)
        key = (key ^ _ascii_lower(tail)) * np.uint64(_MIX[-1])
    return key


def _ascii_lower(words: np.ndarray) -> np.ndarray:
    """A-Z lowercased in every byte of 64-bit words (the bytes of other characters kept)."""
    seven = words & np.uint64(0x7F7F7F7F7F7F7F7F)
    above_z = seven + np.uint64(0x2525252525252525)  # high bit set where the byte is above "Z"
    from_a = seven + np.uint64(0x3F3F3F3F3F3F3F3F)  # high bit set where it is "A" or above
    upper = (from_a ^ above_z) & ~words & np.uint64(0x8080808080808080)
    lowered: np.ndarray = words | (upper >> np.uint64(2))
    return lowered


def _first_rows(*codes: np.ndarray) -> np.ndarray:
    """For every row, the first row with the same combination of codes."""
    rows = len(codes[0])
    if not rows:
        return np.zeros(0, np.int64)
    _, firsts, inverse = np.unique(
        np.stack([np.asarray(c, np.int64) for c in codes], axis=1), axis=0, return_index=True, return_inverse=True
    )
    return firsts[inverse.reshape(rows)]


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
    curation = curate(read_table(validated.path))
    rows_in = curation.table.num_rows
    # Curated rows are in review_date order, so each week is one run of them.
    weeks = curation.table.column("week").cast(pa.int32()).to_numpy()[curation.keep]
    outputs: list[Artifact] = []
    rows_by_week: dict[str, int] = {}
    with StagedFiles(layout.root, "curated") as staged:
        for monday in params.window.weeks():
            day = (monday - EPOCH).days
            start, end = np.searchsorted(weeks, [day, day + 1])
            rows = curation.keep[start:end]
            target = layout.curated(monday.isoformat())
            pieces = (curation.rows(rows[i : i + ROW_GROUP_ROWS]) for i in range(0, len(rows), ROW_GROUP_ROWS))
            path = write_parquet_pieces(pieces, CURATED_SCHEMA, staged.path(target))
            outputs.append(_published_as(path, target, ArtifactKind.CURATED, rows=len(rows)))
            rows_by_week[monday.isoformat()] = len(rows)
        dup_target = layout.quarantine(params.window.key).with_name("duplicates.parquet")
        dup_path = write_parquet(curation.duplicates, staged.path(dup_target))
        outputs.append(_published_as(dup_path, dup_target, ArtifactKind.QUARANTINE))
    curated_rows = len(curation.keep)
    duplicates = curation.duplicates
    del curation
    release_memory()
    log.info(
        "curated %d rows into %d week partitions; %d repeated reviews set aside",
        curated_rows,
        len(rows_by_week),
        duplicates.num_rows,
    )
    result = StepResult(
        subject=params.window.key,
        outputs=tuple(outputs),
        metrics={
            "rows_in": rows_in,
            "rows_curated": curated_rows,
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
