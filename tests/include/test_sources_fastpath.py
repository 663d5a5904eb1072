"""The fast CSV/TSV reader against the exact one it stands in for.

On generated messy files (stray and escaped quotes, quotes closed mid-value, CR, LF and
CRLF inside and outside quotes, blank lines, wrong field counts, byte-order marks, no
final line end, bytes that are not UTF-8) the fast path, with its fall back, gives the
table, or the error, the exact reader gives. Its one pass over the file is checked
against a plain reading of the RFC 4180 rule, with blocks small enough that line ends,
quotes and escapes fall across block boundaries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import multiprocessing
import tempfile
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from reviewops.config import SHIPPED_REVIEWS
from reviewops.data import ingest, sources
from reviewops.data.ingest import IngestParams, ingest_reviews
from reviewops.data.records import Lines, damaged_spans
from reviewops.data.sources import (
    SourceError,
    SourceFile,
    read_source_file,
    scan_delimited,
    scan_source,
)
from reviewops.data.windows import Window
from reviewops.storage import io as storage_io
from reviewops.storage.paths import Layout

from .samples import HEADER, monday, shipped_records, source_date

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "reviewops-hypothesis")

BOM = b"\xef\xbb\xbf"
FAST = "read on the fast path"
# The required fields, under the shipped file's names.
COLUMNS = ("", "drugName", "review", "rating", "date")
PIECES = ["a", "b c", "é", "日本", '"', '""', "\n", "\r", "\r\n", ",", "\t", " ", "\x00"]

utf8 = st.lists(st.sampled_from([p.encode() for p in PIECES]), max_size=4).map(b"".join)
content = st.lists(st.sampled_from([p.encode() for p in PIECES] + [b"\xff"]), max_size=4).map(b"".join)
words = st.sampled_from([b"", b"x", b"12", b"May 1 2017", "é".encode(), b"a b"])


def quoted(text: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return text.map(lambda c: b'"' + c.replace(b'"', b'""') + b'"')


unclosed = content.map(lambda c: b'"' + c.replace(b'"', b""))
closed_early = st.tuples(content, content).map(lambda p: b'"' + p[0].replace(b'"', b'""') + b'"' + p[1])
tidy_field = st.one_of(words, quoted(utf8))
messy_field = st.one_of(words, words, quoted(utf8), quoted(content), content, unclosed, closed_early)
line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def delimited_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """A CSV or TSV file with the required columns, and its delimiter: tidy (RFC 4180
    quoting, the header's number of fields) or messy, so both readers are exercised."""
    delimiter = draw(st.sampled_from([",", "\t"]))
    sep = delimiter.encode()
    tidy = draw(st.booleans())
    field = tidy_field if tidy else messy_field
    widths = [len(COLUMNS)] if tidy else [len(COLUMNS)] * 3 + [len(COLUMNS) - 1, len(COLUMNS) + 1]
    names = [b'"' + n.encode() + b'"' if draw(st.booleans()) else n.encode() for n in COLUMNS]
    out = [draw(st.sampled_from([b"", BOM])), sep.join(names), draw(line_end)]
    for _ in range(draw(st.integers(0, 6))):
        out += [sep.join(draw(field) for _ in range(draw(st.sampled_from(widths)))), draw(line_end)]
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(line_end))  # a blank line
    if draw(st.booleans()):
        out.pop()  # no line end after the last line
    return b"".join(out), delimiter


def clean_by_definition(data: bytes, delimiter: str) -> bool:
    """The RFC 4180 rule, quote by quote: alternately opening and closing; an opening one
    at a field start or right after the closing one before it, a closing one before a
    delimiter, a line end, the end of the file or the opening one after it."""
    body = data.removeprefix(BOM)
    bounds = {ord(delimiter), ord("\n"), ord("\r")}
    found = [i for i, byte in enumerate(body) if byte == ord('"')]
    for k, at in enumerate(found):
        if k % 2 == 0:
            sound = at == 0 or body[at - 1] in bounds or (k > 0 and found[k - 1] == at - 1)
        else:
            sound = at == len(body) - 1 or body[at + 1] in bounds or (k + 1 < len(found) and found[k + 1] == at + 1)
        if not sound:
            return False
    return len(found) % 2 == 0


