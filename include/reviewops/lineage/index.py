"""The producer index: which records wrote an artifact, found without reading the store.

Every task looks up the producers of what it read (its cross-DAG parents). Reading every
record to answer that made each task's cost grow with the history: 100k records took
seconds per task (``bench/bench_lineage.py``). The index answers with one listing of one
small folder, whatever the size of the store.

Layout, beside the records::

    lineage/index/producers/<kk>/<key>/<record id>    per output: who wrote these bytes here
    lineage/index/writers/<kk>/<key>/<record id>      per output: who wrote anything here
    lineage/index/_BUILT.json                         the index covers every record

``<key>`` is a hash of the artifact's URI and sha256 (``producers``) or of its URI alone
(``writers``: the registration of a model file, whatever its bytes are now); ``<kk>`` is
its first two characters, so no folder holds more than a few thousand others. Each entry is its own file, created once
and never rewritten, so parallel backfills never write the same file and an object store
(which has no appends and no locks) works the same as a local disk.

Why the index never disagrees with the records:

- a record's entries are written *before* the record: a record that exists is indexed
  (a crash in between leaves an entry naming a record that does not exist, which a
  lookup skips);
- the index only narrows the search: a lookup reads the records its entries name and
  answers from them, so an entry for a record since set aside as damaged, or one that
  does not match, is ignored;
- ``_BUILT.json`` is written last by a rebuild that indexed every record of the store.
  Without it (a store older than the index, or ``lineage/index/`` deleted because it was
  damaged) the next lookup rebuilds the index from the records first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from upath import UPath

from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.storage.io import write_json
from reviewops.storage.paths import StoragePath

INDEX_DIR = "index"  # beside lineage/records/
BUILT_MARKER = "_BUILT.json"


def artifact_key(uri: str, sha256: str) -> str:
    """The index key of exactly these bytes at this URI."""
    return hashlib.sha256(f"{uri}\n{sha256}".encode()).hexdigest()[:40]


def uri_key(uri: str) -> str:
    """The index key of whatever was written at this URI."""
    return hashlib.sha256(uri.encode()).hexdigest()[:40]


class ProducerIndex:
    """Entries ``key -> record ids`` under ``root`` (``<data root>/lineage/index``)."""

    def __init__(self, root: StoragePath) -> None:
        self.root = root
        self.producers = root / "producers"
        self.writers = root / "writers"
        self.marker = root / BUILT_MARKER

    def folder(self, artifact: Artifact) -> StoragePath:
        key = artifact_key(artifact.uri, artifact.sha256)
        return self.producers / key[:2] / key

    def writers_folder(self, uri: str) -> StoragePath:
        key = uri_key(uri)
        return self.writers / key[:2] / key

    def entries_of(self, record: LineageRecord) -> list[StoragePath]:
        found = [self.folder(a) / record.record_id for a in record.outputs]
        return found + [self.writers_folder(a.uri) / record.record_id for a in record.outputs]

    def add(self, records: Iterable[LineageRecord]) -> int:
        """Write the entries of ``records`` (idempotent); the number written."""
        entries = [entry for record in records for entry in self.entries_of(record)]
        _create_empty(entries)
        return len(entries)

    def record_ids(self, artifact: Artifact) -> list[str]:
        """The ids of the records indexed as producers of ``artifact`` (unordered)."""
        return _names(self.folder(artifact))

    def writer_ids(self, uri: str) -> list[str]:
        """The ids of the records indexed as writing at ``uri`` (unordered)."""
        return _names(self.writers_folder(uri))

    def is_built(self) -> bool:
        return self.marker.exists()

    def mark_built(self, records: int) -> None:
        write_json({"records": records}, self.marker)


def _names(folder: StoragePath) -> list[str]:
    """The entries of a key's folder; none when it does not exist. Hidden names are an
    object store client's uploads in progress."""
    if isinstance(folder, Path):
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
    else:
        try:
            names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in folder.fs.ls(folder.path, detail=False)]
        except FileNotFoundError:
            return []
    return [name for name in names if not name.startswith(".")]


def _create_empty(entries: list[StoragePath]) -> None:
    """Create each entry (an empty file) unless it is there; locally one ``open`` each,
    on an object store one concurrent upload of all of them."""
    local = [e for e in entries if isinstance(e, Path)]
    for entry in local:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.touch(mode=0o644)
    remote = [e for e in entries if isinstance(e, UPath)]
    if remote:
        remote[0].fs.pipe({e.path: b"" for e in remote})
