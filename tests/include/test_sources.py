"""Reading review sources (TSV, CSV, JSONL, Parquet; files, folders, globs) as strings."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.config import SHIPPED_REVIEWS
from reviewops.parsing import parse_dates
from reviewops.schema import CANONICAL, SOURCE_FILE, SOURCE_ROW
from reviewops.sources import SourceError, list_source_files, read_source, read_source_file, source_window

from .conftest import AppendRows
from .samples import HEADER, SLICE_ROWS, Record, as_row, monday, shipped_records, shipped_text, source_date

# Source column of the shipped file -> canonical column.
SHIPPED_TO_CANONICAL = {
    "": "review_id",
    "drugName": "product",
    "condition": "condition",
    "review": "text",
    "rating": "label",
    "date": "review_date",
    "usefulCount": "useful_count",
}


def canonical(records: list[Record]) -> list[dict[str, str]]:
    """What a reader must give for shipped records: the same strings, renamed."""
    return [{SHIPPED_TO_CANONICAL[k]: v for k, v in r.items()} for r in records]


def values(table: pa.Table) -> list[dict[str, str | None]]:
    rows: list[dict[str, str | None]] = table.select(list(CANONICAL)).to_pylist()
    return rows


def write_csv(records: list[Record], path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(as_row(r) for r in records)
    return path


def write_jsonl(records: list[Record], path: Path) -> Path:
    """JSON Lines the way a scraper writes them: ``uniqueID`` and numbers as numbers."""
    with open(path, "w", encoding="utf-8") as handle:
        for r in records:
            row = {("uniqueID" if k == "" else k): v for k, v in r.items()}
            row["uniqueID"] = int(r[""])
            row["usefulCount"] = int(r["usefulCount"])
            handle.write(json.dumps(row) + "\n")
    return path


def write_parquet(records: list[Record], path: Path) -> Path:
    """Parquet with canonical column names and typed id and count columns."""
    rows = canonical(records)
    table = pa.table(
        {
            "review_id": pa.array([int(r["review_id"]) for r in rows], pa.int64()),
            "product": [r["product"] for r in rows],
            "condition": [r["condition"] for r in rows],
            "text": [r["text"] for r in rows],
            "label": [r["label"] for r in rows],
            "review_date": [r["review_date"] for r in rows],
            "useful_count": pa.array([int(r["useful_count"]) for r in rows], pa.int64()),
        }
    )
    pq.write_table(table, path)
    return path


def test_shipped_file_reads_as_600_reviews_with_canonical_columns() -> None:
    table = read_source(str(SHIPPED_REVIEWS))

    assert table.num_rows == 600 == len(shipped_records())
    assert table.column_names == [*CANONICAL, SOURCE_FILE, SOURCE_ROW]
    assert all(f.type == pa.string() for f in table.schema if f.name != SOURCE_ROW)


def test_shipped_file_values_are_the_strings_in_the_file() -> None:
    table = read_source(str(SHIPPED_REVIEWS))

    assert values(table) == canonical(shipped_records())


def test_every_row_names_its_source_file_and_row() -> None:
    table = read_source(str(SHIPPED_REVIEWS))

    assert set(table.column(SOURCE_FILE).to_pylist()) == {str(SHIPPED_REVIEWS.resolve())}
    assert table.column(SOURCE_ROW).to_pylist() == list(range(1, table.num_rows + 1))


def test_slice_reads_as_its_reviews(review_slice: Path, slice_records: list[Record]) -> None:
    table = read_source_file(review_slice)

    assert table.num_rows == SLICE_ROWS
    assert values(table) == canonical(slice_records)


Writer = Callable[[list[Record], Path], Path]
WRITERS: dict[str, Writer] = {".csv": write_csv, ".jsonl": write_jsonl, ".parquet": write_parquet}


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_other_formats_of_the_same_reviews_read_the_same(
    suffix: str, tmp_path: Path, slice_records: list[Record]
) -> None:
    path = WRITERS[suffix](slice_records, tmp_path / f"reviews{suffix}")

    table = read_source_file(path)

    assert values(table) == canonical(slice_records)
    assert set(table.column(SOURCE_FILE).to_pylist()) == {str(path)}
    assert table.column(SOURCE_ROW).to_pylist() == list(range(1, SLICE_ROWS + 1))


def test_iso_dates_in_jsonl_and_date_columns_in_parquet_parse_to_the_review_dates(
    tmp_path: Path, slice_records: list[Record]
) -> None:
    days = [source_date(r["date"]) for r in slice_records]
    jsonl = tmp_path / "iso.jsonl"
    with open(jsonl, "w", encoding="utf-8") as handle:
        for r, day in zip(slice_records, days, strict=True):
            handle.write(
                json.dumps(
                    {
                        "id": r[""],
                        "drugName": r["drugName"],
                        "review": r["review"],
                        "rating": r["rating"],
                        "date": day.isoformat(),
                    }
                )
                + "\n"
            )
    parquet_tables = {
        "date32": pa.array(days, pa.date32()),
        "timestamp": pa.array([dt.datetime.combine(d, dt.time(9, 30)) for d in days], pa.timestamp("us")),
    }

    read = {"jsonl": read_source_file(jsonl)}
    for kind, column in parquet_tables.items():
        path = tmp_path / f"{kind}.parquet"
        pq.write_table(
            pa.table(
                {
                    "id": [r[""] for r in slice_records],
                    "drugName": [r["drugName"] for r in slice_records],
                    "review": [r["review"] for r in slice_records],
                    "rating": [r["rating"] for r in slice_records],
                    "date": column,
                }
            ),
            path,
        )
        read[kind] = read_source_file(path)

    for kind, table in read.items():
        assert parse_dates(table.column("review_date").to_pylist()) == days, kind


def test_optional_columns_may_be_absent(tmp_path: Path, slice_records: list[Record]) -> None:
    path = tmp_path / "required_only.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "drugName", "review", "rating", "date"])
        writer.writerows([r[""], r["drugName"], r["review"], r["rating"], r["date"]] for r in slice_records)

    table = read_source_file(path)

    assert table.column_names == [*CANONICAL, SOURCE_FILE, SOURCE_ROW]
    assert table.column("condition").null_count == table.column("useful_count").null_count == SLICE_ROWS
    assert table.column("review_id").to_pylist() == [r[""] for r in slice_records]


@pytest.mark.parametrize("dropped", ["", "drugName", "review", "rating", "date"])
def test_missing_required_column_is_refused_naming_file_and_column(
    dropped: str, tmp_path: Path, slice_records: list[Record]
) -> None:
    kept = [name for name in HEADER if name != dropped]
    path = tmp_path / "reviews.tsv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(kept)
        writer.writerows([r[name] for name in kept] for r in slice_records)

    with pytest.raises(SourceError) as raised:
        read_source_file(path)

    message = str(raised.value)
    assert str(path) in message
    assert f"missing required column(s) {SHIPPED_TO_CANONICAL[dropped]}" in message


def test_folder_source_reads_every_review_file_in_it(tmp_path: Path, slice_records: list[Record]) -> None:
    folder = tmp_path / "drop"
    (folder / "2017").mkdir(parents=True)
    half = SLICE_ROWS // 2
    (folder / "a.tsv").write_text(shipped_text(half), encoding="utf-8", newline="")
    write_jsonl(slice_records[half:], folder / "2017" / "b.jsonl")
    (folder / "README.txt").write_text("not reviews\n")
    (folder / ".partial.tsv").write_text("an upload in progress\n")

    table = read_source(str(folder))

    assert [p.name for p in list_source_files(str(folder))] == ["b.jsonl", "a.tsv"]
    assert table.num_rows == SLICE_ROWS
    assert sorted(table.column("review_id").to_pylist()) == sorted(r[""] for r in slice_records)
    by_file: dict[str, list[int]] = {}
    for row in table.select([SOURCE_FILE, SOURCE_ROW]).to_pylist():
        by_file.setdefault(Path(row[SOURCE_FILE]).name, []).append(row[SOURCE_ROW])
    assert by_file == {"a.tsv": list(range(1, half + 1)), "b.jsonl": list(range(1, SLICE_ROWS - half + 1))}


def test_glob_source_reads_the_matching_files(tmp_path: Path, slice_records: list[Record]) -> None:
    write_csv(slice_records[:10], tmp_path / "week1.csv")
    write_csv(slice_records[10:25], tmp_path / "week2.csv")
    write_csv(slice_records[25:], tmp_path / "other.csv")

    table = read_source(str(tmp_path / "week*.csv"))

    assert table.column("review_id").to_pylist() == [r[""] for r in slice_records[:25]]


def test_missing_source_and_empty_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        read_source(str(tmp_path / "nowhere.tsv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"no \.csv, \.tsv, \.jsonl or \.parquet files found"):
        read_source(str(tmp_path / "empty"))


def test_unsupported_and_unreadable_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    text = tmp_path / "reviews.txt"
    text.write_text("hello\n")
    broken = tmp_path / "reviews.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")

    with pytest.raises(SourceError, match=re.escape("unsupported file type '.txt'")):
        read_source_file(text)
    with pytest.raises(SourceError, match=re.escape(f"{broken}: cannot be read as parquet")):
        read_source_file(broken)


def test_source_window_covers_the_first_and_last_review_dates(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    days = [source_date(r["date"]) for r in slice_records]
    # A row whose date cannot be parsed belongs to no week: it does not widen the window.
    append_rows(review_slice, [[*as_row(slice_records[0])[:5], "not a date", "1"]])

    window = source_window(str(review_slice))

    assert window.start == monday(min(days))
    assert window.end == monday(max(days)) + dt.timedelta(days=7)
    assert all(window.contains(day) for day in days)


def test_source_window_of_a_source_without_dates_is_refused(tmp_path: Path, slice_records: list[Record]) -> None:
    path = tmp_path / "undated.tsv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(HEADER)
        writer.writerows([*as_row(r)[:5], "someday", r["usefulCount"]] for r in slice_records[:3])

    with pytest.raises(SourceError, match="no row has a parseable review date"):
        source_window(str(path))
