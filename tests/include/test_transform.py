"""Transform: cleaned text, repeated reviews set aside, one curated partition a week."""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewops.config import SHIPPED_REVIEWS
from reviewops.data import parsing
from reviewops.data.ingest import IngestParams, ingest_reviews
from reviewops.data.parsing import clean_text
from reviewops.data.schema import CURATED_SCHEMA, QUARANTINE_SCHEMA
from reviewops.data.sources import read_source_file, source_window
from reviewops.data.transform import (
    DUPLICATE_TEXT,
    TransformParams,
    curate_frame,
    curate_table,
    curated_weeks,
    transform_reviews,
)
from reviewops.data.validate import ValidateParams, validate_frame, validate_reviews
from reviewops.data.windows import ONE_WEEK, Window
from reviewops.lineage.record import Artifact
from reviewops.pipeline import curate_source
from reviewops.storage.io import read_table, sha256_file, write_parquet
from reviewops.storage.paths import Layout

from .conftest import AppendRows
from .samples import SLICE_ROWS, TODAY, Record, as_row, monday, source_date

ENTITY = re.compile(r"&(#\d+|[a-z]+);")


def validated_frame(path: Path) -> pd.DataFrame:
    outcome = validate_frame(read_source_file(path).to_pandas(), 10_000, TODAY)
    assert outcome.quarantined.empty
    return outcome.valid


def validated_artifact(source: Path, data_root: Path) -> Artifact:
    """The slice through ingest's and validate's file contracts: the transform's input."""
    raw = write_parquet(read_source_file(source), Layout(data_root).raw("batch"))
    result = validate_reviews(ValidateParams(str(data_root), "batch", today=TODAY), Artifact.of_file(raw, "raw"))
    assert result.metrics["rows_quarantined"] == 0
    return result.outputs[0]


def busy_window(records: list[Record]) -> Window:
    """From a week before the slice's busiest week to three weeks after it."""
    weeks = Counter(monday(source_date(r["date"])) for r in records)
    busiest = max(weeks, key=lambda week: (weeks[week], week))
    return Window(busiest - ONE_WEEK, busiest + 3 * ONE_WEEK)


def ids_by_week(records: list[Record], window: Window) -> dict[dt.date, set[str]]:
    expected: dict[dt.date, set[str]] = {week: set() for week in window.weeks()}
    for r in records:
        week = monday(source_date(r["date"]))
        if week in expected:
            expected[week].add(r[""])
    return expected


def test_curate_frame_decodes_text_and_keeps_every_distinct_review(
    review_slice: Path, slice_records: list[Record]
) -> None:
    valid = validated_frame(review_slice)

    curated, duplicates = curate_frame(valid)

    assert duplicates.empty
    assert sorted(curated["review_id"]) == sorted(r[""] for r in slice_records)
    texts = dict(zip(curated["review_id"], curated["text"], strict=True))
    for r in slice_records:
        assert texts[r[""]] == clean_text(r["review"])
        assert ENTITY.search(texts[r[""]]) is None
        assert not texts[r[""]].startswith('"')
    assert list(curated["review_date"]) == sorted(curated["review_date"])


