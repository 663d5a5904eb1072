"""Reading review sources (TSV, CSV, JSONL, Parquet; files, folders, globs) as strings."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.config import SHIPPED_REVIEWS
from reviewops.data.ingest import ERROR_SUFFIX, IngestParams, ingest_reviews, rejected_files_dir
from reviewops.data.parsing import parse_dates
from reviewops.data.schema import CANONICAL, SOURCE_FILE, SOURCE_ROW
from reviewops.data.sources import (
    MALFORMED,
    READ_SCHEMA,
    WRONG_TYPE,
    RejectedFile,
    SourceError,
    SourceFile,
    _repeated,
    list_source_files,
    read_source,
    read_source_file,
    scan_source,
    source_window,
)
from reviewops.data.windows import Window
from reviewops.storage.paths import Layout

from .conftest import AppendRows
from .samples import HEADER, SLICE_ROWS, Record, as_row, monday, shipped_records, shipped_text, source_date, tsv_line

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
    assert table.column_names == READ_SCHEMA.names
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

    assert table.column_names == READ_SCHEMA.names
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


def test_unsupported_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    text = tmp_path / "reviews.txt"
    text.write_text("hello\n")

    with pytest.raises(SourceError, match=re.escape(f"{text}: unsupported file type '.txt'")):
        read_source_file(text)


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


# -- files that cannot be read as a whole ------------------------------------------------

BROKEN_ROWS = 12  # real reviews in each broken file


def _slice_bytes() -> bytes:
    return shipped_text(BROKEN_ROWS).encode("utf-8")


def _delimited(delimiter: str, columns: tuple[str, ...] = HEADER) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([r[c] for c in columns] for r in shipped_records(BROKEN_ROWS))
    return out.getvalue().encode("utf-8")


def _latin1() -> bytes:
    # A Windows export: "é" as the single byte 0xE9, in the third review.
    data = _slice_bytes()
    third = data.index(shipped_records(3)[2]["review"][:20].encode())
    return data[:third] + b"Caf\xe9 " + data[third:]


def _latin1_line() -> int:
    data = _latin1()
    return data[: data.index(b"\xe9")].count(b"\n") + 1


def _zip(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, data)
    return out.getvalue()


def _parquet_bytes(extra: str = "extra") -> bytes:
    out = io.BytesIO()
    table = pa.table({"id": ["1"], "drugName": ["a"], "review": ["zzzz"], "rating": ["9"], "date": ["x"], extra: ["y"]})
    pq.write_table(table, out, compression="none")
    return out.getvalue()


def _not_utf8_parquet(text: bytes) -> bytes:
    """Parquet holding ``text`` with its first byte replaced by one that is not UTF-8."""
    return _parquet_bytes("qqqq").replace(text, b"\x80" + text[1:])


def _jsonl_lines(records: list[Record], drop: str = "") -> bytes:
    rows = [{("id" if k == "" else k): v for k, v in r.items() if k != drop} for r in records]
    return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")


# name -> (file name, content, fragments the one-line error must hold besides the path)
BROKEN: dict[str, tuple[str, Callable[[], bytes], tuple[str, ...]]] = {
    "empty": ("reviews.csv", lambda: b"", ("is empty",)),
    "blank lines only": ("reviews.tsv", lambda: b"\n \r\n\t\n", ("is empty",)),
    "garbage bytes": ("reviews.tsv", lambda: random.Random(7).randbytes(4096), ("is not UTF-8 text", "re-export")),
    "tab-separated named .csv": (
        "reviews.csv",
        _slice_bytes,
        ("missing required column(s) review_id, product, text", "tab-separated: name the file .tsv"),
    ),
    "comma-separated named .tsv": ("reviews.tsv", lambda: _delimited(","), ("comma-separated: name the file .csv",)),
    "semicolon-separated": ("reviews.csv", lambda: _delimited(";"), ("re-export it with commas",)),
    "missing date column": (
        "reviews.tsv",
        lambda: _delimited("\t", tuple(c for c in HEADER if c != "date")),
        ("missing required column(s) review_date",),
    ),
    "latin-1": ("reviews.tsv", _latin1, (f"byte 0xe9 on line {_latin1_line()}", "re-export it as UTF-8")),
    "gzip under .csv": ("reviews.csv", lambda: gzip.compress(_delimited(",")), ("gzip-compressed", "decompress")),
    "zip under .tsv": ("reviews.tsv", lambda: _zip("reviews.tsv", _slice_bytes()), ("zip archive", "decompress")),
    "gzip under .jsonl": (
        "reviews.jsonl",
        lambda: gzip.compress(_jsonl_lines(shipped_records(3))),
        ("gzip-compressed", "decompress"),
    ),
    "truncated parquet": (
        "reviews.parquet",
        lambda: _parquet_bytes()[: len(_parquet_bytes()) // 2],
        ("cannot be read as Parquet", "truncated"),
    ),
    "parquet with text that is not UTF-8": (
        "reviews.parquet",
        lambda: _not_utf8_parquet(b"zzzz"),
        ("cannot be read as Parquet", "Invalid UTF8", "re-export it with UTF-8 text"),
    ),
    "parquet with a column name that is not UTF-8": (
        "reviews.parquet",
        lambda: _not_utf8_parquet(b"qqqq"),
        ("cannot be read as Parquet", "re-export it with UTF-8 text"),
    ),
    "parquet named .csv": ("reviews.csv", _parquet_bytes, ("is a Parquet file", "rename it to .parquet")),
    "utf-16 without a byte-order mark": (
        "reviews.tsv",
        lambda: shipped_text(BROKEN_ROWS).encode("utf-16-le"),
        ("UTF-16 without a byte-order mark",),
    ),
    "utf-32": ("reviews.tsv", lambda: shipped_text(3).encode("utf-32"), ("UTF-32", "re-export it as UTF-8")),
    "a JSON array, not JSON Lines": (
        "reviews.json",
        lambda: json.dumps(shipped_records(3), indent=2).encode(),
        ("not JSON Lines", "one JSON object per line"),
    ),
    "jsonl without review texts": (
        "reviews.jsonl",
        lambda: _jsonl_lines(shipped_records(3), drop="review"),
        ("missing required column(s) text",),
    ),
}


def write_broken(case: str, folder: Path) -> Path:
    name, content, _ = BROKEN[case]
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content())
    return path.resolve()


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_file_that_cannot_be_read_gives_one_line_naming_the_file_and_the_fix(case: str, tmp_path: Path) -> None:
    path = write_broken(case, tmp_path)

    with pytest.raises(SourceError) as raised:
        read_source_file(path)

    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message and "\r" not in message
    for fragment in BROKEN[case][2]:
        assert fragment in message


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"), id="utf-8 with BOM"),
        pytest.param(lambda text: text.encode("utf-16"), id="utf-16 LE with BOM"),
        pytest.param(lambda text: b"\xfe\xff" + text.encode("utf-16-be"), id="utf-16 BE with BOM"),
    ],
)
@pytest.mark.parametrize("suffix", [".tsv", ".jsonl"])
def test_text_with_a_byte_order_mark_reads_like_utf_8(
    encode: Callable[[str], bytes], suffix: str, tmp_path: Path, slice_records: list[Record]
) -> None:
    if suffix == ".tsv":
        text = shipped_text(SLICE_ROWS)
    else:
        text = write_jsonl(slice_records, tmp_path / "plain.jsonl").read_text(encoding="utf-8")
    path = tmp_path / f"encoded{suffix}"
    path.write_bytes(encode(text))

    table = read_source_file(path)

    assert values(table) == canonical(slice_records)
    assert table.column(MALFORMED).null_count == SLICE_ROWS


# -- rows that cannot be split into fields ----------------------------------------------


@pytest.mark.parametrize("delimiter", ["\t", ","])
def test_rows_with_the_wrong_number_of_fields_are_kept_in_place_with_their_text(
    delimiter: str, tmp_path: Path, slice_records: list[Record]
) -> None:
    # Between real (some multi-line) reviews: a row cut short and a row with a field too many.
    short = [slice_records[0][""], slice_records[0]["drugName"], "cut short"]
    extra = [*as_row(slice_records[1]), "one field too many"]
    rows = [as_row(r) for r in slice_records[:10]] + [short] + [as_row(r) for r in slice_records[10:20]] + [extra]
    path = tmp_path / ("reviews.tsv" if delimiter == "\t" else "reviews.csv")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)

    table = read_source_file(path)

    assert table.column(SOURCE_ROW).to_pylist() == list(range(1, 23))
    read = table.to_pylist()
    assert [r[MALFORMED] is not None for r in read] == [i in (10, 21) for i in range(22)]
    assert read[10][MALFORMED] == f"3 fields, expected 7: {delimiter.join(short)}"
    assert read[21][MALFORMED].startswith("8 fields, expected 7: ")
    assert read[21][MALFORMED].endswith(f"{delimiter}one field too many")
    assert all(read[i][name] is None for i in (10, 21) for name in CANONICAL)
    good = [r for r in read if r[MALFORMED] is None]
    assert [r["review_id"] for r in good] == [r[""] for r in slice_records[:20]]
    assert [r["text"] for r in good] == [r["review"] for r in slice_records[:20]]


def test_a_file_whose_every_row_is_malformed_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "reviews.tsv"
    path.write_text(tsv_line(HEADER) + "just one field\nand\tthree\tfields\n", encoding="utf-8")

    table = read_source_file(path)

    assert table.column(SOURCE_ROW).to_pylist() == [1, 2]
    assert table.column(MALFORMED).to_pylist() == [
        "1 fields, expected 7: just one field",
        "3 fields, expected 7: and\tthree\tfields",
    ]


def test_a_header_alone_is_a_file_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "reviews.tsv"
    path.write_text("\t".join(HEADER), encoding="utf-8")  # no line end either

    table = read_source_file(path)

    assert table.num_rows == 0
    assert table.schema.equals(READ_SCHEMA)


def test_a_review_longer_than_a_read_block_is_read_whole(tmp_path: Path, slice_records: list[Record]) -> None:
    record = dict(slice_records[0], review="word " * 300_000)  # 1.5 MB in one field
    path = tmp_path / "reviews.tsv"
    path.write_text(tsv_line(HEADER) + tsv_line(as_row(record)) + tsv_line(as_row(slice_records[1])), encoding="utf-8")

    table = read_source_file(path)

    assert table.column("text").to_pylist() == [record["review"], slice_records[1]["review"]]


# -- JSON Lines and Parquet values of other types -------------------------------------------


def test_jsonl_values_are_read_as_found_and_lines_that_are_not_objects_are_kept(
    tmp_path: Path, slice_records: list[Record]
) -> None:
    base = {"id": "1", "drugName": "Valsartan", "review": slice_records[0]["review"], "rating": 9}
    lines = [
        json.dumps({**base, "date": "2011-05-30"}),
        json.dumps({**base, "id": 2, "date": "2011-05-30T18:45:00Z", "usefulCount": 7.0}),
        "",  # blank lines are not rows
        json.dumps({**base, "id": "3", "review": 42, "date": "May 30, 2011"}),
        json.dumps({**base, "id": "4", "review": ["a", "list"], "condition": {"name": "x"}, "date": "2011-05-30"}),
        '{"id": "5", "review": "unterminated',
        "[1, 2]",
        json.dumps({**base, "id": "7", "rating": True, "date": None}),
    ]
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    rows = read_source_file(path).to_pylist()

    assert [r[SOURCE_ROW] for r in rows] == list(range(1, 8))
    assert [r["review_id"] for r in rows] == ["1", "2", "3", "4", None, None, "7"]
    assert [r["review_date"] for r in rows] == ["2011-05-30", "2011-05-30T18:45:00Z", "May 30, 2011", "2011-05-30"] + [
        None
    ] * 3
    assert (rows[0]["label"], rows[1]["useful_count"], rows[2]["text"], rows[6]["label"]) == ("9", "7.0", "42", "true")
    assert [r[WRONG_TYPE] for r in rows] == [None, None, None, "text: list, condition: object", None, None, None]
    assert rows[3]["text"] == '["a", "list"]'
    assert rows[4][MALFORMED].startswith("not valid JSON (Unterminated string")
    assert rows[4][MALFORMED].endswith(lines[5])
    assert rows[5][MALFORMED] == "a JSON list, not an object: [1, 2]"


def test_nested_parquet_columns_are_kept_as_json_text_and_noted(tmp_path: Path) -> None:
    path = tmp_path / "reviews.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["1", "2"],
                "drugName": ["a", "b"],
                "review": pa.array([["good", "drug"], None], pa.list_(pa.string())),
                "rating": [9, 2],
                "date": ["2011-05-30", "2011-05-30"],
            }
        ),
        path,
    )

    rows = read_source_file(path).to_pylist()

    assert [r["text"] for r in rows] == ['["good", "drug"]', None]
    assert [r[WRONG_TYPE] for r in rows] == ["text: list<element: string>", None]
    assert [r["label"] for r in rows] == ["9", "2"]


# -- folders with a bad file ----------------------------------------------------------------


def test_a_bad_file_in_a_folder_is_rejected_and_the_good_ones_are_read(
    tmp_path: Path, slice_records: list[Record]
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.tsv").write_text(shipped_text(SLICE_ROWS), encoding="utf-8", newline="")
    bad = write_broken("gzip under .csv", folder / "b")
    write_jsonl(slice_records[:5], folder / "c.jsonl")

    items = list(scan_source(str(folder)))

    assert [type(i) for i in items] == [SourceFile, RejectedFile, SourceFile]
    rejected = items[1]
    assert isinstance(rejected, RejectedFile)
    assert rejected.path == bad
    with pytest.raises(SourceError) as raised:
        read_source_file(bad)
    assert rejected.as_dict() == {"file": str(bad), "error": str(raised.value)}
    assert read_source(str(folder)).num_rows == SLICE_ROWS + 5


def test_a_folder_without_a_readable_file_and_a_bad_single_file_are_refused(tmp_path: Path) -> None:
    for case in ("empty", "latin-1"):
        write_broken(case, tmp_path / "drop" / case)

    with pytest.raises(SourceError, match=r"drop: none of its 2 file\(s\) could be read; the first: .*is empty"):
        read_source(str(tmp_path / "drop"))
    single = tmp_path / "drop" / "latin-1" / "reviews.tsv"
    with pytest.raises(SourceError, match=re.escape(f"{single.resolve()}: is not UTF-8 text")):
        read_source(str(single))


# -- ingest: rejected files are quarantined whole, and nothing is written for a bad source ----


def test_ingest_quarantines_a_rejected_file_with_its_error_and_reads_the_others(
    tmp_path: Path, slice_records: list[Record]
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.tsv").write_text(shipped_text(SLICE_ROWS), encoding="utf-8", newline="")
    bad = write_broken("latin-1", folder / "late")
    broken_parquet = write_broken("truncated parquet", folder / "late")
    data_root = tmp_path / "data"
    window = source_window(str(folder))

    result, inputs = ingest_reviews(IngestParams(str(folder), str(data_root), window))

    errors = {}
    for path in (broken_parquet, bad):
        with pytest.raises(SourceError) as raised:
            read_source_file(path)
        errors[path] = str(raised.value)
    assert result.metrics["files_rejected"] == [{"file": str(p), "error": e} for p, e in errors.items()]
    assert (result.metrics["files_read"], result.metrics["rows_read"]) == (1, SLICE_ROWS)
    kept = rejected_files_dir(data_root, window.key)
    for path, error in errors.items():
        assert (kept / path.name).read_bytes() == path.read_bytes()
        assert (kept / (path.name + ERROR_SUFFIX)).read_text(encoding="utf-8") == error + "\n"
    assert [(a.kind, a.path) for a in result.outputs] == [
        ("raw", Layout(data_root).raw(window.key)),
        ("rejected_file", kept / "reviews.parquet"),
        ("rejected_file", kept / "reviews.tsv"),
    ]
    assert sorted(a.kind for a in inputs) == ["rejected_source", "rejected_source", "source"]
    assert pq.read_table(Layout(data_root).raw(window.key)).column("review_id").to_pylist() == [
        r[""] for r in slice_records
    ]

    bad.unlink()  # the source is fixed: a re-run of the same batch leaves no stale copies
    broken_parquet.unlink()
    result, _ = ingest_reviews(IngestParams(str(folder), str(data_root), window))

    assert result.metrics["files_rejected"] == []
    assert not rejected_files_dir(data_root, window.key).exists()


@pytest.mark.parametrize("source", ["single", "folder"])
def test_ingest_of_a_source_that_cannot_be_read_writes_nothing(source: str, tmp_path: Path) -> None:
    bad = write_broken("gzip under .csv", tmp_path / "drop")
    data_root = tmp_path / "data"
    window = source_window(str(SHIPPED_REVIEWS))

    with pytest.raises(SourceError, match="gzip-compressed"):
        ingest_reviews(IngestParams(str(bad if source == "single" else bad.parent), str(data_root), window))

    assert not data_root.exists()


# -- a stray quote costs its own row, not the rows after it ----------------------------------

LONG_ROWS = 200_000  # the file
SHORTER_ROWS = 50_000  # long enough for the four layouts of the same damage
STRAY_ROW = 5


def long_file(path: Path, *, quoted_texts: bool, rows: int = LONG_ROWS) -> Path:
    """``rows`` real reviews (their first words, ids 1..rows) written as an export writes
    them; the text of row STRAY_ROW opens a quote it never closes. With ``quoted_texts``
    every text is in scrape quotes, as in the shipped file (so the stray quote meets the
    next row's quotes); without, there is no other quote for it to meet."""
    delimiter = "\t" if path.suffix == ".tsv" else ","
    shortened = []
    for record in shipped_records():
        words = " ".join(record["review"].replace('"', "").split()[:8])
        shortened.append(as_row(dict(record, review=f'"{words}"' if quoted_texts else words)))
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows([str(n), *shortened[n % len(shortened)][1:]] for n in range(1, STRAY_ROW))
    # The quote that opens and is never closed, in a row otherwise without quotes.
    stray = shipped_records()[STRAY_ROW % len(shortened)]
    words = " ".join(stray["review"].replace('"', "").split()[:8])
    record = dict(stray, **{"": str(STRAY_ROW)}, review='"' + words, date="2014-06-04")
    out.write(delimiter.join(as_row(dict(record, condition=record["condition"].replace(",", "")))) + "\n")
    writer.writerows([str(n), *shortened[n % len(shortened)][1:]] for n in range(STRAY_ROW + 1, rows + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    return path


def assert_only_the_stray_row_is_malformed(table: pa.Table, path: Path, rows: int) -> None:
    assert table.num_rows == rows
    read = table.select(["review_id", SOURCE_ROW, MALFORMED]).to_pydict()
    malformed = [(n, m) for n, m in zip(read[SOURCE_ROW], read[MALFORMED], strict=True) if m is not None]
    assert [n for n, _ in malformed] == [STRAY_ROW]
    assert malformed[0][1].startswith(f"unbalanced quote: the record on line {STRAY_ROW + 1} runs into the lines after")
    assert malformed[0][1].endswith(path.read_text(encoding="utf-8").splitlines()[STRAY_ROW])  # its own line only
    # Every other row keeps its own number: its id is its number.
    assert read[SOURCE_ROW] == list(range(1, rows + 1))
    assert [i for i, n in zip(read["review_id"], read[SOURCE_ROW], strict=True) if i != str(n)] == [None]


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
@pytest.mark.parametrize("quoted_texts", [False, True], ids=["plain texts", "quoted texts"])
def test_a_stray_quote_early_in_a_long_file_costs_only_its_own_row(
    suffix: str, quoted_texts: bool, tmp_path: Path
) -> None:
    path = long_file(tmp_path / f"reviews{suffix}", quoted_texts=quoted_texts, rows=SHORTER_ROWS)

    table = read_source_file(path)

    assert_only_the_stray_row_is_malformed(table, path, SHORTER_ROWS)


def test_a_stray_quote_quarantines_one_row_and_the_count_check_holds(tmp_path: Path) -> None:
    """The issue's case end to end: 200,000 TSV rows, an unclosed quote in row 5, ingest and validate."""
    from reviewops.data.validate import ValidateParams, validate_reviews

    path = long_file(tmp_path / "source" / "reviews.tsv", quoted_texts=False)
    data_root = tmp_path / "data"
    window = Window(dt.date(2008, 1, 7), dt.date(2018, 1, 1))  # every shipped review's week

    raw, _ = ingest_reviews(IngestParams(str(path), str(data_root), window))
    assert_only_the_stray_row_is_malformed(read_source_file(path), path, LONG_ROWS)
    checked = validate_reviews(ValidateParams(str(data_root), window.key, today=dt.date(2024, 6, 3)), raw.output("raw"))

    assert raw.metrics["rows_in_source"] == raw.metrics["rows_read"] == LONG_ROWS
    assert checked.metrics["rows_read"] == checked.metrics["rows_valid"] + checked.metrics["rows_quarantined"]
    assert (checked.metrics["rows_valid"], checked.metrics["reasons"]) == (LONG_ROWS - 1, {"malformed_row": 1})
    quarantined = pq.read_table(Layout(data_root).quarantine(window.key)).to_pylist()
    assert [(q["reason"], q[SOURCE_ROW]) for q in quarantined] == [("malformed_row", STRAY_ROW)]


def test_a_stray_quote_leaves_a_real_multi_line_review_after_it_whole(tmp_path: Path) -> None:
    # The stray quote's value would close at the opening quote of a real review two rows
    # on, whose text runs over several lines: that review must still be read whole.
    records = [r for r in shipped_records() if "\n" not in r["review"]][:8]
    multi_line = next(r for r in shipped_records() if "\n" in r["review"])
    stray = as_row(dict(records[4], review='"unclosed ' + records[4]["review"].strip('"')))
    path = tmp_path / "reviews.tsv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(tsv_line(HEADER) + "".join(tsv_line(as_row(r)) for r in records[:4]))
        handle.write("\t".join(stray) + "\n")  # written by hand: the quote is not escaped
        handle.write(tsv_line(as_row(records[5])) + tsv_line(as_row(multi_line)) + tsv_line(as_row(records[6])))

    read = read_source_file(path).to_pylist()

    assert [r[SOURCE_ROW] for r in read] == list(range(1, 9))
    assert [r[MALFORMED] is not None for r in read] == [False] * 4 + [True] + [False] * 3
    expected = [r[""] for r in records[:4]] + [None] + [records[5][""], multi_line[""], records[6][""]]
    assert [r["review_id"] for r in read] == expected
    assert read[6]["text"] == multi_line["review"]


def test_a_file_of_sound_multi_line_reviews_reads_as_before(tmp_path: Path) -> None:
    # Every shipped review, some over several lines (with \r\r\n inside): nothing damaged.
    table = read_source_file(SHIPPED_REVIEWS)

    assert table.num_rows == 600
    assert table.column(MALFORMED).null_count == 600
    assert table.column("text").to_pylist() == [r["review"] for r in shipped_records()]


# -- two columns for one field: refused, never a silent pick -------------------------------


@pytest.mark.parametrize(
    ("header", "named"),
    [
        # The same name twice.
        (("", "drugName", "condition", "review", "rating", "date", "usefulCount", "review"), "'review' and 'review'"),
        # A pandas index written with an export that has its own id column: both give review_id.
        (("", "uniqueID", "drugName", "condition", "review", "rating", "date", "usefulCount"), "'' and 'uniqueID'"),
    ],
    ids=["repeated name", "two aliases"],
)
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".parquet"])
def test_two_columns_giving_one_field_are_refused_naming_them(
    header: tuple[str, ...], named: str, suffix: str, tmp_path: Path, slice_records: list[Record]
) -> None:
    rows = [[r[name] if name in r else r[""] for name in header] for r in slice_records[:5]]
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".parquet":
        pq.write_table(
            pa.Table.from_arrays([pa.array(column) for column in zip(*rows, strict=True)], names=header), path
        )
    else:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writerow(header)
            writer.writerows(rows)

    with pytest.raises(SourceError) as raised:
        read_source_file(path)

    assert str(raised.value).startswith(f"{path}: columns {named} all give ")
    assert str(raised.value).endswith("keep one of them and deliver the file again")


def test_a_json_line_with_two_keys_for_one_field_is_a_malformed_row(tmp_path: Path) -> None:
    base = {"drugName": "a", "review": "Worked well.", "rating": "9", "date": "2011-05-30"}
    lines = [
        json.dumps({"id": "1", **base}),
        '{"id": "2", "id": "3", "drugName": "a", "review": "x", "rating": "9", "date": "2011-05-30"}',
        json.dumps({"id": "4", "uniqueID": "5", **base}),
    ]
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    rows = read_source_file(path).to_pylist()

    assert [r[MALFORMED] for r in rows] == [
        None,
        f"keys 'id' and 'id' all give review_id: {lines[1]}",
        f"keys 'id' and 'uniqueID' all give review_id: {lines[2]}",
    ]


# -- a file that cannot be read: its error says what is wrong, never what it holds ---------


@pytest.mark.parametrize(
    ("name", "content", "secret"),
    [
        ("keys.csv", "AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI\n", "AKIAIOSFODNN7EXAMPLE"),
        ("keys.tsv", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n", "OPENSSH"),
        ("keys.jsonl", '["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI"]\n', "AKIAIOSFODNN7EXAMPLE"),
        ("keys.json", '{"client_email": "svc@example.iam", "private_key": "MIIEvQ"}\n', "private_key"),
        ("keys.parquet", None, "hunter2"),
    ],
)
def test_an_unreadable_files_error_names_the_problem_not_the_content(
    name: str, content: str | None, secret: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"user": ["admin"], "hunter2": ["x"]}), path)
    else:
        path.write_text(content, encoding="utf-8")

    with pytest.raises(SourceError) as raised:
        read_source_file(path)

    assert str(raised.value).startswith(f"{path}: ")
    assert secret not in str(raised.value)


@pytest.mark.parametrize("text", ["/data/drop/reviews.tsv", "é/日本.csv", ""])
@pytest.mark.parametrize("n", [0, 1, 3, 70_000])
def test_the_source_file_column_is_the_array_pa_repeat_gives(text: str, n: int) -> None:
    built = _repeated(text, n)
    built.validate(full=True)
    assert built.equals(pa.repeat(pa.scalar(text, pa.string()), n))