def exact(path: Path, delimiter: str) -> pa.Table | str:
    """What the exact reader gives: the table, or its error."""
    try:
        return sources._read_delimited_exact(path, sources._utf8_bytes(path, path.suffix[1:]), delimiter)
    except SourceError as exc:
        return f"error: {exc}"


def fast(path: Path) -> pa.Table | str:
    try:
        return read_source_file(path)
    except SourceError as exc:
        return f"error: {exc}"


def write(folder: Path, data: bytes, delimiter: str) -> Path:
    path = folder / ("reviews.tsv" if delimiter == "\t" else "reviews.csv")
    path.write_bytes(data)
    return path


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delimited_files())
@example((b'id,drugName,review,rating,date\n1,p,"a\r\nb",5,d\r\n', ","))
@example((BOM + b'"",drugName,review,rating,date\r\n"1","p","x""y",,"d"', ","))
@example((b'\tdrugName\treview\trating\tdate\n1\tp\t"a\nb"c\t5\td\n2\tq\tr\t5\td\n', "\t"))
# pyarrow skips the header's line, not its record: the rest is a row, checked as UTF-8
@example((b'id,drugName,review,rating,date,"x\n\xff"\n1,p,t,5,d,e\n', ","))
def test_the_fast_path_gives_what_the_exact_reader_gives(case: tuple[bytes, str]) -> None:
    data, delimiter = case
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), data, delimiter)
        expected, found = exact(path, delimiter), fast(path)
        parsed = sources._read_delimited_fast(path, delimiter)
        event("fast path" if parsed is not None and parsed[1].sha256 is not None else "exact reader")
    if isinstance(expected, str) or isinstance(found, str):
        assert found == expected
    else:
        assert found.schema == expected.schema
        assert found.to_pylist() == expected.to_pylist()
        assert found.equals(expected)


@settings(max_examples=300, deadline=None)
@given(case=delimited_files(), block=st.integers(1, 9))
@example(case=(b'id,a\r\n"x""",y\r\n', ","), block=5)  # a CRLF, and a closing quote, at a block's end
def test_the_one_pass_hashes_counts_lines_and_judges_quotes_across_blocks(case: tuple[bytes, str], block: int) -> None:
    data, delimiter = case
    default, sources._SCAN_BLOCK = sources._SCAN_BLOCK, block
    try:
        with tempfile.TemporaryDirectory() as folder:
            scan = scan_delimited(write(Path(folder), data, delimiter), delimiter)
    finally:
        sources._SCAN_BLOCK = default
    assert scan is not None
    body = data.removeprefix(BOM)
    ends = not body or body.endswith((b"\n", b"\r"))
    assert scan.sha256 == hashlib.sha256(data).hexdigest()
    assert scan.lines == sources._physical_lines(body if ends else body + b"\n")
    assert scan.ends_with_line_end == ends
    assert scan.quotes_clean == clean_by_definition(data, delimiter)


@settings(max_examples=300, deadline=None)
@given(delimited_files())
def test_in_a_quote_clean_file_without_malformed_rows_no_record_is_damaged(case: tuple[bytes, str]) -> None:
    """Why the fast path may skip the multi-line check: the careful reader and the parser agree."""
    data, delimiter = case
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), data, delimiter)
        scan = scan_delimited(path, delimiter)
        assert scan is not None
        if not scan.quotes_clean:
            return
        try:
            text = sources._utf8_bytes(path, path.suffix[1:])
            names = sources._column_names(sources._header_line(path, text), delimiter)
            text = text if text.endswith((b"\n", b"\r")) else text + b"\n"
            table, malformed = sources._parse_delimited(path, text, names, delimiter)
        except SourceError:
            return
    if malformed:  # the fast path never keeps such a reading: pyarrow refuses the row
        return
    counts = sources._lines_per_record(table, malformed)
    event("checked, records over several lines" if max(counts, default=1) > 1 else "checked, one line each")
    assert damaged_spans(Lines(text), counts, len(names), delimiter) is None


