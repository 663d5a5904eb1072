"""The storage layer on a local data root and on ``gs://`` (a fake object store at the
client boundary, tests/gcsfake.py): URIs, whole-object writes, versions published with a
marker written last, first writer wins, readers that trust only published versions, and
the registry's champion lock."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from reviewops.contracts import METADATA_FILE, MODEL_FILE
from reviewops.data.datasets import DatasetError, read_manifest
from reviewops.data.sources import list_source_files, read_source
from reviewops.lineage.record import Artifact, LineageError, LineageRecord
from reviewops.lineage.store import LineageStore
from reviewops.registry.store import CHAMPION_FILE, LOCK_FILE, Registry, RegistryError
from reviewops.storage import io as storage_io
from reviewops.storage import paths as storage_paths
from reviewops.storage import publish as storage_publish
from reviewops.storage.paths import Layout, StoragePath
from reviewops.storage.publish import CLAIM, MARKER
from tests.gcsfake import FakeGCSFileSystem

from .samples import SLICE_ROWS, shipped_text

GS_ROOT = "gs://reviewops-test/prefix"
TABLE = pa.table({"review_id": ["1", "2", "3"], "text": ["good", "bad", "so so"]})


@pytest.fixture(params=["local", "gs"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The data root: a local folder, or a prefix of a bucket on the fake GCS."""
    if request.param == "local":
        return str(tmp_path / "data-root")
    request.getfixturevalue("fake_gcs")
    return GS_ROOT


def _bytes(path: StoragePath) -> bytes:
    return path.read_bytes()


def _stage(parent: StoragePath, name: str, files: dict[str, bytes]) -> Path:
    staging = storage_publish.staging_dir(parent, name)
    for relative, data in files.items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_bytes(data)
    return staging


# --- URIs ------------------------------------------------------------------------------


def test_local_uris_are_file_uris_with_readable_partitions(tmp_path: Path) -> None:
    target = Layout(tmp_path / "data root").curated("2017-12-11")

    uri = storage_paths.to_uri(target)

    assert (
        uri
        == "file://"
        + str(tmp_path.resolve()).replace(" ", "%20")
        + "/data%20root/curated/week=2017-12-11/reviews.parquet"
    )
    assert storage_paths.from_uri(uri) == target
    assert isinstance(storage_paths.from_uri(uri), Path)


def test_gs_uris_name_the_object(fake_gcs: Path) -> None:
    target = Layout(GS_ROOT + "/").curated("2017-12-11")

    uri = storage_paths.to_uri(target)

    assert uri == "gs://reviewops-test/prefix/curated/week=2017-12-11/reviews.parquet"
    assert storage_paths.to_uri(storage_paths.from_uri(uri)) == uri
    assert storage_paths.is_remote(storage_paths.from_uri(uri))


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="only local paths, file:// and gs://"):
        storage_paths.from_uri("s3://bucket/key")


# --- single objects ----------------------------------------------------------------------


def test_written_files_are_described_the_same_on_both_roots(root: str) -> None:
    target = storage_io.write_parquet(TABLE, Layout(root).curated("2017-12-11"))
    report = storage_io.write_json({"rows": 3}, Layout(root).monitoring("2017-12-11") / "metrics.json")

    artifact = Artifact.of_file(target, "curated")

    assert artifact.uri.startswith("gs://" if root == GS_ROOT else "file://")
    assert artifact.sha256 == hashlib.sha256(_bytes(target)).hexdigest() == storage_io.sha256_file(target)
    assert (artifact.rows, artifact.bytes) == (3, len(_bytes(target)))
    assert artifact.schema_fingerprint is not None
    assert storage_io.read_table(target).equals(TABLE)
    assert storage_io.read_json(report) == {"rows": 3}
    artifact.verify()
    storage_io.write_parquet(TABLE.slice(1), target)
    with pytest.raises(LineageError, match="changed since it was recorded"):
        artifact.verify()


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(root: str) -> None:
    target = storage_io.write_json({"v": 1}, Layout(root).root / "report.json")

    with pytest.raises(RuntimeError), storage_io.atomic_path(target) as tmp:
        tmp.write_text("half of it")
        raise RuntimeError("killed mid-write")

    assert storage_io.read_json(target) == {"v": 1}
    assert [p.name for p in Layout(root).root.iterdir()] == ["report.json"]