def test_curate_frame_sets_aside_later_repeats_of_the_same_text_for_the_same_product(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    a, b, c = slice_records[1], slice_records[2], slice_records[3]
    day_after_a = (source_date(a["date"]) + dt.timedelta(days=1)).strftime("%B %d, %Y")
    day_before_b = (source_date(b["date"]) - dt.timedelta(days=1)).strftime("%B %d, %Y")
    respelled = a["review"].replace("&rsquo;", "’").replace(". ", ".   ")
    assert respelled != a["review"]
    append_rows(
        review_slice,
        [
            # A later copy of a under another id, spelled differently (case, entity, spacing).
            ["800001", a["drugName"].upper(), a["condition"], respelled, a["rating"], day_after_a, "0"],
            # An earlier copy of b: this one is the original.
            ["800002", b["drugName"], b["condition"], b["review"], b["rating"], day_before_b, "3"],
            # c's text about another product is another review.
            ["800003", "Another product", c["condition"], c["review"], c["rating"], c["date"], "1"],
        ],
    )
    rows = validated_frame(review_slice)

    curated, duplicates = curate_frame(rows)

    assert len(curated) + len(duplicates) == len(rows) == SLICE_ROWS + 3
    details = dict(zip(duplicates["review_id"], duplicates["detail"], strict=True))
    assert details == {
        "800001": f"same product and text as review_id {a['']}",
        b[""]: "same product and text as review_id 800002",
    }
    assert set(duplicates["reason"]) == {DUPLICATE_TEXT}
    kept = set(curated["review_id"])
    assert {a[""], "800002", "800003", c[""]} <= kept
    assert not {"800001", b[""]} & kept


def test_repeats_are_told_apart_by_their_whole_text_not_its_ends() -> None:
    """Texts are grouped by their length and ends first: texts that share those but differ
    inside are different reviews; texts that differ only in case, ASCII or not, repeat."""
    middle = "x" * 40
    texts = [
        f"Same start of a long review {middle} and the same end of it.",
        f"Same start of a long review {middle.replace('x', 'y', 1)} and the same end of it.",
        f"SAME START of a long review {middle} and the same END of it.",
        "Zoë İ short",
        "ZOË İ SHORT",
        "zoë i̇ short",  # what "İ".lower() gives: the same review as the two above
        "ab",
        "AB",
    ]
    day = dt.date(2017, 12, 11)
    rows = pa.table(
        {
            "review_id": [str(i) for i in range(len(texts))],
            "product": ["P"] * len(texts),
            "condition": [None] * len(texts),
            "text": texts,
            "label": ["positive"] * len(texts),
            "review_date": [day] * len(texts),
            "week": [day] * len(texts),
            "useful_count": [1] * len(texts),
            "source_file": ["f"] * len(texts),
            "source_row": list(range(1, len(texts) + 1)),
        },
        schema=CURATED_SCHEMA,
    )

    curated, duplicates = curate_frame(rows.to_pandas())

    assert list(curated["review_id"]) == ["0", "1", "3", "6"]
    assert dict(zip(duplicates["review_id"], duplicates["detail"], strict=True)) == {
        "2": "same product and text as review_id 0",
        "4": "same product and text as review_id 3",
        "5": "same product and text as review_id 3",
        "7": "same product and text as review_id 6",
    }


def test_texts_that_lowercase_alike_are_repeats_whatever_their_length_in_bytes() -> None:
    """Texts are keyed by their bytes, lowercased; those with characters other than ASCII
    by Python's lowercasing, which may change their length ("İ")."""
    texts = ["Ab" * 30, "aB" * 30, "Zoë İ", "zoë i̇", "x" * 23, "X" * 23, "é" * 9, "É" * 9, "", "q"]
    day = dt.date(2017, 12, 11)
    n = len(texts)
    columns: dict[str, list[Any]] = {"review_id": [str(i) for i in range(n)], "product": ["P"] * n}
    columns |= {"condition": [None] * n, "text": texts, "label": ["positive"] * n, "review_date": [day] * n}
    columns |= {"week": [day] * n, "useful_count": [1] * n, "source_file": ["f"] * n, "source_row": list(range(n))}
    rows = pa.Table.from_batches(pa.table(columns, schema=CURATED_SCHEMA).to_batches(max_chunksize=3))

    curated, duplicates = curate_table(rows)

    assert curated.column("review_id").to_pylist() == ["0", "2", "4", "6", "8", "9"]
    assert duplicates.column("review_id").to_pylist() == ["1", "3", "5", "7"]


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data(), chunk_rows=st.integers(1, 7), total=st.integers(0, 40), min_run=st.sampled_from([1, 3, 64]))
def test_rows_are_taken_as_arrow_takes_them_one_array_a_column(
    data: st.DataObject, chunk_rows: int, total: int, min_run: int
) -> None:
    """Rows that run on are sliced, scattered ones taken chunk by chunk: either way the
    rows asked for, in that order, each column one array (as the week files are written)."""
    strings = [None if i % 5 == 0 else "t" * (i % 4) + str(i) for i in range(total)]
    table = pa.table({"n": pa.array(range(total), pa.int64()), "s": pa.array(strings, pa.string())})
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=chunk_rows), table.schema)
    # A column chunked unlike the others.
    other_chunks = [pa.array(strings[i : i + 3], pa.string()) for i in range(0, total, 3)]
    chunked = chunked.set_column(1, "s", pa.chunked_array(other_chunks, pa.string()))
    runs = st.builds(lambda a, n: list(range(a, min(a + n, total))), st.integers(0, total), st.integers(0, 40))
    scattered = st.lists(st.integers(0, total - 1), max_size=30) if total else st.just([])
    rows = np.array(data.draw(st.one_of(runs, scattered, st.permutations(range(total)))), np.int64)

    with mock.patch.object(parsing, "_MIN_RUN", min_run):
        taken = parsing.take_table_rows(chunked, rows)

    assert taken.to_pylist() == table.take(pa.array(rows, pa.int64())).to_pylist()
    assert all(column.num_chunks == 1 for column in taken.columns)


