"""The producer index finds the same producers as a read of every record, reads only the
records it names, and is rebuilt from the records when missing or incomplete."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest

from reviewops.lineage.index import BUILT_MARKER
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageStore
from tests.include.test_lineage_store import record


def _artifact(name: str, content: str) -> Artifact:
    return Artifact(f"file:///data/{name}", "curated", content * 64)


def _history(store: LineageStore, n: int) -> list[LineageRecord]:
    """``n`` records; the same bytes rewritten at the same URI by several of them, and
    one URI rewritten with new bytes."""
    written = []
    for i in range(n):
        outputs = (_artifact(f"week={i % 5}", "a" if i < n // 2 else "b"), _artifact(f"only-{i}", "c"))
        made = record(f"{i:032x}", outputs, f"2024-01-{1 + i % 28:02d}T00:00:{i % 60:02d}+00:00")
        store.write(made)
        written.append(made)
    return written


def _probes() -> list[Artifact]:
    return [_artifact(f"week={i}", c) for i in range(5) for c in "ab"] + [
        _artifact("only-3", "c"),
        _artifact("only-3", "d"),  # same URI, bytes nobody wrote
        _artifact("nowhere", "c"),
    ]


def test_the_index_answers_exactly_like_a_read_of_everyrecord(tmp_path: Path) -> None:
    store = LineageStore(str(tmp_path))
    _history(store, 40)
    everything = store.index()
    for artifact in _probes():
        for before in (None, "2024-01-03T00:00:00+00:00", "2023-12-31T00:00:00+00:00"):
            expected = everything.producer(artifact, before)
            found = store.producer(artifact, before)
            assert (found and found.record_id) == (expected and expected.record_id), (artifact.uri, before)
    assert store.producer_ids(_probes(), "2024-01-10T00:00:00+00:00") == everything.producer_ids(
        _probes(), "2024-01-10T00:00:00+00:00"
    )


def test_a_lookup_reads_only_the_records_the_index_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LineageStore(str(tmp_path))
    _history(store, 30)
    store.rebuild_index()
    read: list[str] = []
    real = Path.read_bytes

    def counting(path: Path) -> bytes:
        read.append(path.name)
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", counting)
    producer = store.producer(_artifact("only-7", "c"))

    assert producer is not None and producer.record_id == f"{7:032x}"
    assert read == [f"{7:032x}.json"]


def test_a_store_without_an_index_is_indexed_on_the_first_lookup(tmp_path: Path) -> None:
    store = LineageStore(str(tmp_path))
    written = _history(store, 12)
    shutil.rmtree(store.producer_index.root)  # a store older than the index, or a damaged index deleted

    found = store.producer(_artifact("only-11", "c"))

    assert found is not None and found.record_id == written[11].record_id
    assert (store.producer_index.root / BUILT_MARKER).exists()
    entries = list(store.producer_index.producers.rglob("*/*/*"))
    assert len(entries) == sum(len(r.outputs) for r in written)


def test_a_record_whose_entries_were_lost_is_found_after_a_rebuild(tmp_path: Path) -> None:
    store = LineageStore(str(tmp_path))
    _history(store, 6)
    store.rebuild_index()
    lost = record("f" * 32, (_artifact("lost", "e"),), "2024-02-01T00:00:00+00:00")
    store.write(lost)
    for entry in store.producer_index.entries_of(lost):
        assert isinstance(entry, Path)
        entry.unlink()
    assert store.producer(_artifact("lost", "e")) is None  # a complete index is trusted as it is
    store.producer_index.marker.unlink()  # what deleting lineage/index/ does

    found = store.producer(_artifact("lost", "e"))

    assert found is not None and found.record_id == lost.record_id


def test_an_entry_whose_record_was_never_written_is_ignored(tmp_path: Path) -> None:
    store = LineageStore(str(tmp_path))
    _history(store, 4)
    store.rebuild_index()
    ghost = record("e" * 32, (_artifact("week=1", "a"),), "2030-01-01T00:00:00+00:00")
    store.producer_index.add([ghost])  # the writer died before the record itself

    found = store.producer(_artifact("week=1", "a"))

    assert found is not None and found.record_id != ghost.record_id
    assert found.record_id == store.index().producer(_artifact("week=1", "a")).record_id  # type: ignore[union-attr]


def test_a_damaged_record_named_by_the_index_is_set_aside_and_skipped(tmp_path: Path) -> None:
    store = LineageStore(str(tmp_path))
    written = _history(store, 4)
    store.rebuild_index()
    newest = max(written, key=lambda r: (r.ended_at, r.record_id))
    path = store.root / f"{newest.record_id}.json"
    path.write_bytes(path.read_bytes()[:50])

    found = store.producer(newest.outputs[1])

    assert found is None
    assert [Path(d.path).name for d in store.damaged] == [path.name]


def _write_many(root: str, start: int) -> None:
    store = LineageStore(root)
    for i in range(start, start + 25):
        store.write(record(f"{i:032x}", (_artifact("shared", "a"), _artifact(f"own-{i}", "b")), "2024-01-01"))


def test_parallel_writers_each_index_their_own_records(tmp_path: Path) -> None:
    processes = [multiprocessing.Process(target=_write_many, args=(str(tmp_path), s)) for s in (0, 100, 200)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    store = LineageStore(str(tmp_path))
    store.producer_index.mark_built(75)  # no rebuild: the entries the writers left must suffice

    assert len(store.producer_index.record_ids(_artifact("shared", "a"))) == 75
    for i in (0, 124, 224):
        found = store.producer(_artifact(f"own-{i}", "b"))
        assert found is not None and found.record_id == f"{i:032x}"


def test_a_read_only_store_answers_from_a_full_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LineageStore(str(tmp_path))
    written = _history(store, 5)
    shutil.rmtree(store.producer_index.root)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr("reviewops.lineage.index.write_json", refuse)
    found = store.producer(_artifact("only-4", "c"))

    assert found is not None and found.record_id == written[4].record_id


def test_on_gs_the_index_is_written_and_read_the_same_way(fake_gcs: Path) -> None:
    store = LineageStore("gs://reviewops-test/prefix")
    written = _history(store, 6)

    found = store.producer(_artifact("only-5", "c"))

    assert found is not None and found.record_id == written[5].record_id
    assert sorted(store.producer_index.record_ids(_artifact("week=0", "a"))) == [written[0].record_id]


def test_the_writers_of_a_uri_are_found_through_the_index_oldest_first(tmp_path: Path) -> None:
    store = LineageStore(str(tmp_path))
    _history(store, 20)
    for uri in ("file:///data/week=2", "file:///data/only-7", "file:///data/nowhere"):
        expected = [r.record_id for r in store.records() if any(a.uri == uri for a in r.outputs)]
        assert [r.record_id for r in store.writers(uri)] == expected, uri
    assert len(store.writers("file:///data/week=2")) == 4  # records 2, 7, 12, 17: both contents