def test_on_gs_an_object_is_uploaded_once_never_renamed(fake_gcs: Path) -> None:
    target = Layout(GS_ROOT).predictions("2017-12-11")
    before = FakeGCSFileSystem.writes

    storage_io.write_parquet(TABLE, target)

    assert FakeGCSFileSystem.writes - before == 1
    assert sorted(p.name for p in (fake_gcs / "reviewops-test/prefix/predictions/week=2017-12-11").iterdir()) == [
        "predictions.parquet"
    ]


def test_the_fake_store_cannot_rename_a_folder(fake_gcs: Path) -> None:
    folder = Layout(GS_ROOT).root / "folder"
    storage_io.write_json({}, folder / "a.json")

    assert isinstance(folder, storage_paths.UPath)
    with pytest.raises(NotImplementedError, match="cannot rename a folder"):
        folder.fs.mv(folder.path, folder.path + "-moved")


# --- published versions ------------------------------------------------------------------


def test_first_writer_wins_and_the_second_copy_is_discarded(root: str) -> None:
    parent = Layout(root).datasets()
    target = parent / "ds-0123456789ab"
    first = _stage(parent, "ds-0123456789ab", {"manifest.json": b'{"version": "first"}', "sub/train.jsonl": b"1\n"})
    second = _stage(parent, "ds-0123456789ab", {"manifest.json": b'{"version": "second"}', "sub/train.jsonl": b"2\n"})

    assert storage_publish.publish_dir(first, target) is True
    assert storage_publish.publish_dir(second, target) is False

    assert storage_publish.is_published(target)
    assert storage_io.read_json(target / "manifest.json") == {"version": "first"}
    assert _bytes(target / "sub" / "train.jsonl") == b"1\n"
    assert not first.exists() and not second.exists()
    assert [p.name for p in storage_publish.files_in(target)] == ["manifest.json"]