def test_the_shipped_file_is_read_on_the_fast_path_with_its_sha256(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=sources.__name__)
    (item,) = scan_source(str(SHIPPED_REVIEWS))
    assert isinstance(item, SourceFile)
    assert FAST in caplog.text
    assert item.sha256 == hashlib.sha256(Path(SHIPPED_REVIEWS).read_bytes()).hexdigest()
    assert item.table.equals(exact(Path(SHIPPED_REVIEWS), "\t"))


def test_a_bench_like_file_is_read_on_the_fast_path_across_many_blocks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written the way the benchmark writes its source: pyarrow's TSV, every string quoted,
    the shipped reviews repeated under new ids (their texts hold CR, CRLF and quotes)."""
    records = shipped_records(600) * 5
    columns = {name: [r[name] for r in records] for name in HEADER}
    columns[""] = [str(9 * 10**10 + i) for i in range(len(records))]
    path = tmp_path / "reviews.tsv"
    write_options = pacsv.WriteOptions(delimiter="\t", quoting_style="needed")
    pacsv.write_csv(pa.table(columns), path, write_options=write_options)
    monkeypatch.setattr(sources, "_SCAN_BLOCK", 1 << 16)  # about 60 blocks
    caplog.set_level(logging.DEBUG, logger=sources.__name__)
    (item,) = scan_source(str(path))
    assert isinstance(item, SourceFile)
    assert FAST in caplog.text
    assert item.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert item.table.num_rows == len(records)
    assert item.table.equals(exact(path, "\t"))


def test_a_stray_quote_in_a_multi_line_file_goes_to_the_exact_reader(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = b'id,drugName,review,rating,date\n1,p,"two\nlines",5,d\n2,q,5" tall,5,d\n'
    path = write(tmp_path, data, ",")
    caplog.set_level(logging.DEBUG, logger=sources.__name__)
    table = read_source_file(path)
    assert FAST not in caplog.text
    assert "exact reader" in caplog.text
    assert table.column("text").to_pylist() == ["two\nlines", '5" tall']


def test_ingest_records_the_source_hash_from_the_one_pass(tmp_path: Path) -> None:
    _, inputs = ingest_reviews(
        IngestParams(
            source=str(SHIPPED_REVIEWS),
            data_root=str(tmp_path / "data"),
            window=Window.week(monday(source_date(shipped_records(1)[0]["date"]))),
        )
    )
    (source,) = inputs
    assert source.sha256 == hashlib.sha256(Path(SHIPPED_REVIEWS).read_bytes()).hexdigest()
    assert source.rows == 600


# -- ingest writes while the check runs, and publishes once it is in -----------------------

# A stray quote in a file whose records run over several lines: pyarrow reads it (two rows),
# and the check overrules that reading; the exact reader keeps the quote in its row.
STRAY_QUOTE = b'id,drugName,review,rating,date\n1,p,"two\nlines",5,d\n2,q,5" tall,5,d\n'
ANY_WEEK = Window.week(dt.date(2017, 12, 11))  # the rows have no date: kept in any window


def test_a_deferred_check_settles_to_the_fast_reading_or_to_the_exact_one(tmp_path: Path) -> None:
    clean, stray = tmp_path / "clean.tsv", tmp_path / "stray.csv"
    clean.write_bytes(Path(SHIPPED_REVIEWS).read_bytes())
    stray.write_bytes(STRAY_QUOTE)

    for path, stands in [(clean, True), (stray, False)]:
        (item,) = scan_source(str(path), defer_checks=True)
        assert isinstance(item, SourceFile)
        assert item.check is not None and item.sha256 is None  # read by pyarrow; the check decides
        settled = item.settled()
        assert settled.check is None
        assert (settled.table is item.table) == stands
        assert settled.sha256 == (hashlib.sha256(path.read_bytes()).hexdigest() if stands else None)
        assert settled.table.equals(exact(path, "\t" if path.suffix == ".tsv" else ","))


def test_ingest_publishes_the_raw_batch_only_once_the_check_is_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch is written while the check runs; it is the raw batch only after the verdict."""
    data_root = tmp_path / "data"
    raw = Layout(data_root).raw(ANY_WEEK.key)
    written = threading.Event()
    seen: dict[str, bool] = {}

    def write_parquet(*args: Any, **kwargs: Any) -> Any:
        out = storage_io.write_parquet(*args, **kwargs)
        written.set()
        return out

    def scan(path: Path, delimiter: str) -> sources.FileScan:
        assert written.wait(timeout=60), "the batch was not written while the check ran"
        seen["raw published before the verdict"] = raw.exists()
        seen["batch staged beside it"] = any(raw.parent.glob(f".{raw.name}.*.tmp"))
        return scan_delimited(path, delimiter)

    monkeypatch.setattr(ingest, "write_parquet", write_parquet)
    monkeypatch.setattr(sources, "scan_delimited", scan)
    result, (source,) = ingest_reviews(IngestParams(str(SHIPPED_REVIEWS), str(data_root), ANY_WEEK))

    assert seen == {"raw published before the verdict": False, "batch staged beside it": True}
    assert result.output("raw").sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert source.sha256 == hashlib.sha256(Path(SHIPPED_REVIEWS).read_bytes()).hexdigest()
    assert sorted(p.name for p in raw.parent.iterdir()) == [raw.name]


