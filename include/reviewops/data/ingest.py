"""Ingest: the rows of a source that belong to a window, kept exactly as read."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from reviewops.config import EARLIEST_REVIEW_DATE
from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import parse_date_array
from reviewops.data.sources import PendingCheck, RejectedFile, SourceFile, scan_source
from reviewops.data.windows import PlausibleDates, Window
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import (
    atomic_path,
    copy_aside,
    release_memory,
    sha256_file,
    size_of,
    write_parquet,
    write_text,
)
from reviewops.storage.paths import Layout, StoragePath, to_uri
from reviewops.storage.publish import remove_tree, replace_dir, staging_dir

log = logging.getLogger(__name__)

ERROR_SUFFIX = ".error.txt"
ROW_GROUP_ROWS = 65_536


@dataclass(frozen=True)
class IngestParams:
    """``earliest`` and ``today`` bound the plausible review dates (``today``: the UTC
    day when the step runs, unless given)."""

    source: str
    data_root: str
    window: Window
    earliest: dt.date = EARLIEST_REVIEW_DATE
    today: dt.date | None = None


def rejected_files_dir(data_root: str | Path, batch_key: str) -> StoragePath:
    """Where the files of a batch's source that could not be read are kept, with their errors."""
    return Layout(data_root).rejected_files(batch_key)


def ingest_reviews(params: IngestParams) -> tuple[StepResult, list[Artifact]]:
    """Write the window's raw batch; return the result and the source files read.

    A row is in the batch when its date falls in the window, or when it belongs to no
    week: its date cannot be parsed, or it is not plausible (in the future, or before
    ``earliest``). Every run then quarantines such a row with its reason rather than
    letting it vanish from all of them. Rows the reader could not split into fields
    have no date either, so they travel the same way, with their text in the
    ``malformed`` column, and validate quarantines them as malformed_row. The window
    itself is cut to the plausible dates: no week outside them is written.

    A file of a folder or glob source that cannot be read as a whole is copied, with
    its error beside it, under ``quarantine/<batch>/files/`` (with its own permission
    bits, never wider) and listed in the metrics as ``files_rejected``; the other files
    are read. Its content reaches no log, metric or lineage record: its name, size and
    sha256 do. A symbolic link out of the source folder is listed, not read or copied.
    A single-file source that cannot be read, or a source none of whose files can,
    fails before anything is published.

    A CSV/TSV file read on the fast path (see :mod:`reviewops.data.sources`) is written
    while the pass that checks its reading runs on another core; the raw batch is
    published only once every such check has confirmed its reading. When one overrules
    it, the written batch is discarded and the source read again, that file by the exact
    reader, and written again.
    """
    layout = Layout(params.data_root)
    plausible = PlausibleDates(params.earliest, params.today or dt.datetime.now(dt.UTC).date())
    window = plausible.limit(params.window)
    if window != params.window:
        log.warning(
            "window %s cut to %s: review dates run from %s to today", params.window.key, window.key, params.earliest
        )
    read = _read_window(params.source, window, plausible, defer_checks=True)
    raw = layout.raw(window.key)
    with _published(raw) as staged:
        # In row groups, so validate holds one group's texts at a time.
        write_parquet(read.batch, staged, row_group_rows=ROW_GROUP_ROWS)
        overruled = read.overruled()  # waits for the checks, which ran while the batch was written
        if overruled:
            log.info("read again, by the exact reader: %s", ", ".join(map(str, overruled)))
            del read
            read = _read_window(params.source, window, plausible, exact=overruled)
            write_parquet(read.batch, staged, row_group_rows=ROW_GROUP_ROWS)
        copies = _keep_rejected(rejected_files_dir(params.data_root, window.key), read.rejected)
    result = StepResult(
        subject=window.key,
        outputs=(Artifact.of_file(raw, ArtifactKind.RAW), *[_unread(c, ArtifactKind.REJECTED_FILE) for c in copies]),
        metrics={
            "files_read": len(read.accepted),
            "files_rejected": [r.as_dict() for r in read.rejected],
            "rows_in_source": read.rows_in_source,
            "rows_read": read.batch.num_rows,
            "window": window.as_dict(),
        },
    )
    sources = read.inputs()
    del read
    release_memory()
    return result, sources


@contextmanager
def _published(target: StoragePath) -> Iterator[Path]:
    """A temporary path that becomes ``target`` when the block ends (:func:`atomic_path`).
    When the block fails, the temporary is deleted, and so are the folders made for it: a
    source found unreadable only after its batch was written leaves nothing behind."""
    made = [] if not isinstance(target, Path) else [p for p in target.parents if not p.exists()]
    try:
        with atomic_path(target) as staged:
            yield staged
    except BaseException:
        for folder in made:  # the deepest first; rmdir removes a folder only when empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