def test_transform_writes_one_partition_per_week_of_the_window_including_empty_weeks(
    tmp_path: Path, review_slice: Path, slice_records: list[Record]
) -> None:
    data_root = tmp_path / "data"
    validated = validated_artifact(review_slice, data_root)
    window = busy_window(slice_records)
    expected = ids_by_week(slice_records, window)
    assert any(expected.values()) and not all(expected.values()), "the window must hold full and empty weeks"

    result = transform_reviews(TransformParams(str(data_root), window), validated)

    layout = Layout(data_root)
    curated = [a for a in result.outputs if a.kind == "curated"]
    assert [a.path for a in curated] == [layout.curated(week.isoformat()) for week in window.weeks()]
    assert curated_weeks(str(data_root)) == {week.isoformat(): len(ids) for week, ids in expected.items()}
    for week, ids in expected.items():
        table = pq.read_table(layout.curated(week.isoformat()))
        assert table.schema.equals(CURATED_SCHEMA)
        assert set(table.column("review_id").to_pylist()) == ids
        assert set(table.column("week").to_pylist()) <= {week}
    assert result.metrics["weeks_written"] == len(expected)
    assert result.metrics["weeks_with_reviews"] == sum(1 for ids in expected.values() if ids)


def test_transform_writes_the_repeats_it_set_aside_to_the_quarantine(
    tmp_path: Path, review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    record = slice_records[0]
    later = (source_date(record["date"]) + dt.timedelta(days=2)).strftime("%B %d, %Y")
    other = slice_records[5]
    append_rows(
        review_slice,
        [
            ["800001", *as_row(record)[1:5], later, "4"],
            # Another review nobody has marked useful yet: its useful_count is null.
            ["800002", "Another product", *as_row(other)[2:6], ""],
        ],
    )
    data_root = tmp_path / "data"

    result = transform_reviews(
        TransformParams(str(data_root), Window.week(monday(source_date(record["date"])))),
        validated_artifact(review_slice, data_root),
    )

    (quarantine,) = [a for a in result.outputs if a.kind == "quarantine"]
    table = pq.read_table(quarantine.path)
    assert table.schema.equals(QUARANTINE_SCHEMA)
    assert table.select(["review_id", "reason", "useful_count", "review_date"]).to_pylist() == [
        {
            "review_id": "800001",
            "reason": DUPLICATE_TEXT,
            "useful_count": "4",
            "review_date": source_date(later).isoformat(),
        },
    ]
    assert result.metrics["rows_duplicate_text"] == 1
    assert result.metrics["rows_curated"] == SLICE_ROWS + 1


def test_rerunning_a_window_replaces_its_partitions_with_the_same_content(
    tmp_path: Path, review_slice: Path, slice_records: list[Record]
) -> None:
    data_root = tmp_path / "data"
    validated = validated_artifact(review_slice, data_root)
    window = busy_window(slice_records)
    params = TransformParams(str(data_root), window)
    layout = Layout(data_root)
    paths = [layout.curated(week.isoformat()) for week in window.weeks()]

    first_run = transform_reviews(params, validated)
    first = [pq.read_table(p) for p in paths]
    # A stale earlier version of a week (here: emptied) must not survive a re-run.
    busiest = max(range(len(paths)), key=lambda i: first[i].num_rows)
    write_parquet(CURATED_SCHEMA.empty_table(), paths[busiest])
    assert not pq.read_table(paths[busiest]).equals(first[busiest])

    second_run = transform_reviews(params, validated)
    second = [pq.read_table(p) for p in paths]

    assert all(a.equals(b, check_metadata=True) for a, b in zip(first, second, strict=True))
    # Same bytes too, so the sha256 in the lineage record of either run verifies the files.
    assert [a.sha256 for a in second_run.outputs] == [a.sha256 for a in first_run.outputs]
    assert sorted(layout.curated_dir().glob("week=*/*")) == sorted(paths)


@pytest.mark.parametrize("with_null_count", [False, True])
def test_curated_partitions_hold_typed_values(
    with_null_count: bool, tmp_path: Path, review_slice: Path, slice_records: list[Record]
) -> None:
    data_root = tmp_path / "data"
    validated = validated_artifact(review_slice, data_root)
    if with_null_count:  # a source without usefulCount for some rows
        table = pq.read_table(validated.path)
        counts = table.column("useful_count").to_pylist()
        counts[0] = None
        table = table.set_column(
            table.schema.get_field_index("useful_count"), "useful_count", pa.array(counts, pa.int64())
        )
        validated = Artifact.of_file(write_parquet(table, validated.path), "validated")
    record = slice_records[0]
    week = monday(source_date(record["date"]))

    transform_reviews(TransformParams(str(data_root), Window.week(week)), validated)

    rows = pq.read_table(Layout(data_root).curated(week.isoformat())).to_pylist()
    row = next(r for r in rows if r["review_id"] == record[""])
    assert row["review_date"] == source_date(record["date"])
    assert row["week"] == week
    assert row["useful_count"] == (None if with_null_count else int(record["usefulCount"]))
    assert row["text"] == clean_text(record["review"])
    assert row["condition"] == record["condition"]


# -- a batch is published whole or not at all ----------------------------------------------


def full_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """Parquet writes fail like a full disk from the ``writes``-th row group on (every
    Parquet file is written through ``ParquetWriter.write_table``, ``pq.write_table``
    too): what was written so far stays in the file, then OSError(ENOSPC)."""
    real = pq.ParquetWriter.write_table
    done = []

    def write_table(self: pq.ParquetWriter, table: pa.Table, *args: Any, **kwargs: Any) -> None:
        done.append(table.num_rows)
        if len(done) < writes:
            real(self, table, *args, **kwargs)
            return
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)