def test_on_gs_the_marker_is_written_last_and_lists_the_files(fake_gcs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[str] = []
    original = FakeGCSFileSystem.pipe_file

    def recording(self: FakeGCSFileSystem, path: str, value: bytes, mode: str = "overwrite", **kw: Any) -> None:
        written.append(path.rsplit("/", 1)[-1])
        original(self, path, value, mode=mode, **kw)

    monkeypatch.setattr(FakeGCSFileSystem, "pipe_file", recording)
    parent = Layout(GS_ROOT).models()
    staging = _stage(parent, "m-0123456789ab", {MODEL_FILE: b"weights", METADATA_FILE: b"{}"})

    assert storage_publish.publish_dir(staging, parent / "m-0123456789ab")

    assert written[0] == CLAIM and written[-1] == MARKER
    assert set(written[1:-1]) == {MODEL_FILE, METADATA_FILE}
    marker = storage_io.read_json(parent / "m-0123456789ab" / MARKER)
    assert marker["files"][MODEL_FILE] == {"sha256": hashlib.sha256(b"weights").hexdigest(), "bytes": 7}
    assert not (parent / "m-0123456789ab" / CLAIM).exists()


def test_on_gs_readers_ignore_a_version_without_its_marker(fake_gcs: Path) -> None:
    layout = Layout(GS_ROOT)
    half = layout.datasets() / "ds-0123456789ab"
    storage_io.write_json({"version": "ds-0123456789ab"}, half / "manifest.json")  # a writer died before the marker
    registry = Registry(GS_ROOT)
    storage_io.write_json(
        {"version": "m-0123456789ab", "registered_at": "2024"}, registry.path("m-0123456789ab") / METADATA_FILE
    )

    assert not storage_publish.is_published(half)
    with pytest.raises(DatasetError, match="not a dataset version"):
        read_manifest(half)
    assert registry.versions() == []
    with pytest.raises(RegistryError, match="not registered"):
        registry.metadata("m-0123456789ab")


def test_on_gs_a_second_writer_waits_for_the_first_ones_marker(fake_gcs: Path) -> None:
    parent = Layout(GS_ROOT).datasets()
    target = parent / "ds-0123456789ab"
    first = _stage(parent, "ds-0123456789ab", {"manifest.json": b'{"version": "first"}'})
    storage_io.create_exclusive(target / CLAIM, b"{}")  # the first writer is uploading

    def finish_first() -> None:
        time.sleep(0.5)
        storage_publish._upload_tree(first, target)  # type: ignore[arg-type]
        storage_io.write_json({"files": {}}, target / MARKER)

    thread = threading.Thread(target=finish_first)
    thread.start()
    second = _stage(parent, "ds-0123456789ab", {"manifest.json": b'{"version": "second"}'})
    assert storage_publish.publish_dir(second, target) is False
    thread.join()
    assert storage_io.read_json(target / "manifest.json") == {"version": "first"}


def test_on_gs_a_claim_abandoned_by_a_dead_writer_is_taken_over(
    fake_gcs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_publish, "CLAIM_STALE_SECONDS", 0.5)
    parent = Layout(GS_ROOT).datasets()
    target = parent / "ds-0123456789ab"
    storage_io.create_exclusive(target / CLAIM, storage_publish._claim())  # a writer that was killed mid-upload
    storage_io.write_json({"version": "half"}, target / "manifest.json")

    started = time.monotonic()
    published = storage_publish.publish_dir(
        _stage(parent, "ds-0123456789ab", {"manifest.json": b'{"version": "whole"}'}), target
    )

    assert published and time.monotonic() - started >= 0.5
    assert storage_io.read_json(target / "manifest.json") == {"version": "whole"}
    assert storage_publish.is_published(target) and not (target / CLAIM).exists()


def test_on_gs_a_failed_upload_gives_up_its_claim(fake_gcs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("connection reset")

    parent = Layout(GS_ROOT).datasets()
    target = parent / "ds-0123456789ab"
    monkeypatch.setattr(storage_publish, "_upload_tree", broken)
    with pytest.raises(OSError, match="connection reset"):
        storage_publish.publish_dir(_stage(parent, "ds-0123456789ab", {"manifest.json": b"{}"}), target)
    monkeypatch.undo()

    assert not (target / CLAIM).exists() and not storage_publish.is_published(target)
    assert storage_publish.publish_dir(_stage(parent, "ds-0123456789ab", {"manifest.json": b"{}"}), target)


def test_replace_dir_swaps_the_whole_folder(root: str) -> None:
    target = Layout(root).root / "quarantine" / "week=2017-12-11" / "files"
    storage_publish.replace_dir(_stage(target.parent, "files", {"a.csv": b"a", "a.csv.error.txt": b"bad"}), target)
    storage_publish.replace_dir(_stage(target.parent, "files", {"b.csv": b"b"}), target)

    assert [p.name for p in storage_publish.files_in(target)] == ["b.csv"]
    storage_publish.remove_tree(target)
    assert not target.exists()


# --- the registry on gs --------------------------------------------------------------------


def _register(registry: Registry, version: str) -> None:
    staging = storage_publish.staging_dir(registry.staging(), version)
    (staging / MODEL_FILE).write_bytes(version.encode())
    candidate = registry.candidates() / version
    storage_publish.publish_dir(staging, candidate)
    registry.register(candidate, {"version": version, "registered_at": "2024-06-03T10:00:00+00:00"})


def test_on_gs_promotion_takes_the_lock_object_and_keeps_the_history(fake_gcs: Path) -> None:
    registry = Registry(GS_ROOT)
    for version in ("m-000000000001", "m-000000000002"):
        _register(registry, version)

    assert registry.promote("m-000000000001", "first", "test", expected=None)
    assert not registry.promote("m-000000000002", "stale", "test", expected=None)  # compare-and-swap
    assert registry.promote("m-000000000002", "better", "test", expected="m-000000000001")

    assert registry.champion() == "m-000000000002"
    assert [e["version"] for e in registry.history()] == ["m-000000000001", "m-000000000002"]
    assert [m["version"] for m in registry.versions()] == ["m-000000000001", "m-000000000002"]
    assert not (registry.root / LOCK_FILE).exists()
    assert (fake_gcs / "reviewops-test/prefix/models" / CHAMPION_FILE).is_file()
    assert registry.rollback("back", "test") == "m-000000000001"


def test_on_gs_a_held_lock_fails_the_promotion_instead_of_racing(
    fake_gcs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reviewops.registry.store as registry_module

    monkeypatch.setattr(registry_module, "LOCK_WAIT_SECONDS", 0.3)
    registry = Registry(GS_ROOT)
    _register(registry, "m-000000000001")
    storage_io.create_exclusive(registry.root / LOCK_FILE, b'{"host": "worker-2"}')

    with pytest.raises(RegistryError, match=r"registry lock gs://.*worker-2.*delete the lock object"):
        registry.promote("m-000000000001", "first", "test")
    assert registry.champion() is None


def test_on_gs_concurrent_promotions_leave_exactly_one_champion(fake_gcs: Path) -> None:
    registry = Registry(GS_ROOT)
    versions = [f"m-00000000000{i}" for i in range(4)]
    for version in versions:
        _register(registry, version)
    results: dict[str, bool] = {}

    def promote(version: str) -> None:
        results[version] = Registry(GS_ROOT).promote(version, "race", "test", expected=None)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(results.values()) == 1
    (winner,) = [v for v, won in results.items() if won]
    assert registry.champion() == winner
    assert [e["version"] for e in registry.history()] == [winner]


# --- lineage and sources on gs ---------------------------------------------------------------


def _record(record_id: str, output: Artifact, ended_at: str) -> LineageRecord:
    return LineageRecord(
        record_id=record_id,
        dag_id="reviews_weekly",
        run_id="r",
        task_id="score",
        try_number=1,
        subject="week=2017-12-11",
        code_version="test",
        params={},
        inputs=(),
        outputs=(output,),
        parents=(),
        metrics={},
        started_at=ended_at,
        ended_at=ended_at,
    )


def test_on_gs_the_lineage_store_lists_and_resolves_objects(fake_gcs: Path) -> None:
    target = storage_io.write_parquet(TABLE, Layout(GS_ROOT).predictions("2017-12-11"))
    store = LineageStore(GS_ROOT)
    store.write(_record("b", Artifact.of_file(target, "predictions"), "2024-01-02"))
    store.write(_record("a", Artifact("gs://reviewops-test/prefix/other", "other", "0" * 64), "2024-01-01"))

    records = store.records()

    assert [r.record_id for r in records] == ["a", "b"]
    index = store.index()
    folder = "gs://reviewops-test/prefix/predictions/week=2017-12-11/"
    assert [r.record_id for r in index.resolve(folder)] == ["b"]
    assert [r.record_id for r in index.resolve(storage_paths.to_uri(target))] == ["b"]


def test_a_gs_file_folder_or_glob_is_a_source(fake_gcs: Path) -> None:
    text = shipped_text(SLICE_ROWS)
    for name in ("2017/a.tsv", "2017/b.tsv"):
        storage_io.write_text(text, storage_paths.from_uri(f"gs://drops/reviews/{name}"))

    one = list_source_files("gs://drops/reviews/2017/a.tsv")
    folder = list_source_files("gs://drops/reviews/")
    matched = list_source_files("gs://drops/reviews/*/*.tsv")

    assert [storage_paths.to_uri(p) for p in one] == ["gs://drops/reviews/2017/a.tsv"]
    assert (
        [storage_paths.to_uri(p) for p in folder]
        == [storage_paths.to_uri(p) for p in matched]
        == [
            "gs://drops/reviews/2017/a.tsv",
            "gs://drops/reviews/2017/b.tsv",
        ]
    )
    table = read_source("gs://drops/reviews/2017/a.tsv")
    assert table.num_rows == SLICE_ROWS
    assert set(table.column("source_file").to_pylist()) == {"gs://drops/reviews/2017/a.tsv"}


def test_on_gs_ingest_keeps_a_rejected_file_whole_and_forgets_it_once_fixed(fake_gcs: Path) -> None:
    from reviewops.data.ingest import ERROR_SUFFIX, IngestParams, ingest_reviews, rejected_files_dir
    from reviewops.data.sources import source_window

    storage_io.write_text(shipped_text(SLICE_ROWS), storage_paths.from_uri("gs://drops/reviews/good.tsv"))
    bad = storage_paths.from_uri("gs://drops/reviews/late/bad.tsv")
    bad.write_bytes(b"")
    window = source_window("gs://drops/reviews/")
    params = IngestParams(source="gs://drops/reviews/", data_root=GS_ROOT, window=window)

    result, sources = ingest_reviews(params)

    folder = rejected_files_dir(GS_ROOT, window.key)
    copies = [a for a in result.outputs if a.kind == "rejected_file"]
    assert [a.uri for a in copies] == [f"{GS_ROOT}/quarantine/{window.key}/files/bad.tsv"]
    assert [a.uri for a in sources] == ["gs://drops/reviews/good.tsv", "gs://drops/reviews/late/bad.tsv"]
    assert storage_publish.is_published(folder)
    assert "is empty" in (folder / f"bad.tsv{ERROR_SUFFIX}").read_text()
    assert result.outputs[0].uri == f"{GS_ROOT}/raw/{window.key}/reviews.parquet"

    bad.unlink()
    ingest_reviews(params)
    assert not folder.exists()


# -- temporaries left by a writer that was killed ------------------------------------------


def _killed_mid_write(target: Path) -> Path:
    """A process that dies by SIGKILL in the middle of writing ``target`` the way
    ``reviewops score`` writes its output (a Parquet writer on the atomic temporary);
    returns the temporary it left."""
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        import pyarrow as pa, pyarrow.parquet as pq
        from reviewops.storage.io import atomic_path
        with atomic_path(Path({str(target)!r})) as tmp:
            with pq.ParquetWriter(tmp, pa.schema([("review_id", pa.string())])) as writer:
                writer.write_table(pa.table({{"review_id": ["1", "2"]}}))
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = target.parent.glob(f".{target.name}.*.tmp")
    return left


def test_a_temporary_left_by_a_killed_writer_is_gone_after_the_next_successful_write(tmp_path: Path) -> None:
    target = tmp_path / "out" / "predictions.parquet"
    left = _killed_mid_write(target)
    assert not target.exists() and left.stat().st_size > 0

    storage_io.write_parquet(TABLE, target)  # the successful rerun

    assert sorted(p.name for p in target.parent.iterdir()) == ["predictions.parquet"]
    assert storage_io.read_table(target).equals(TABLE)


def test_a_live_writers_temporary_is_left_alone_and_an_old_one_of_unknown_writer_is_not(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    live = tmp_path / f".report.json.{storage_io.writer_tag()}-{'a' * 32}.tmp"  # this process: running
    other_host = tmp_path / f".report.json.elsewhere-1-{'b' * 32}.tmp"
    unnamed_old = tmp_path / f".report.json.{'c' * 32}.tmp"  # named before names said their writer
    unrelated = tmp_path / f".report.json.bak.{'d' * 32}.tmp"  # another file's temporary
    for path in (live, other_host, unnamed_old, unrelated):
        path.write_text("partial")
    hour_ago = time.time() - storage_io.ABANDONED_AFTER_SECONDS - 60
    os.utime(unnamed_old, (hour_ago, hour_ago))
    os.utime(unrelated, (hour_ago, hour_ago))

    storage_io.write_json({"v": 1}, target)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, other_host.name, unrelated.name]
    )


def test_a_staging_folder_left_by_a_killed_publisher_is_gone_after_the_next_publication(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from reviewops.storage.publish import staging_dir
        (staging_dir(Path({str(tmp_path)!r}), "ds-1") / "train.jsonl").write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p.name.startswith(".ds-1.") for p in tmp_path.iterdir()] == [True]

    assert storage_publish.publish_dir(_stage(tmp_path, "ds-1", {"train.jsonl": b"{}"}), tmp_path / "ds-1")

    assert [p.name for p in tmp_path.iterdir()] == ["ds-1"]