@dataclass(frozen=True)
class _FileRead:
    """A file of the source, read: its rows (its table is let go once cut to the window),
    and its sha256 when its reading gave it, or the check still deciding its reading."""

    path: StoragePath
    rows: int
    sha256: str | None
    check: PendingCheck | None


@dataclass(frozen=True)
class _Read:
    """The window's rows of every readable file of a source, and what was read, in file order."""

    batch: pa.Table
    files: list[_FileRead | RejectedFile]

    @property
    def accepted(self) -> list[_FileRead]:
        return [f for f in self.files if isinstance(f, _FileRead)]

    @property
    def rejected(self) -> list[RejectedFile]:
        return [f for f in self.files if isinstance(f, RejectedFile)]

    @property
    def rows_in_source(self) -> int:
        return sum(f.rows for f in self.accepted)

    def overruled(self) -> list[StoragePath]:
        """The files whose fast reading their check overruled; waits for the checks."""
        return [f.path for f in self.accepted if f.check and f.check.sha256 is None]

    def inputs(self) -> list[Artifact]:
        """The files read, and the rejected ones that can be described, as inputs (once
        no check overruled a reading)."""
        inputs: list[Artifact] = []
        for item in self.files:
            if isinstance(item, RejectedFile):
                inputs += _described(item)
                continue
            sha256 = item.check.sha256 if item.check else item.sha256
            inputs.append(Artifact.of_file(item.path, ArtifactKind.SOURCE, rows=item.rows, sha256=sha256))
        return inputs


def _read_window(
    source: str,
    window: Window,
    plausible: PlausibleDates,
    defer_checks: bool = False,
    exact: Collection[StoragePath] = (),
) -> _Read:
    files: list[_FileRead | RejectedFile] = []
    parts: list[pa.Table] = []
    for item in scan_source(source, defer_checks=defer_checks, exact=exact):
        if isinstance(item, RejectedFile):
            log.warning("file rejected, the others are read: %s", item.error)
            files.append(item)
            continue
        files.append(_FileRead(item.path, item.table.num_rows, item.sha256, item.check))
        parts.append(_in_window(item, window, plausible))
    return _Read(pa.concat_tables(parts), files)


def _in_window(item: SourceFile, window: Window, plausible: PlausibleDates) -> pa.Table:
    table = item.table
    days = parse_date_array(table.column("review_date").combine_chunks())
    in_window = pc.and_(
        pc.greater_equal(days, pa.scalar(window.start, pa.date32())),
        pc.less(days, pa.scalar(window.end, pa.date32())),
    )
    plausible_day = pc.and_(
        pc.greater_equal(days, pa.scalar(plausible.earliest, pa.date32())),
        pc.less_equal(days, pa.scalar(plausible.today, pa.date32())),
    )
    keep = pc.fill_null(pc.or_(in_window, pc.invert(plausible_day)), True)  # no date: kept for validate
    kept = pc.sum(keep).as_py() or 0
    log.info("read %s: %d rows, %d in window %s", item.path, table.num_rows, kept, window.key)
    return table if kept == table.num_rows else table.filter(keep)


def _described(item: RejectedFile) -> list[Artifact]:
    """The rejected source file as an input, when it may be read and can be."""
    if not item.set_aside:
        return []
    try:
        return [_unread(item.path, ArtifactKind.REJECTED_SOURCE)]
    except OSError:  # unreadable (its error says so): listed in files_rejected only
        return []


def _unread(path: StoragePath, kind: str) -> Artifact:
    """A file that could not be read: described by its bytes alone (not as Parquet, even when so named)."""
    return Artifact(uri=to_uri(path), kind=kind, sha256=sha256_file(path), bytes=size_of(path))


def _keep_rejected(target: StoragePath, rejected: list[RejectedFile]) -> list[StoragePath]:
    """Replace ``target`` with copies of the rejected files and their errors; remove it
    when there are none (a re-run after the source was fixed leaves no stale copies).
    A file that is not to be copied, or cannot be read, gets its error file alone."""
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
        error = item.error
        if item.set_aside:
            try:
                copy_aside(item.path, staging.joinpath(*relative))
                copies.append(target.joinpath(*relative))
            except OSError as exc:
                error += f" (not copied: {exc.strerror or type(exc).__name__})"
        error_file = staging.joinpath(*relative[:-1], relative[-1] + ERROR_SUFFIX)
        error_file.parent.mkdir(parents=True, exist_ok=True)
        write_text(error + "\n", error_file)
    replace_dir(staging, target)
    return copies
