"""The lineage store survives a damaged record: it is set aside with a warning naming
it, and every later reader (a task, ``reviewops lineage``) keeps working."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import DAMAGED_DIR, LineageStore
from reviewops.storage.paths import to_uri


def record(
    record_id: str, output: Artifact | tuple[Artifact, ...], ended_at: str, inputs: tuple[Artifact, ...] = ()
) -> LineageRecord:
    return LineageRecord(
        record_id=record_id,
        dag_id="reviews_weekly",
        run_id="manual__test",
        task_id="transform",
        try_number=1,
        subject="week=2017-11-27",
        code_version="test",
        params={},
        inputs=inputs,
        outputs=output if isinstance(output, tuple) else (output,),
        parents=(),
        metrics={},
        started_at=ended_at,
        ended_at=ended_at,
    )


@pytest.fixture
def store_with_a_damaged_record(tmp_path: Path) -> tuple[LineageStore, Path, Path]:
    """Two good records (a source read into a curated file) and a third one truncated
    half-way through, as a full disk or a killed copy leaves it."""
    curated = tmp_path / "curated" / "week=2017-11-27" / "reviews.parquet"
    curated.parent.mkdir(parents=True)
    pq.write_table(pa.table({"review_id": ["1", "2"]}), curated)
    source = Artifact("file:///data/reviews.tsv", "source", "1" * 64)
    store = LineageStore(str(tmp_path))
    store.write(record("a" * 32, Artifact(to_uri(curated), "curated", "0" * 64), "2024-01-01T00:00:00+00:00"))
    store.write(record("b" * 32, Artifact.of_file(curated, "curated"), "2024-01-02T00:00:00+00:00", (source,)))
    damaged = store.write(record("c" * 32, Artifact("file:///x", "raw", "2" * 64), "2024-01-03T00:00:00+00:00"))
    assert isinstance(damaged, Path)
    damaged.write_bytes(damaged.read_bytes()[:100])
    return store, damaged, curated


def test_a_truncated_record_is_set_aside_with_a_warning_naming_it(
    store_with_a_damaged_record: tuple[LineageStore, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    store, damaged, _ = store_with_a_damaged_record

    with caplog.at_level(logging.WARNING, logger="reviewops.lineage.store"):
        records = store.records()

    assert [r.record_id for r in records] == ["a" * 32, "b" * 32]
    (warning,) = [r.getMessage() for r in caplog.records]
    aside = damaged.parent.parent / DAMAGED_DIR / damaged.name
    assert str(damaged) in warning and str(aside) in warning and "not valid JSON" in warning
    assert not damaged.exists() and aside.exists(), "the damaged record is kept, out of the store's way"
    assert [d.path for d in store.damaged] == [str(damaged)]
    caplog.clear()
    assert [r.record_id for r in LineageStore(store.root.parent.parent).records()] == ["a" * 32, "b" * 32]
    assert caplog.records == [], "a record set aside is not reported again by every later task"


def test_records_that_are_json_but_not_records_are_set_aside_too(tmp_path: Path) -> None:
    store = LineageStore(str(tmp_path))
    store.root.mkdir(parents=True)
    for name, text in {"list.json": "[1, 2]", "fields.json": '{"record_id": "x"}', "bytes.json": "\udcff"}.items():
        (store.root / name).write_bytes(text.encode("utf-8", "surrogateescape"))

    assert store.records() == []
    assert sorted(Path(d.path).name for d in store.damaged) == ["bytes.json", "fields.json", "list.json"]


def test_a_read_only_store_lists_a_damaged_record_without_moving_it(
    store_with_a_damaged_record: tuple[LineageStore, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, damaged, _ = store_with_a_damaged_record

    def refuse(*args: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr("reviewops.lineage.store._move_aside", refuse)
    assert len(store.records()) == 2
    assert damaged.exists() and [d.moved_to for d in store.damaged] == [None]


def test_the_lineage_command_names_the_damaged_file_in_one_line_and_answers(
    store_with_a_damaged_record: tuple[LineageStore, Path, Path],
) -> None:
    store, damaged, curated = store_with_a_damaged_record
    command = [str(Path(sys.executable).parent / "reviewops"), "--data-root", str(store.root.parent.parent)]

    done = subprocess.run([*command, "lineage", str(curated)], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert "reviews_weekly.transform" in done.stdout and "(source)" in done.stdout
    (line,) = done.stderr.splitlines()
    assert "damaged lineage record" in line and str(damaged) in line and "Traceback" not in done.stderr


def test_on_gs_a_damaged_record_is_set_aside_too(fake_gcs: Path) -> None:
    root = "gs://reviewops-test/prefix"
    store = LineageStore(root)
    store.write(record("a" * 32, Artifact("gs://reviewops-test/prefix/x", "raw", "0" * 64), "2024-01-01"))
    damaged = store.write(record("b" * 32, Artifact("gs://reviewops-test/prefix/y", "raw", "0" * 64), "2024-01-02"))
    damaged.write_bytes(b'{"record_id": ')

    assert [r.record_id for r in store.records()] == ["a" * 32]
    assert not damaged.exists()
    assert [d.moved_to for d in store.damaged] == [f"{root}/lineage/{DAMAGED_DIR}/{'b' * 32}.json"]
