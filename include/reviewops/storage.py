"""Files under the data root: layout, atomic writes, published versions and content hashes.

The data root is a local folder or an object store prefix (``gs://bucket/prefix``), and
every artifact goes through this module, so the steps never care which.

Readers only ever see whole files. Locally, every artifact is written next to its final
name and moved into place with ``os.replace``, which is atomic on a POSIX file system; on
an object store an object is uploaded whole (an upload is atomic: readers see the old
object or the new one), so it is written directly.

Versions made of several files (dataset and model versions, training candidates, a batch's
rejected files) are written to a local staging folder first. Locally they are published
with one directory rename. An object store has no rename, so there the files are uploaded
first and a marker object, ``_PUBLISHED.json`` (the list of files with their sha256), is
written last: readers trust a version only when its marker is there. Content-addressed
versions are published once: the first writer wins and a later one discards its copy.
On an object store the first writer is the one that creates the claim object
``_PUBLISHING.json`` (create-if-absent, GCS's ``ifGenerationMatch=0``); the others wait
for its marker, and take over a claim left by a writer that died.

Remote paths are ``upath.UPath`` objects over fsspec (``gcsfs`` for ``gs://``, which
uses Application Default Credentials); local paths stay ``pathlib.Path``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

log = logging.getLogger(__name__)

CHUNK = 1 << 20

StoragePath: TypeAlias = Path | UPath
"""A local path (``pathlib.Path``) or an object store path (``UPath``)."""

REMOTE_PROTOCOLS = ("gs", "gcs")
# Listings are never cached: another process may have published a version since.
STORAGE_OPTIONS: dict[str, Any] = {"use_listings_cache": False}
MARKER = "_PUBLISHED.json"
CLAIM = "_PUBLISHING.json"
# A claim older than this belongs to a writer that died mid-publish (an upload of a
# version takes seconds): the next writer takes it over.
CLAIM_STALE_SECONDS = 300.0


class StorageError(RuntimeError):
    """A version left half-published, or a location this module cannot use."""


def is_remote(path: StoragePath) -> bool:
    return not isinstance(path, Path)


def as_path(location: str | os.PathLike[str] | StoragePath) -> StoragePath:
    """A local path, a ``file://`` URI or a ``gs://`` URI as the path to read or write."""
    if isinstance(location, Path):
        return location
    if isinstance(location, UPath):
        return location
    text = os.fspath(location)
    if text.startswith("file://"):
        return Path(unquote(text[len("file://") :]))
    scheme, sep, _ = text.partition("://")
    if sep:
        if scheme in REMOTE_PROTOCOLS:
            remote: UPath = UPath(text.rstrip("/"), **STORAGE_OPTIONS)
            return remote
        raise ValueError(f"{text}: only local paths, file:// and gs:// URIs are supported here")
    return Path(text)


def to_uri(path: StoragePath | str) -> str:
    """``file://`` URI of a local path (``=`` stays readable: ``week=2017-12-11``), or the
    ``gs://bucket/key`` URI of an object."""
    found = as_path(path)
    if isinstance(found, Path):
        return "file://" + quote(str(found.resolve()), safe="/=-._~")
    return str(found).rstrip("/")


def from_uri(uri: str) -> StoragePath:
    """The path of a ``file://`` or ``gs://`` URI (a bare local path is accepted too)."""
    return as_path(uri)


def sha256_file(path: StoragePath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(path: StoragePath) -> int:
    return int(path.stat().st_size)


def glob(folder: StoragePath, pattern: str) -> list[StoragePath]:
    """The files and folders under ``folder`` matching ``pattern``, sorted."""
    found: list[StoragePath] = list(folder.glob(pattern))
    return sort_paths(found)


def sort_paths(paths: Iterable[StoragePath]) -> list[StoragePath]:
    """Local paths in pathlib's order, object store paths by URI."""
    found = list(paths)
    local = [p for p in found if isinstance(p, Path)]
    if len(local) == len(found):
        return list(sorted(local))
    return sorted(found, key=str)


# --- single objects --------------------------------------------------------------------


@contextmanager
def atomic_path(target: StoragePath) -> Iterator[Path]:
    """Yield a local temporary path; on success it becomes ``target`` in one step: moved
    onto it locally, uploaded whole to an object store."""
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
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def upload(local: Path, target: StoragePath) -> None:
    """Copy a local file to ``target`` as one whole object (or file, atomically)."""
    if isinstance(target, UPath) and not isinstance(target, Path):
        target.fs.put_file(str(local), target.path)
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(local, tmp)


def write_parquet(table: pa.Table, target: StoragePath) -> StoragePath:
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return target


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


# --- folders and published versions ----------------------------------------------------


def staging_dir(parent: StoragePath, name: str) -> Path:
    """A fresh local folder to write a version into before :func:`publish_dir`: beside
    the target locally (so the rename stays on one file system), in the temp folder for
    an object store."""
    if isinstance(parent, Path):
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".staging", dir=parent))
    return Path(tempfile.mkdtemp(prefix=f"reviewops-{name}.", suffix=".staging"))


