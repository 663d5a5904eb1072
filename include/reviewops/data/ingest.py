"""Ingest: the rows of a source that belong to a window, kept exactly as read."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import parse_dates
from reviewops.data.sources import RejectedFile, SourceFile, scan_source
from reviewops.data.windows import Window
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import fetch, sha256_file, size_of, write_parquet
from reviewops.storage.paths import Layout, StoragePath, to_uri
from reviewops.storage.publish import remove_tree, replace_dir, staging_dir

log = logging.getLogger(__name__)

ERROR_SUFFIX = ".error.txt"


@dataclass(frozen=True)
class IngestParams:
    source: str
    data_root: str
    window: Window


def rejected_files_dir(data_root: str | Path, batch_key: str) -> StoragePath:
    """Where the files of a batch's source that could not be read are kept, with their errors."""
    return Layout(data_root).rejected_files(batch_key)


def ingest_reviews(params: IngestParams) -> tuple[StepResult, list[Artifact]]:
    """Write the window's raw batch; return the result and the source files read.

    A row is in the batch when its date falls in the window, or when its date cannot
    be parsed: such a row belongs to no week, so every run quarantines it (with the
    reason) rather than letting it vanish from all of them. Rows the reader could not
    split into fields have no date either, so they travel the same way, with their
    text in the ``malformed`` column, and validate quarantines them as malformed_row.

    A file of a folder or glob source that cannot be read as a whole is copied, with
    its error beside it, under ``quarantine/<batch>/files/`` and listed in the metrics
    as ``files_rejected``; the other files are read. A single-file source that cannot
    be read, or a source none of whose files can, fails before anything is written.
    """
    layout = Layout(params.data_root)
    sources: list[Artifact] = []
    parts: list[pa.Table] = []
    rejected: list[RejectedFile] = []
    rows_in_source = 0
    for item in scan_source(params.source):
        if isinstance(item, RejectedFile):
            log.warning("file rejected, the others are read: %s", item.error)
            rejected.append(item)
            sources.append(_unread(item.path, ArtifactKind.REJECTED_SOURCE))
            continue
        rows_in_source += item.table.num_rows
        sources.append(Artifact.of_file(item.path, ArtifactKind.SOURCE, rows=item.table.num_rows))
        parts.append(_in_window(item, params.window))
    batch = pa.concat_tables(parts)
    copies = _keep_rejected(rejected_files_dir(params.data_root, params.window.key), rejected)
    raw = write_parquet(batch, layout.raw(params.window.key))
    result = StepResult(
        subject=params.window.key,
        outputs=(Artifact.of_file(raw, ArtifactKind.RAW), *[_unread(c, ArtifactKind.REJECTED_FILE) for c in copies]),
        metrics={
            "files_read": len(parts),
            "files_rejected": [r.as_dict() for r in rejected],
            "rows_in_source": rows_in_source,
            "rows_read": batch.num_rows,
            "window": params.window.as_dict(),
        },
    )
    return result, sources


def _in_window(item: SourceFile, window: Window) -> pa.Table:
    table = item.table
    dates = parse_dates(table.column("review_date").to_pylist())
    keep = [d is None or window.contains(d) for d in dates]
    log.info("read %s: %d rows, %d in window %s", item.path, table.num_rows, sum(keep), window.key)
    return table.filter(pa.array(keep, pa.bool_()))


def _unread(path: StoragePath, kind: str) -> Artifact:
    """A file that could not be read: described by its bytes alone (not as Parquet, even when so named)."""
    return Artifact(uri=to_uri(path), kind=kind, sha256=sha256_file(path), bytes=size_of(path))


def _keep_rejected(target: StoragePath, rejected: list[RejectedFile]) -> list[StoragePath]:
    """Replace ``target`` with copies of the rejected files and their errors; remove it
    when there are none (a re-run after the source was fixed leaves no stale copies)."""
    if not rejected:
        remove_tree(target)
        return []
    folders = [tuple(r.path.parent.parts) for r in rejected]
    common = 0
    while all(len(f) > common and f[common] == folders[0][common] for f in folders):
        common += 1
    staging = staging_dir(target.parent, target.name)
    copies: list[StoragePath] = []
    for item in rejected:
        relative = (*item.path.parent.parts[common:], item.path.name)
        copy = fetch(item.path, staging.joinpath(*relative))
        copy.with_name(copy.name + ERROR_SUFFIX).write_text(item.error + "\n", encoding="utf-8")
        copies.append(target.joinpath(*relative))
    replace_dir(staging, target)
    return copies
