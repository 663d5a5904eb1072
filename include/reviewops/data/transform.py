"""Transform: clean the valid rows, drop repeated reviews, write one curated partition a week."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import clean_text
from reviewops.data.schema import CURATED_SCHEMA, QUARANTINE_SCHEMA
from reviewops.data.windows import Window
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import read_parquet_metadata, read_table, write_parquet
from reviewops.storage.paths import Layout, StoragePath, glob, to_uri
from reviewops.storage.publish import StagedFiles

log = logging.getLogger(__name__)

DUPLICATE_TEXT = "duplicate_text"


@dataclass(frozen=True)
class TransformParams:
    data_root: str
    window: Window


def curate_frame(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
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
    valid = read_table(validated.path).to_pandas(integer_object_nulls=True)
    curated, duplicates = curate_frame(valid)
    outputs: list[Artifact] = []
    rows_by_week: dict[str, int] = {}
    empty = CURATED_SCHEMA.empty_table()
    with StagedFiles(layout.root, "curated") as staged:
        for monday in params.window.weeks():
            part = curated[curated["week"] == monday]
            table = pa.Table.from_pandas(part, schema=CURATED_SCHEMA, preserve_index=False) if len(part) else empty
            target = layout.curated(monday.isoformat())
            path = write_parquet(table, staged.path(target))
            outputs.append(_published_as(path, target, ArtifactKind.CURATED, rows=table.num_rows))
            rows_by_week[monday.isoformat()] = table.num_rows
        dup_table = pa.Table.from_pandas(_as_quarantine(duplicates), schema=QUARANTINE_SCHEMA, preserve_index=False)
        dup_target = layout.quarantine(params.window.key).with_name("duplicates.parquet")
        dup_path = write_parquet(dup_table, staged.path(dup_target))
        outputs.append(_published_as(dup_path, dup_target, ArtifactKind.QUARANTINE))
    log.info(
        "curated %d rows into %d week partitions; %d repeated reviews set aside",
        len(curated),
        len(rows_by_week),
        len(duplicates),
    )
    result = StepResult(
        subject=params.window.key,
        outputs=tuple(outputs),
        metrics={
            "rows_in": len(valid),
            "rows_curated": len(curated),
            "rows_duplicate_text": len(duplicates),
            "weeks_written": len(rows_by_week),
            "weeks_with_reviews": sum(1 for n in rows_by_week.values() if n),
        },
    )
    return result, staged


def _published_as(staged: StoragePath, target: StoragePath, kind: str, rows: int | None = None) -> Artifact:
    """The artifact of a staged file, at the place it is published to."""
    return dataclasses.replace(Artifact.of_file(staged, kind, rows=rows), uri=to_uri(target))


def _as_quarantine(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the quarantine layout: every canonical value as the string it was."""
    out = frame.reindex(columns=[f.name for f in QUARANTINE_SCHEMA])
    for f in QUARANTINE_SCHEMA:
        if pa.types.is_string(f.type):
            out[f.name] = out[f.name].astype(object).map(lambda v: None if v is None or v != v else str(v))
    return out


def curated_weeks(data_root: str) -> dict[str, int]:
    """Week (Monday, ISO) -> number of curated reviews, for every curated partition."""
    weeks = {}
    for path in glob(Layout(data_root).curated_dir(), "week=*/reviews.parquet"):
        weeks[path.parent.name.removeprefix("week=")] = read_parquet_metadata(path).num_rows
    return weeks