def publish_dir(staging: Path, target: StoragePath) -> bool:
    """Publish a fully written staging folder as ``target`` unless ``target`` exists.

    Used for immutable, content-addressed versions (datasets, models): when two runs
    build the same version, the first one to publish wins and the other's staging
    folder is discarded. Returns True when this call published. Locally one rename;
    on an object store the files are uploaded and the marker is written last.
    """
    if not isinstance(target, Path):
        try:
            return _publish_remote(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, target)
    except OSError:
        if target.exists():
            shutil.rmtree(staging, ignore_errors=True)
            return False
        raise
    return True


def replace_dir(staging: Path, target: StoragePath) -> None:
    """Make a staging folder's content the whole of ``target``, replacing what was there
    (for folders rewritten by every run, not versions)."""
    if not isinstance(target, Path):
        try:
            remove_tree(target)
            _upload_tree(staging, target)
            write_json(_marker(staging), target / MARKER)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def remove_tree(target: StoragePath) -> None:
    """Delete a folder and everything under it, if it is there (the marker first, so a
    reader never trusts a version being deleted)."""
    if isinstance(target, Path):
        shutil.rmtree(target, ignore_errors=True)
        return
    remove(target / MARKER)
    if target.fs.exists(target.path):
        target.fs.rm(target.path, recursive=True)


def is_published(folder: StoragePath) -> bool:
    """Whether a version folder is complete: it exists locally (it arrived by rename),
    it has its marker on an object store."""
    if isinstance(folder, Path):
        return folder.is_dir()
    return (folder / MARKER).is_file()


def files_in(folder: StoragePath) -> list[StoragePath]:
    """The files directly in a folder, without the publishing bookkeeping, by name."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.name not in (MARKER, CLAIM)), key=lambda p: p.name)


def _marker(staging: Path) -> dict[str, Any]:
    files = {
        p.relative_to(staging).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(staging.rglob("*"))
        if p.is_file()
    }
    return {"published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "files": files}


def _upload_tree(staging: Path, target: UPath) -> None:
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            upload(path, target.joinpath(*path.relative_to(staging).parts))


def _publish_remote(staging: Path, target: UPath) -> bool:
    """Claim the version with an exclusive-create object, upload, then write the marker.

    A writer that finds the claim taken waits for the marker: when it comes, the other
    writer won and this copy is discarded. A claim whose writer died (it is older than
    ``CLAIM_STALE_SECONDS``, or its writer failed and removed it) is taken over, so a
    retried task can publish what a killed one had half uploaded.
    """
    if is_published(target):
        return False
    claim = target / CLAIM
    if not create_exclusive(claim, _claim()):
        if _published_by_another(target, claim):
            log.info("%s was published by another writer: this copy is discarded", to_uri(target))
            return False
        log.warning("%s: taking over an abandoned publication (no %s, claim stale or gone)", to_uri(target), MARKER)
        claim.write_bytes(_claim())
    try:
        _upload_tree(staging, target)
        if not create_exclusive(target / MARKER, json.dumps(_marker(staging), indent=2, sort_keys=True).encode()):
            # Another writer took over the claim (it looked stale) and published first: its
            # marker wins, as it would had this writer seen it earlier.
            log.warning("%s was published by another writer while this one uploaded: its copy wins", to_uri(target))
            return False
    finally:
        remove(claim)
    return True


def _claim() -> bytes:
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "at": dt.datetime.now(dt.UTC).isoformat()}
    return json.dumps(owner).encode()


def _published_by_another(target: UPath, claim: UPath) -> bool:
    """Wait while another writer holds a live claim: True once its marker is there,
    False when its claim is stale or gone without a marker. A claim that does not say
    when it was made counts from when this writer first saw it."""
    first_seen = dt.datetime.now(dt.UTC)
    while True:
        if is_published(target):
            return True
        try:
            text = claim.read_text(encoding="utf-8")
        except FileNotFoundError:
            return is_published(target)
        try:
            claimed_at = dt.datetime.fromisoformat(json.loads(text)["at"])
        except (ValueError, KeyError, TypeError):
            claimed_at = first_seen
        if (dt.datetime.now(dt.UTC) - claimed_at).total_seconds() > CLAIM_STALE_SECONDS:
            return False
        time.sleep(0.2)


class Layout:
    """Where each kind of artifact lives under the data root."""

    def __init__(self, data_root: str | os.PathLike[str] | StoragePath) -> None:
        root = as_path(data_root)
        self.root: StoragePath = root.resolve() if isinstance(root, Path) else root

    def raw(self, batch_key: str) -> StoragePath:
        return self.root / "raw" / batch_key / "reviews.parquet"

    def validated(self, batch_key: str) -> StoragePath:
        return self.root / "validated" / batch_key / "reviews.parquet"

    def quarantine(self, batch_key: str) -> StoragePath:
        return self.root / "quarantine" / batch_key / "quarantine.parquet"

    def curated_dir(self) -> StoragePath:
        return self.root / "curated"

    def curated(self, week: str) -> StoragePath:
        return self.curated_dir() / f"week={week}" / "reviews.parquet"

    def datasets(self) -> StoragePath:
        return self.root / "datasets"

    def models(self) -> StoragePath:
        return self.root / "models"

    def predictions(self, week: str) -> StoragePath:
        return self.root / "predictions" / f"week={week}" / "predictions.parquet"

    def monitoring(self, week: str) -> StoragePath:
        return self.root / "monitoring" / f"week={week}"
