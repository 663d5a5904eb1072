"""Properties of reading and validating: no input crashes the reader with anything but a
SourceError, and no row is ever lost between the file and valid + quarantined."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from reviewops.data import validate as v
from reviewops.data.schema import CANONICAL, QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_ROW
from reviewops.data.sources import MALFORMED, READ_SCHEMA, WRONG_TYPE, SourceError, read_source_file
from reviewops.data.validate import VALIDATED_SCHEMA, validate_frame

from .samples import HEADER, TODAY

MAX_CHARS = 200  # small, so text_too_long is reachable
REASONS = {
    v.MALFORMED_ROW,
    v.MISSING_FIELD,
    v.BAD_DATE,
    v.FUTURE_DATE,
    v.TOO_OLD_DATE,
    v.UNKNOWN_LABEL,
    v.BAD_TYPE,
    v.CONTROL_CHARACTERS,
    v.EMPTY_TEXT,
    v.TEXT_TOO_LONG,
    v.DUPLICATE_ID_CONFLICT,
    v.EXACT_DUPLICATE,
}
# No example database and Hypothesis' caches in the temp folder: nothing is written into
# the checkout. Example counts keep the whole file under about 20 seconds.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "reviewops-hypothesis")


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# -- strategies ------------------------------------------------------------------------------

# What real review text is made of, and what breaks naive readers: control characters,
# quotes (the scrape's triple quotes too), delimiters, line ends, HTML entities.
PIECES = ["\t", "\n", "\r", "\r\n", '"', '"""', ",", "\x00", "\x07", "\x1b", "\x7f", "&amp;", "&#039;", "&quot;", " "]
texts = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(PIECES)), max_size=10).map("".join)
dates = st.one_of(
    st.dates(min_value=dt.date(1, 1, 1)).map(lambda d: d.strftime("%B %d, %Y")),
    st.dates().map(dt.date.isoformat),
    st.datetimes().map(lambda d: d.isoformat()),
    texts,
)
labels = st.one_of(
    st.sampled_from(["positive", "neutral", "negative", "POSITIVE"]), st.integers(-2, 12).map(str), texts
)
counts = st.one_of(st.just(""), st.integers(-3, 2**64).map(str), texts)
ids = st.one_of(st.sampled_from(["1", "2", "3"]), st.integers(0, 10**6).map(str), texts)  # repeats on purpose
products = st.one_of(st.sampled_from(["Valsartan", "Nubain"]), texts)
rows = st.lists(st.tuples(ids, products, texts, texts, labels, dates, counts), max_size=12)


def _delimited(records: list[tuple[str, ...]], delimiter: str) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter)  # "\r\n" line ends: a lone "\r" in a value is quoted too
    writer.writerow(HEADER)
    writer.writerows(records)
    return out.getvalue().encode("utf-8")