def curated_files(data_root: Path) -> dict[str, str]:
    """Every file a reader can find under the data root's curated and quarantine folders,
    with its sha256; and no temporary or staging file anywhere under the data root."""
    leftovers = [p for p in data_root.rglob("*") if p.name.endswith((".tmp", ".staging"))]
    assert not leftovers, f"left behind: {leftovers}"
    found = [*Layout(data_root).curated_dir().rglob("*"), *(data_root / "quarantine").rglob("duplicates.parquet")]
    return {str(p.relative_to(data_root)): sha256_file(p) for p in sorted(found) if p.is_file()}


def edited(validated: Artifact, data_root: Path) -> Artifact:
    """The same reviews with every text edited: a batch whose partitions all change."""
    table = read_table(validated.path)
    texts = [f"{t} (edited)" for t in table.column("text").to_pylist()]
    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    return Artifact.of_file(write_parquet(table, Layout(data_root).validated("edited")), "validated")


def test_a_full_disk_midway_publishes_no_partition_and_the_retry_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_root = tmp_path / "data"
    curate_source(data_root)  # the shipped history: 510 weeks
    before = curated_files(data_root)
    window = source_window(str(SHIPPED_REVIEWS))
    batch = edited(Artifact.of_file(Layout(data_root).validated(window.key), "validated"), data_root)

    full_disk_after(monkeypatch, writes=200)
    with pytest.raises(OSError) as raised:
        transform_reviews(TransformParams(str(data_root), window), batch)
    assert raised.value.errno == errno.ENOSPC
    assert curated_files(data_root) == before  # every partition as it was, none half new

    monkeypatch.undo()  # space freed: the retry completes
    result = transform_reviews(TransformParams(str(data_root), window), batch)

    after = curated_files(data_root)
    assert after.keys() == before.keys()
    assert all(after[k] != before[k] for k in before if pq.read_metadata(data_root / k).num_rows)
    for artifact in result.outputs:
        assert artifact.sha256 == sha256_file(artifact.path)  # the record describes what is published


