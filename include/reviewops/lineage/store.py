"""The append-only lineage store and the walks over it.

Every lineage record is also written under ``<data root>/lineage/records/`` as one JSON
file named by its record id, written atomically: concurrent runs never touch the same
file, and the store survives ``airflow db clean``. Artifacts are matched by URI *and*
content hash, so a walk follows exactly the bytes a step read, even when a later run
rewrote the same path.

A task finds the producers of what it read through the producer index beside the records
(``reviewops.lineage.index``), reading only the records it names; the walks of
``reviewops lineage`` read the whole store.

A record that cannot be read (truncated by a full disk or a killed copy, edited by hand)
must not stop every later reader: it is moved aside to
``<data root>/lineage/damaged/`` with a warning naming it, and the walks go on without it
(listed in :attr:`LineageStore.damaged` when it cannot be moved, e.g. a read-only store).
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from upath import UPath

from reviewops.lineage.index import INDEX_DIR, ProducerIndex
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.storage.io import remove, sha256_file, write_json
from reviewops.storage.paths import Layout, StoragePath, as_path, sort_paths, to_uri

log = logging.getLogger(__name__)

IMPACT_KINDS = ("dataset", "model", "predictions")
DAMAGED_DIR = "damaged"  # beside lineage/records/


class LineageNotFound(LookupError):
    """No record produced or names the target."""


class DamagedRecordError(ValueError):
    """A file in the store that is not a readable lineage record."""


@dataclass(frozen=True)
class DamagedRecord:
    path: str
    reason: str
    moved_to: str | None  # None: left where it is (the move failed)


class LineageStore:
    def __init__(self, data_root: str | StoragePath) -> None:
        self.root = Layout(data_root).lineage_records()
        self.producer_index = ProducerIndex(self.root.parent / INDEX_DIR)
        self.damaged: list[DamagedRecord] = []

    def write(self, record: LineageRecord) -> StoragePath:
        # The index entries first: a record that exists is always indexed.
        self.producer_index.add([record])
        return write_json(record.to_dict(), self.root / f"{record.record_id}.json")

    def records(self) -> list[LineageRecord]:
        """All readable records, oldest first; each damaged one is set aside (see the
        module's docstring) and listed in :attr:`damaged`."""
        return self._load(sort_paths(self.root.glob("*.json")))

    def rebuild_index(self) -> int:
        """Index every record of the store (entries already there are kept), then mark
        the index complete; the number of records indexed."""
        records = self.records()
        self.producer_index.add(records)
        self.producer_index.mark_built(len(records))
        log.info("lineage index under %s rebuilt from %d records", self.producer_index.root, len(records))
        return len(records)

    def producer(self, artifact: Artifact, before: str | None = None) -> LineageRecord | None:
        """:meth:`LineageIndex.producer` through the index: only the records it names are read."""
        return LineageIndex(self._candidates([artifact])).producer(artifact, before)

    def producer_ids(self, artifacts: Iterable[Artifact], before: str | None = None) -> list[str]:
        """:meth:`LineageIndex.producer_ids` through the index: one listing per artifact
        and one read per candidate record, however many records the store holds."""
        wanted = list(artifacts)
        return LineageIndex(self._candidates(wanted)).producer_ids(wanted, before)

    def writers(self, uri: str) -> list[LineageRecord]:
        """The records with an output at ``uri`` (whatever its bytes), oldest first, through
        the index: the registration of a model file is the first of them."""
        found = self._indexed(lambda index: index.writer_ids(uri))
        return [r for r in found if any(a.uri == uri for a in r.outputs)]

    def _candidates(self, artifacts: list[Artifact]) -> list[LineageRecord]:
        """The records the index names as producers of ``artifacts``, oldest first."""
        return self._indexed(lambda index: [i for a in artifacts for i in index.record_ids(a)])

    def _indexed(self, lookup: Callable[[ProducerIndex], list[str]]) -> list[LineageRecord]:
        """The records whose ids ``lookup`` finds in the index, oldest first; the index is
        rebuilt first when it is not complete."""
        if not self.producer_index.is_built():
            try:
                self.rebuild_index()
            except OSError as exc:  # a read-only store: answer from a full read this time
                log.warning("lineage index under %s not rebuilt (%s): reading every record", self.root.parent, exc)
                return self.records()
        ids = sorted(set(lookup(self.producer_index)))
        return self._load([self.root / f"{i}.json" for i in ids])

    def _load(self, paths: list[StoragePath]) -> list[LineageRecord]:
        found = []
        for path, data in zip(paths, _read_all(paths), strict=True):
            if data is None:  # set aside since the listing, or indexed but never written
                continue
            try:
                found.append(parse_record(data))
            except DamagedRecordError as exc:
                self.damaged.append(self._set_aside(path, data, str(exc)))
        return sorted(found, key=lambda r: (r.ended_at, r.record_id))

    def _set_aside(self, path: StoragePath, data: bytes, reason: str) -> DamagedRecord:
        target = self.root.parent / DAMAGED_DIR / path.name
        try:
            _move_aside(path, target, data)
        except FileNotFoundError:  # another reader moved it first
            moved: str | None = str(target)
        except OSError as exc:
            log.warning("damaged lineage record %s (%s): left in place, not moved aside (%s)", path, reason, exc)
            return DamagedRecord(str(path), reason, None)
        else:
            moved = str(target)
        log.warning(
            "damaged lineage record %s (%s): moved to %s and left out of lineage; "
            "restore it from a backup or delete it",
            path,
            reason,
            target,
        )
        return DamagedRecord(str(path), reason, moved)

    def index(self) -> LineageIndex:
        return LineageIndex(self.records())


def parse_record(data: bytes) -> LineageRecord:
    """A record from a file's bytes; :class:`DamagedRecordError` saying what is wrong."""
    try:
        payload = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DamagedRecordError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DamagedRecordError(f"not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise DamagedRecordError(f"a JSON {type(payload).__name__}, not a record")
    try:
        record = LineageRecord.from_dict(payload)
    except (TypeError, ValueError) as exc:
        raise DamagedRecordError(f"not a lineage record: {exc}") from None
    if not all(isinstance(v, str) for v in (record.record_id, record.started_at, record.ended_at)):
        raise DamagedRecordError("not a lineage record: record_id, started_at and ended_at must be text")
    return record


def _read_all(paths: list[StoragePath]) -> list[bytes | None]:
    """Each file's bytes, None for one gone since the listing; from an object store in
    one concurrent fetch."""
    if not paths:
        return []
    if all(isinstance(p, Path) for p in paths):
        found: list[bytes | None] = []
        for path in paths:
            try:
                found.append(path.read_bytes())
            except FileNotFoundError:
                found.append(None)
        return found
    remote = [p for p in paths if isinstance(p, UPath)]
    keys = [p.path for p in remote]
    blobs = remote[0].fs.cat(keys, on_error="return")
    return [blob if isinstance(blob, bytes) else None for blob in (blobs.get(k) for k in keys)]


def _move_aside(path: StoragePath, target: StoragePath, data: bytes) -> None:
    """Move a damaged record out of the store: in one step locally, as a copy and a
    delete on an object store."""
    if isinstance(path, Path) and isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return
    if not path.exists():
        raise FileNotFoundError(str(path))
    target.write_bytes(data)
    remove(path)


@dataclass
class LineageIndex:
    """Records indexed by the artifacts they read and wrote."""

    records: list[LineageRecord]
    by_id: dict[str, LineageRecord] = field(init=False)
    producers: dict[tuple[str, str], list[LineageRecord]] = field(init=False)
    consumers: dict[str, list[LineageRecord]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {r.record_id: r for r in self.records}
        self.producers = {}
        self.consumers = {}
        for record in self.records:  # oldest first, so the newest ends last
            for artifact in record.outputs:
                self.producers.setdefault((artifact.uri, artifact.sha256), []).append(record)
            for artifact in record.inputs:
                self.consumers.setdefault(artifact.uri, []).append(record)

    def producer(self, artifact: Artifact, before: str | None = None) -> LineageRecord | None:
        """The record that wrote exactly these bytes at this URI: the newest one that had
        finished by ``before`` (a consumer's start time) when given, else the newest."""
        found = self.producers.get((artifact.uri, artifact.sha256))
        if not found:
            return None
        if before is not None:
            earlier = [r for r in found if r.ended_at <= before]
            if earlier:
                return earlier[-1]
        return found[-1]

    def producer_ids(self, artifacts: Iterable[Artifact], before: str | None = None) -> list[str]:
        ids = []
        for artifact in artifacts:
            record = self.producer(artifact, before)
            if record is not None and record.record_id not in ids:
                ids.append(record.record_id)
        return ids

    def resolve(self, target: str) -> list[LineageRecord]:
        """The records a target names: a record id, or the producer(s) of an artifact
        URI, a file path or a partition folder (matched against the bytes on disk)."""
        if target in self.by_id:
            return [self.by_id[target]]
        path = as_path(target)
        files = sort_paths(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found: list[LineageRecord] = []
        for file in files:
            if not file.exists():
                continue
            record = self.producer(Artifact(uri=to_uri(file), kind="", sha256=sha256_file(file)))
            if record is not None and record not in found:
                found.append(record)
        if not found:
            raise LineageNotFound(
                f"{target}: no lineage record produced it (or its content changed since); "
                "pass an artifact path or URI under the data root, or a record id"
            )
        return found

    def upstream(self, start: list[LineageRecord]) -> list[LineageRecord]:
        """The chain from ``start`` up to the source files, breadth first, each record once."""
        chain: list[LineageRecord] = []
        seen: set[str] = set()
        queue = deque(start)
        while queue:
            record = queue.popleft()
            if record.record_id in seen:
                continue
            seen.add(record.record_id)
            chain.append(record)
            for artifact in record.inputs:
                producer = self.producer(artifact, before=record.started_at)
                if producer is not None:
                    queue.append(producer)
            for parent in record.parents:
                if parent in self.by_id:
                    queue.append(self.by_id[parent])
        return chain

    def downstream(self, start_uris: list[str]) -> list[LineageRecord]:
        """Every record built, directly or not, from artifacts at these URIs."""
        found: list[LineageRecord] = []
        seen: set[str] = set()
        queue = deque(start_uris)
        visited_uris: set[str] = set()
        while queue:
            uri = queue.popleft()
            if uri in visited_uris:
                continue
            visited_uris.add(uri)
            for record in self.consumers.get(uri, []):
                if record.record_id in seen:
                    continue
                seen.add(record.record_id)
                found.append(record)
                queue.extend(a.uri for a in record.outputs)
        return found


def impact(records: list[LineageRecord]) -> dict[str, list[str]]:
    """Datasets, models and prediction partitions among the outputs of ``records``."""
    out: dict[str, list[str]] = {kind: [] for kind in IMPACT_KINDS}
    for record in records:
        for artifact in record.outputs:
            if artifact.kind not in out:
                continue
            name = _artifact_name(artifact)
            if name not in out[artifact.kind]:
                out[artifact.kind].append(name)
    return {kind: sorted(names) for kind, names in out.items()}


def _artifact_name(artifact: Artifact) -> str:
    """The version or partition an artifact belongs to: ds-…, m-… or week=…."""
    return artifact.path.parent.name
