"""Dataset versions: content-addressed snapshots of the curated partitions, split by id hash.

Writing TFRecords imports TensorFlow (seconds), so every test here but the one about
TFRecords replaces the TFRecord writer with a plain one-line-per-row writer; the
version, the split and the JSONL and Parquet files are what those tests check.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.data import datasets
from reviewops.data.datasets import DatasetError, SnapshotParams, eval_bucket, snapshot_dataset
from reviewops.data.schema import CLASSES, CURATED_SCHEMA
from reviewops.data.sources import read_source_file
from reviewops.data.transform import curate_frame
from reviewops.data.validate import validate_frame
from reviewops.lineage.record import StepResult
from reviewops.storage.io import sha256_file, write_parquet
from reviewops.storage.paths import Layout

from .samples import TODAY, shipped_records, shipped_text

CURATED_ROWS = 150  # real reviews in the curated partitions of these tests
EVAL_FRACTION = 0.2


def write_curated(frame: pd.DataFrame, curated_root: Path) -> None:
    """Curated partitions as the transform writes them: one file per week."""
    layout = Layout(curated_root)
    for week, part in frame.groupby("week"):
        table = pa.Table.from_pandas(part, schema=CURATED_SCHEMA, preserve_index=False)
        write_parquet(table, layout.curated(week.isoformat()))


def curated_frame(tmp: Path, n: int, first: int = 0) -> pd.DataFrame:
    """Shipped reviews ``first`` to ``n`` (0-based, ``n`` excluded), validated and curated."""
    path = tmp / f"reviews-{first}-{n}.tsv"
    path.write_text(shipped_text(n, first), encoding="utf-8", newline="")
    outcome = validate_frame(read_source_file(path).to_pandas(), 10_000, TODAY)
    assert outcome.quarantined.empty
    curated, duplicates = curate_frame(outcome.valid)
    assert duplicates.empty
    return curated


@pytest.fixture(scope="module")
def curated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("curated-template")
    write_curated(curated_frame(root, CURATED_ROWS), root / "data")
    return root / "data"


@pytest.fixture
def curated_root(tmp_path: Path, curated_template: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(curated_template, root)
    return root


@pytest.fixture
def plain_tfrecords(monkeypatch: pytest.MonkeyPatch) -> None:
    def write(rows: list[dict[str, Any]], path: Path) -> None:
        path.write_text("".join(f"{row['review_id']}\n" for row in rows))

    monkeypatch.setattr(datasets, "_write_tfrecord", write)


def snapshot(curated_root: Path, eval_fraction: float = EVAL_FRACTION) -> tuple[StepResult, Path]:
    result, _ = snapshot_dataset(SnapshotParams(str(curated_root), eval_fraction))
    return result, Layout(curated_root).datasets() / result.subject


def split_ids(folder: Path, split: str) -> list[str]:
    ids: list[str] = pq.read_table(folder / f"{split}.parquet").column("review_id").to_pylist()
    return ids


def curated_ids(curated_root: Path) -> set[str]:
    return {
        review_id
        for path in Layout(curated_root).curated_dir().glob("week=*/reviews.parquet")
        for review_id in pq.read_table(path).column("review_id").to_pylist()
    }


def files_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in sorted(folder.iterdir())}


def test_eval_bucket_is_deterministic_spread_and_in_the_unit_interval() -> None:
    ids = [r[""] for r in shipped_records()]

    buckets = [eval_bucket(i) for i in ids]

    assert buckets == [eval_bucket(i) for i in ids]
    assert all(0.0 <= b < 1.0 for b in buckets)
    assert len(set(buckets)) == len(ids)
    # 600 ids: the share below 0.2 is 0.2 give or take a few standard deviations (0.016).
    assert abs(sum(b < EVAL_FRACTION for b in buckets) / len(ids) - EVAL_FRACTION) < 0.06


@pytest.mark.usefixtures("plain_tfrecords")
def test_snapshot_publishes_a_content_addressed_version(curated_root: Path) -> None:
    result, folder = snapshot(curated_root)

    assert re.fullmatch(r"ds-[0-9a-f]{12}", result.subject)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json", *[f"{s}.{fmt}" for s in ("train", "eval") for fmt in ("jsonl", "parquet", "tfrecord")]]
    )
    assert result.metrics["dataset_version"] == result.subject
    assert result.metrics["rows"] == len(curated_ids(curated_root)) == CURATED_ROWS
    assert [p.name for p in Layout(curated_root).datasets().iterdir()] == [result.subject]


@pytest.mark.usefixtures("plain_tfrecords")
def test_snapshot_of_unchanged_data_is_the_same_version_and_rewrites_nothing(curated_root: Path) -> None:
    first, folder = snapshot(curated_root)
    before = files_state(folder)

    second, again = snapshot(curated_root)

    assert again == folder
    assert second == first
    assert files_state(folder) == before
    assert [p.name for p in Layout(curated_root).datasets().iterdir()] == [first.subject]


@pytest.mark.usefixtures("plain_tfrecords")
def test_changed_content_or_eval_fraction_is_a_new_version(curated_root: Path) -> None:
    first, folder = snapshot(curated_root)
    before = files_state(folder)
    partition = next(p for p in sorted(Layout(curated_root).curated_dir().glob("week=*/reviews.parquet")))
    table = pq.read_table(partition)
    labels = table.column("label").to_pylist()
    labels[0] = next(c for c in CLASSES if c != labels[0])
    write_parquet(table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels)), partition)

    relabelled, _ = snapshot(curated_root)
    refractioned, _ = snapshot(curated_root, eval_fraction=0.3)

    assert len({first.subject, relabelled.subject, refractioned.subject}) == 3
    assert files_state(folder) == before  # versions are immutable


@pytest.mark.usefixtures("plain_tfrecords")
def test_split_is_disjoint_complete_and_follows_the_id_hash(curated_root: Path) -> None:
    _, folder = snapshot(curated_root)

    train, evaluation = split_ids(folder, "train"), split_ids(folder, "eval")

    assert not set(train) & set(evaluation)
    assert set(train) | set(evaluation) == curated_ids(curated_root)
    assert len(train) + len(evaluation) == CURATED_ROWS
    assert all(eval_bucket(i) < EVAL_FRACTION for i in evaluation)
    assert all(eval_bucket(i) >= EVAL_FRACTION for i in train)
    assert evaluation, "the eval split of 150 reviews should not be empty"


@pytest.mark.usefixtures("plain_tfrecords")
def test_a_review_stays_on_its_side_when_new_weeks_arrive(curated_root: Path, tmp_path: Path) -> None:
    _, old = snapshot(curated_root)
    known_weeks = {p.parent.name for p in Layout(curated_root).curated_dir().glob("week=*/reviews.parquet")}
    more = curated_frame(tmp_path, CURATED_ROWS + 60, first=CURATED_ROWS)
    new_weeks = more[~more["week"].map(lambda w: f"week={w.isoformat()}").isin(known_weeks)]
    assert len(new_weeks) > 10
    write_curated(new_weeks, curated_root)

    result, new = snapshot(curated_root)

    assert new != old
    assert result.metrics["rows"] == CURATED_ROWS + len(new_weeks)
    for split in ("train", "eval"):
        assert set(split_ids(old, split)) <= set(split_ids(new, split))


def test_until_week_snapshots_only_the_weeks_before_it_as_if_the_later_ones_had_not_arrived(
    curated_root: Path, tmp_path: Path
) -> None:
    weeks = sorted(p.name.removeprefix("week=") for p in Layout(curated_root).curated_dir().glob("week=*"))
    cutoff = weeks[len(weeks) // 2]
    earlier_only = tmp_path / "earlier"
    shutil.copytree(curated_root, earlier_only)
    for week in weeks[len(weeks) // 2 :]:
        shutil.rmtree(Layout(earlier_only).curated_dir() / f"week={week}")

    result, inputs = snapshot_dataset(SnapshotParams(str(curated_root), EVAL_FRACTION, until_week=cutoff))

    assert inputs and all(a.uri.split("week=")[1][:10] < cutoff for a in inputs)
    assert result.subject == snapshot(earlier_only)[0].subject  # the later weeks changed nothing
    assert result.subject != snapshot(curated_root)[0].subject


@pytest.mark.usefixtures("plain_tfrecords")
def test_manifest_counts_and_hashes_match_the_files(curated_root: Path) -> None:
    result, folder = snapshot(curated_root)

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == result.subject
    assert manifest["rows"] == sum(manifest["splits"][s]["rows"] for s in ("train", "eval"))
    for split in ("train", "eval"):
        entry = manifest["splits"][split]
        table = pq.read_table(folder / f"{split}.parquet")
        lines = (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert entry["rows"] == table.num_rows == len(lines)
        assert entry["class_counts"] == {c: Counter(table.column("label").to_pylist())[c] for c in CLASSES}
        assert [json.loads(line)["review_id"] for line in lines] == table.column("review_id").to_pylist()
        for fmt, described in entry["files"].items():
            assert described["sha256"] == sha256_file(folder / described["file"]), (split, fmt)
    partitions = Layout(curated_root).curated_dir().glob("week=*/reviews.parquet")
    assert sum(s["rows"] for s in manifest["sources"]) == manifest["rows"]
    assert len(manifest["sources"]) == len(list(partitions))
    assert result.metrics["train_rows"] + result.metrics["eval_rows"] == manifest["rows"]


@pytest.mark.usefixtures("plain_tfrecords")
def test_jsonl_rows_hold_the_curated_values(curated_root: Path) -> None:
    _, folder = snapshot(curated_root)
    curated = {
        row["review_id"]: row
        for path in Layout(curated_root).curated_dir().glob("week=*/reviews.parquet")
        for row in pq.read_table(path).to_pylist()
    }

    for split in ("train", "eval"):
        for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            source = curated[row["review_id"]]
            assert row["text"] == source["text"]
            assert row["label"] == source["label"]
            assert row["review_date"] == source["review_date"].isoformat()
            assert row["week"] == source["week"].isoformat()


@pytest.mark.usefixtures("plain_tfrecords")
def test_snapshot_without_curated_reviews_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no curated reviews yet"):
        snapshot(tmp_path / "empty")
    write_parquet(CURATED_SCHEMA.empty_table(), Layout(tmp_path / "empty").curated("2024-01-08"))
    with pytest.raises(DatasetError, match="no curated reviews yet"):
        snapshot(tmp_path / "empty")


def test_tfrecord_jsonl_and_parquet_hold_the_same_rows(curated_root: Path) -> None:
    import tensorflow as tf

    _, folder = snapshot(curated_root)

    manifest = json.loads((folder / "manifest.json").read_text())
    for split in ("train", "eval"):
        records = [
            tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(folder / f"{split}.tfrecord"))
        ]
        parquet = pq.read_table(folder / f"{split}.parquet")
        jsonl = (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(records) == parquet.num_rows == len(jsonl) == manifest["splits"][split]["rows"]
        features = [r.features.feature for r in records]
        assert [f["review_id"].bytes_list.value[0].decode() for f in features] == parquet.column(
            "review_id"
        ).to_pylist()
        assert [f["label"].bytes_list.value[0].decode() for f in features] == parquet.column("label").to_pylist()
        assert [CLASSES[f["label_id"].int64_list.value[0]] for f in features] == parquet.column("label").to_pylist()