def test_a_full_disk_on_a_first_load_leaves_no_curated_week(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_root = tmp_path / "data"
    window = source_window(str(SHIPPED_REVIEWS))
    validated = ingested_and_validated(data_root, window)

    full_disk_after(monkeypatch, writes=300)
    with pytest.raises(OSError, match="No space left on device"):
        transform_reviews(TransformParams(str(data_root), window), validated)

    assert curated_files(data_root) == {}
    assert curated_weeks(str(data_root)) == {}


def test_a_transform_killed_midway_publishes_no_partition_and_the_next_run_clears_what_it_left(
    tmp_path: Path,
) -> None:
    data_root = tmp_path / "data"
    window = source_window(str(SHIPPED_REVIEWS))
    validated = ingested_and_validated(data_root, window)
    code = textwrap.dedent(
        f"""
        import datetime as dt, os, signal
        import pyarrow.parquet as pq
        from pathlib import Path
        from reviewops.data.transform import TransformParams, transform_reviews
        from reviewops.data.windows import Window
        from reviewops.lineage.record import Artifact
        real, done = pq.ParquetWriter.write_table, []
        def write_table(*args, **kwargs):
            done.append(1)
            if len(done) == 250:
                os.kill(os.getpid(), signal.SIGKILL)
            real(*args, **kwargs)
        pq.ParquetWriter.write_table = write_table
        window = Window(*map(dt.date.fromisoformat, {[window.start.isoformat(), window.end.isoformat()]!r}))
        transform_reviews(TransformParams({str(data_root)!r}, window), Artifact.of_file(Path({str(validated.path)!r}), "validated"))
        """
    )
    killed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    assert not Layout(data_root).curated_dir().exists()
    assert [p.name for p in data_root.glob(".curated.*.staging")], "the kill should leave its staging folder"

    transform_reviews(TransformParams(str(data_root), window), validated)  # the retry

    assert len(curated_files(data_root)) == len(list(window.weeks())) + 1  # no leftovers either


def ingested_and_validated(data_root: Path, window: Window) -> Artifact:
    """The shipped reviews ingested and validated (as the initial load does) into ``data_root``."""
    raw, _ = ingest_reviews(IngestParams(str(SHIPPED_REVIEWS), str(data_root), window))
    checked = validate_reviews(ValidateParams(str(data_root), window.key), raw.output("raw"))
    return checked.output("validated")
