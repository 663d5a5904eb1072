"""Ingest: the rows of a source that belong to a window, kept exactly as read."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa

from reviewops.lineage import Artifact, StepResult
from reviewops.parsing import parse_dates
from reviewops.sources import list_source_files, read_source_file
from reviewops.storage import Layout, write_parquet
from reviewops.windows import Window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestParams:
    source: str
    data_root: str
    window: Window


def ingest_reviews(params: IngestParams) -> tuple[StepResult, list[Artifact]]:
    """Write the window's raw batch; return the result and the source files read.

    A row is in the batch when its date falls in the window, or when its date cannot
    be parsed: such a row belongs to no week, so every run quarantines it (with the
    reason) rather than letting it vanish from all of them.
    """
    layout = Layout(params.data_root)
    files = list_source_files(params.source)
    sources: list[Artifact] = []
    parts: list[pa.Table] = []
    rows_in_source = 0
    for path in files:
        table = read_source_file(path)
        rows_in_source += table.num_rows
        sources.append(Artifact.of_file(path, "source", rows=table.num_rows))
        dates = parse_dates(table.column("review_date").to_pylist())
        keep = [d is None or params.window.contains(d) for d in dates]
        parts.append(table.filter(pa.array(keep, pa.bool_())))
        log.info("read %s: %d rows, %d in window %s", path, table.num_rows, sum(keep), params.window.key)
    batch = pa.concat_tables(parts)
    raw = write_parquet(batch, layout.raw(params.window.key))
    result = StepResult(
        subject=params.window.key,
        outputs=(Artifact.of_file(raw, "raw"),),
        metrics={
            "files_read": len(files),
            "rows_in_source": rows_in_source,
            "rows_read": batch.num_rows,
            "window": params.window.as_dict(),
        },
    )
    return result, sources