def test_ingest_discards_a_batch_the_check_overrules_and_writes_the_exact_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write(tmp_path, STRAY_QUOTE, ",")
    data_root = tmp_path / "data"
    caplog.set_level(logging.INFO)

    result, (described,) = ingest_reviews(IngestParams(str(source), str(data_root), ANY_WEEK))

    raw = Layout(data_root).raw(ANY_WEEK.key)
    assert "read again, by the exact reader" in caplog.text
    assert pq.read_table(raw).equals(exact(source, ","))
    assert result.metrics["rows_in_source"] == result.metrics["rows_read"] == 2
    assert described.sha256 == hashlib.sha256(STRAY_QUOTE).hexdigest() and described.rows == 2
    assert sorted(p.name for p in raw.parent.iterdir()) == [raw.name]  # no temporary left


@pytest.mark.parametrize("source", ["single", "folder"])
def test_a_file_the_exact_reader_refuses_after_the_check_fails_or_is_rejected_as_before(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file read by pyarrow, overruled by its check, then refused by the exact reader: a
    single-file source fails and leaves nothing behind; in a folder the file is rejected."""
    drop = tmp_path / "drop"
    drop.mkdir()
    stray = write(drop, STRAY_QUOTE, ",")
    (drop / "good.tsv").write_bytes(Path(SHIPPED_REVIEWS).read_bytes())
    data_root = tmp_path / "data"

    def refuse(path: Path, data: bytes, delimiter: str) -> pa.Table:
        raise SourceError(f"{path}: its records cannot be told apart (inconsistent quoting): re-export it")

    monkeypatch.setattr(sources, "_read_delimited_exact", refuse)
    if source == "single":
        with pytest.raises(SourceError, match="cannot be told apart"):
            ingest_reviews(IngestParams(str(stray), str(data_root), ANY_WEEK))
        assert not data_root.exists()
        return
    window = Window(dt.date(2008, 1, 7), dt.date(2018, 1, 1))
    result, inputs = ingest_reviews(IngestParams(str(drop), str(data_root), window))
    (rejected,) = result.metrics["files_rejected"]
    assert rejected["file"] == str(stray) and "cannot be told apart" in rejected["error"]
    assert result.metrics["files_read"] == 1
    assert result.metrics["rows_read"] == 600
    assert sorted(a.kind for a in inputs) == ["rejected_source", "source"]
    assert (ingest.rejected_files_dir(data_root, window.key) / stray.name).read_bytes() == STRAY_QUOTE


def _rows_read(path: str, out: Any) -> None:
    out.put(read_source_file(Path(path)).num_rows)


def test_a_process_forked_after_a_fast_reading_scans_its_own_files() -> None:
    """The scanning thread does not survive a fork: the child starts its own."""
    read_source_file(Path(SHIPPED_REVIEWS))  # the parent's scanning thread is running
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_rows_read, args=(str(SHIPPED_REVIEWS), out))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child did not finish its reading"
    assert out.get(timeout=5) == 600