def _jsonl(records: list[tuple[str, ...]], ascii_only: bool) -> bytes:
    lines = [json.dumps(dict(zip(HEADER, r, strict=True)), ensure_ascii=ascii_only) for r in records]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _read(data: bytes, suffix: str) -> pa.Table | None:
    """The file read, or None when the reader refused it with a SourceError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"reviews{suffix}"
        path.write_bytes(data)
        try:
            table = read_source_file(path)
        except SourceError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"{path}: ")
            return None
    assert table.schema.equals(READ_SCHEMA)
    assert table.column(SOURCE_ROW).to_pylist() == list(range(1, table.num_rows + 1))
    return table


def _accounted(frame: pd.DataFrame) -> None:
    """Every row ends valid or quarantined, exactly once, and both sides can be written."""
    outcome = validate_frame(frame, MAX_CHARS, TODAY)
    assert len(frame) == len(outcome.valid) + len(outcome.quarantined)
    ended = sorted([*outcome.valid[SOURCE_ROW], *outcome.quarantined[SOURCE_ROW]])
    assert ended == sorted(frame[SOURCE_ROW])
    assert set(outcome.quarantined["reason"]) <= REASONS
    pa.Table.from_pandas(outcome.valid, schema=VALIDATED_SCHEMA, preserve_index=False)
    pa.Table.from_pandas(outcome.quarantined[QUARANTINE_SCHEMA.names], schema=QUARANTINE_SCHEMA, preserve_index=False)


# -- any bytes ---------------------------------------------------------------------------------

PREFIXES = [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x1f\x8b", b"PAR1"]
HEADERS = [b"", "\t".join(HEADER).encode() + b"\n", ",".join(HEADER).encode() + b"\n", b'{"id": 1, "review": "x"}\n']


@examples(200)
@given(
    prefix=st.sampled_from(PREFIXES),
    header=st.sampled_from(HEADERS),
    body=st.binary(max_size=300),
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet"]),
)
def test_any_bytes_are_read_or_refused_with_a_source_error(
    prefix: bytes, header: bytes, body: bytes, suffix: str
) -> None:
    _read(prefix + header + body, suffix)


def _parquet_bytes() -> bytes:
    out = io.BytesIO()
    table = pa.table({name: ["x", None] for name in ("id", "drugName", "review", "rating", "date")})
    pq.write_table(table, out)
    return out.getvalue()


PARQUET = _parquet_bytes()


@examples(100)
@given(
    cut=st.integers(0, len(PARQUET)), flips=st.lists(st.tuples(st.integers(0, len(PARQUET) - 1), st.integers(0, 255)))
)
def test_damaged_parquet_is_read_or_refused_with_a_source_error(cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(PARQUET)
    for position, value in flips:
        data[position] = value
    _read(bytes(data[:cut] if cut % 2 else data), ".parquet")


# -- any rows ------------------------------------------------------------------------------------


@examples(50)
@given(records=rows, delimiter=st.sampled_from(["\t", ","]))
def test_any_rows_written_as_csv_or_tsv_are_all_read_and_accounted_for(
    records: list[tuple[str, ...]], delimiter: str
) -> None:
    table = _read(_delimited(records, delimiter), ".tsv" if delimiter == "\t" else ".csv")

    assert table is not None
    assert table.num_rows == len(records)
    assert table.column(MALFORMED).null_count == len(records)
    assert table.select(list(CANONICAL[:5])).to_pylist() == [
        dict(zip(CANONICAL[:5], (r[0], r[1], r[3], r[4], r[5]), strict=True)) for r in records
    ]
    _accounted(table.to_pandas())


@examples(40)
@given(records=rows, ascii_only=st.booleans())
def test_any_rows_written_as_jsonl_are_all_read_and_accounted_for(
    records: list[tuple[str, ...]], ascii_only: bool
) -> None:
    table = _read(_jsonl(records, ascii_only), ".jsonl")

    if not records:
        assert table is None  # an empty file is refused
        return
    assert table is not None
    assert table.num_rows == len(records)
    assert table.column("text").to_pylist() == [r[3] for r in records]
    assert table.column("review_date").to_pylist() == [r[5] for r in records]
    _accounted(table.to_pandas())


@examples(30)
@given(records=rows, garbage=st.lists(st.tuples(st.integers(0, 12), texts), max_size=4))
def test_rows_with_garbage_lines_between_them_are_all_accounted_for(
    records: list[tuple[str, ...]], garbage: list[tuple[int, str]]
) -> None:
    lines = [json.dumps(dict(zip(HEADER, r, strict=True))) for r in [("1", "a", "", "b", "9", "2011-05-30", "")]]
    lines += [json.dumps(dict(zip(HEADER, r, strict=True))) for r in records]
    for position, text in garbage:
        lines.insert(min(position, len(lines)), text.replace("\n", " "))
    table = _read("\n".join(lines).encode("utf-8"), ".jsonl")

    assert table is not None
    assert table.num_rows == len([line for line in lines if line.strip(" \t\r")])
    _accounted(table.to_pandas())


# -- any frame ----------------------------------------------------------------------------------

cells = st.one_of(st.none(), texts, dates, labels, counts)


@st.composite
def frames(draw: Any) -> pd.DataFrame:
    n = draw(st.integers(0, 15))
    data: dict[str, list[Any]] = {name: draw(st.lists(cells, min_size=n, max_size=n)) for name in CANONICAL}
    data[SOURCE_FILE] = ["f"] * n
    data[SOURCE_ROW] = list(range(1, n + 1))
    for marker in (MALFORMED, WRONG_TYPE):
        if draw(st.booleans()):
            data[marker] = draw(st.lists(st.one_of(st.none(), texts), min_size=n, max_size=n))
    return pd.DataFrame(data)


@examples(50)
@given(frame=frames())
def test_validate_frame_accounts_for_every_row_of_any_string_frame(frame: pd.DataFrame) -> None:
    _accounted(frame)
