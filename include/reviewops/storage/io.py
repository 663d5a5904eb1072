"""Whole-file reads and atomic writes, local or on an object store, and content hashes.

Readers only ever see whole files. Locally, every artifact is written next to its final
name and moved into place with ``os.replace``, which is atomic on a POSIX file system; on
an object store an object is uploaded whole (an upload is atomic: readers see the old
object or the new one), so it is written directly.

A temporary file is named ``.<name>.<host>-<pid>-<id>.tmp`` after its writer, so a writer
that was killed leaves a file the next successful write of the same name recognises as
abandoned and deletes (:func:`remove_abandoned`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from reviewops.storage.paths import StoragePath, is_remote

log = logging.getLogger(__name__)


CHUNK = 1 << 20
# Columns of free text (a review's words): every value differs, so Parquet's dictionary
# encoding would build a dictionary for each column chunk only to give it up at its size
# limit, and min/max statistics of prose never let a reader skip a row group. They are
# written plain and without statistics (at 1M reviews that is about a tenth of a write).
FREE_TEXT_COLUMNS = frozenset({"text"})

# A temporary whose writer runs on another host, or whose name does not say its writer
# (written before names did), is abandoned once nothing has been written to it for this
# long: a live writer writes continuously.
ABANDONED_AFTER_SECONDS = 3600.0
_TEMPORARY = re.compile(r"(?:(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)-)?(?:[0-9a-f]{32}\.tmp|[a-z0-9_]{8}\.staging)")


def sha256_file(path: StoragePath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(path: StoragePath) -> int:
    return int(path.stat().st_size)


@contextmanager
def atomic_path(target: StoragePath) -> Iterator[Path]:
    """Yield a local temporary path; on success it becomes ``target`` in one step: moved
    onto it locally, uploaded whole to an object store. Locally, temporaries of
    ``target`` left by writers that were killed are deleted after the move."""
    if is_remote(target):
        folder = Path(tempfile.mkdtemp(prefix="reviewops-upload-"))
        try:
            tmp = folder / target.name
            yield tmp
            upload(tmp, target)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    assert isinstance(target, Path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{writer_tag()}-{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    remove_abandoned(target.parent, target.name)


def writer_tag() -> str:
    """``<host>-<pid>`` of this process, for the names of its temporary files and folders."""
    return f"{_host()}-{os.getpid()}"


def remove_abandoned(folder: Path, name: str) -> None:
    """Delete the temporaries of ``name`` in ``folder`` (files ``.<name>.*.tmp``, staging
    folders ``.<name>.*.staging``) whose writer is gone: a process of this host that no
    longer runs, or nothing written for ``ABANDONED_AFTER_SECONDS`` (another host's
    writer, or a name that does not say). A live writer's temporaries are left alone."""
    prefix = f".{name}."
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except FileNotFoundError:
        return
    for entry in entries:
        found = _TEMPORARY.fullmatch(entry.name[len(prefix) :])
        if found is None or not _abandoned(found, entry):
            continue
        log.info("removing %s, left by a writer that is gone", entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with suppress(FileNotFoundError):
                os.unlink(entry.path)


def _abandoned(found: re.Match[str], entry: os.DirEntry[str]) -> bool:
    if found["pid"] is not None and found["host"] == _host():
        return not _running(int(found["pid"]))
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > ABANDONED_AFTER_SECONDS
    except FileNotFoundError:
        return False


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def upload(local: Path, target: StoragePath) -> None:
    """Copy a local file to ``target`` as one whole object (or file, atomically)."""
    if isinstance(target, UPath) and not isinstance(target, Path):
        target.fs.put_file(str(local), target.path)
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(local, tmp)


def write_parquet(table: pa.Table, target: StoragePath, row_group_rows: int | None = None) -> StoragePath:
    """``table`` as one Parquet file (zstd), in row groups of ``row_group_rows`` (pyarrow's
    default, 1Mi rows, when None): a reader that streams the file holds one at a time."""
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_rows, **parquet_options(table.schema))
    return target


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How every Parquet file is written: zstd; dictionaries and statistics for every
    column but the free text (:data:`FREE_TEXT_COLUMNS`)."""
    coded = [name for name in schema.names if name not in FREE_TEXT_COLUMNS]
    return {"compression": "zstd", "use_dictionary": coded, "write_statistics": coded}


def write_parquet_pieces(pieces: Iterable[pa.Table], schema: pa.Schema, target: StoragePath) -> StoragePath:
    """One Parquet file (zstd) of ``pieces``, one row group each (none: an empty file of
    ``schema``). A piece is compressed and written in a second thread while the caller
    builds the next (pyarrow releases the GIL while it writes): at most two pieces are in
    memory at once."""
    with (
        atomic_path(target) as tmp,
        pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as writer,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer") as pool,
    ):
        pending: Future[None] | None = None
        for piece in pieces:
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_table, piece)
        if pending is None:  # no rows: the file holds the schema, as write_table writes it
            writer.write_table(schema.empty_table())
        else:
            pending.result()
    return target


def release_memory() -> None:
    """Give back to the OS the memory Arrow's pool keeps for reuse. A step that read a
    large batch calls it once the batch is freed: steps run one after another in one
    process too (``dag.test()``, the ``reviewops`` pipeline), and each would otherwise
    start on top of what the one before held."""
    pa.default_memory_pool().release_unused()


def write_json(payload: Any, target: StoragePath) -> StoragePath:
    return write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", target)


def write_text(text: str, target: StoragePath) -> StoragePath:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def read_json(path: StoragePath) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_texts(paths: Iterable[StoragePath]) -> list[str]:
    """The text of many small files, in order; from an object store in one concurrent fetch."""
    found = list(paths)
    if not found or isinstance(found[0], Path):
        return [p.read_text(encoding="utf-8") for p in found]
    remote = [p for p in found if isinstance(p, UPath)]
    blobs = remote[0].fs.cat([p.path for p in remote])
    return [blobs[p.path].decode("utf-8") for p in remote]


def read_table(path: StoragePath, columns: list[str] | None = None) -> pa.Table:
    if isinstance(path, Path):
        return pq.read_table(path, columns=columns)
    return pq.read_table(pa.BufferReader(path.read_bytes()), columns=columns)


def read_parquet_metadata(path: StoragePath) -> pq.FileMetaData:
    if isinstance(path, Path):
        return pq.read_metadata(path)
    with path.open("rb") as handle:
        return pq.read_metadata(handle)


@contextmanager
def parquet_file(path: StoragePath) -> Iterator[pq.ParquetFile]:
    """A Parquet file opened for streaming its row groups (local or remote)."""
    if isinstance(path, Path):
        yield pq.ParquetFile(path)
        return
    with path.open("rb") as handle:
        yield pq.ParquetFile(handle)


@contextmanager
def local_copy(path: StoragePath) -> Iterator[Path]:
    """A local file with ``path``'s content, for libraries that only read local files
    (TensorFlow, Keras): the file itself locally, else a download removed afterwards."""
    if isinstance(path, Path):
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="reviewops-download-"))
    try:
        local = folder / path.name
        path.fs.get_file(path.path, str(local))
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def copy_aside(source: StoragePath, local: Path) -> Path:
    """Copy a file to a new local path keeping its permission bits, never wider (a file
    set aside from a source may be private: a copy must not make it readable to more
    users). A file from an object store, which has no mode, is copied as 0600."""
    local.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(source.stat().st_mode) & 0o666 if isinstance(source, Path) else 0o600
    with source.open("rb") as original:
        # Created with the mode (less the umask) from the start: no moment of wider access.
        descriptor = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as copy:
            shutil.copyfileobj(original, copy, CHUNK)
    return local


def fetch(source: StoragePath, local: Path) -> Path:
    """Copy a file or object to a local path (parents created)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, Path):
        shutil.copyfile(source, local)
    else:
        source.fs.get_file(source.path, str(local))
    return local


def create_exclusive(target: StoragePath, data: bytes) -> bool:
    """Create ``target`` with ``data`` only if it does not exist yet, in one step
    (``O_EXCL`` locally, an ``ifGenerationMatch=0`` precondition on GCS). False when it
    already existed."""
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True
    try:
        target.fs.pipe_file(target.path, data, mode="create")
    except FileExistsError:
        return False
    return True


def remove(path: StoragePath) -> None:
    """Delete a file or object if it is there."""
    with suppress(FileNotFoundError):
        path.unlink()
