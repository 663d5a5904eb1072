"""Reading a review source (file, folder or glob of CSV/TSV/JSONL/Parquet) as strings.

Every value is kept as the string found in the file, so validation sees exactly what
arrived; each row carries its source file and 1-based row number for lineage.

The reader reports what it saw and leaves the verdict to validation. Every row it reads
is a row of the table it returns, in file order:

- a row that cannot be split into the file's columns (a CSV/TSV line with the wrong
  number of fields, a JSONL line that is not a JSON object) has null canonical fields
  and its text as found, with what is wrong with it, in the ``malformed`` column;
- a value that is a list or an object (JSONL, nested Parquet columns) is kept as its
  JSON text and the field is named in the ``wrong_type`` column.

A local CSV/TSV file is read by pyarrow from the file, on its threads; then one pass over
it, on a thread of its own, hashes it and checks its quoting. When that cannot be sure to
give the table the careful reading gives (a malformed row, text that is not UTF-8, a stray
quote in a file whose records run over several lines), the file is read again with every
check. A caller with work to do meanwhile (ingest writes the table) may take the table before
the pass is done, and settle it after (``scan_source(..., defer_checks=True)``).

A file that cannot be read as a whole raises a one-line :class:`SourceError` naming the
file, the problem and what to do about it. In a folder or glob source such a file is
yielded as a :class:`RejectedFile` and the other files are still read.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import functools
import glob
import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from reviewops.config import EARLIEST_REVIEW_DATE
from reviewops.data.parsing import parse_dates, string_array
from reviewops.data.records import Lines, Span, damaged_spans
from reviewops.data.schema import CANONICAL, REQUIRED, SOURCE_FILE, SOURCE_ROW, canonical_name
from reviewops.data.windows import PlausibleDates, Window
from reviewops.storage.io import read_parquet_metadata, read_table
from reviewops.storage.paths import StoragePath, as_path, sort_paths

log = logging.getLogger(__name__)

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}

# Columns the reader adds beside the canonical ones and the lineage ones (null when
# the row is fine); validation turns them into the malformed_row and bad_type reasons.
MALFORMED = "malformed"
WRONG_TYPE = "wrong_type"
READ_SCHEMA = pa.schema(
    [
        *[(name, pa.string()) for name in CANONICAL],
        (SOURCE_FILE, pa.string()),
        (SOURCE_ROW, pa.int64()),
        (MALFORMED, pa.string()),
        (WRONG_TYPE, pa.string()),
    ]
)

# Leading bytes of formats that are not text, and what they are.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
)
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_DELIMITERS = {"csv": ",", "tsv": "\t"}
_DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
_LINE_END = r"\r\n|\r|\n"
_LINE_ENDS = re.compile(_LINE_END)
_BLANK = re.compile(rb"[ \t\n\r\x0b\x0c]*")  # what bytes.strip() removes
_UTF8_PIECE = 1 << 24
_PREFIX = 1 << 16  # bytes read for the header and the checks of the file's kind
_SCAN_BLOCK = 1 << 24  # bytes hashed and scanned at a time by the one pass over the file
_QUOTE = ord('"')


class SourceError(ValueError):
    """A source file that cannot be read as a whole; the message names file and problem.

    Always one line, so it reads well as a task failure, a CLI error and a metric.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")).replace("\r", " "))


@dataclass(frozen=True)
class SourceFile:
    """A file of the source, read.

    ``sha256``: of the file's bytes, when the reader hashed them on its way. ``check``:
    only from ``scan_source(..., defer_checks=True)``, for a file read on the fast path:
    the pass over its bytes that decides whether ``table`` stands, maybe still running
    (``sha256`` is then None: the check gives it)."""

    path: StoragePath
    table: pa.Table
    sha256: str | None = None
    check: PendingCheck | None = None

    def settled(self) -> SourceFile:
        """This file once its check is in: the same table with the file's sha256 when the
        check confirms it, else the file read by the exact reader (which raises the
        :class:`SourceError` the file deserves)."""
        if self.check is None:
            return self
        sha256 = self.check.sha256
        if sha256 is not None:
            return replace(self, sha256=sha256, check=None)
        return SourceFile(self.path, _read_exactly(self.path))


@dataclass(frozen=True)
class RejectedFile:
    """A file of a folder or glob source that could not be read as a whole.

    ``set_aside`` is False for a file ingest must not copy aside: a symbolic link out of
    the source folder is refused without reading what it points to.
    """

    path: StoragePath
    error: str
    set_aside: bool = True

    def as_dict(self) -> dict[str, str]:
        return {"file": str(self.path), "error": self.error}


def list_source_files(source: str) -> list[StoragePath]:
    """The files a source names, in a stable order; a clear error when there are none.
    A ``gs://`` file, folder or glob is listed like a local one. Local files are listed
    by their real path, except symbolic links out of a folder or glob source's folder,
    which keep their own (:func:`scan_source` refuses them)."""
    path = as_path(source)
    files: list[StoragePath]
    if path.is_dir():
        files = sort_paths([p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES])
    elif any(ch in source for ch in "*?["):
        files = sort_paths(_glob(source))
    elif path.is_file():
        files = [path]
    else:
        raise SourceError(f"{source}: no such file or folder (set REVIEWOPS_SOURCE or the source Param)")
    base = _source_folder(source)
    files = [_real(f, base) for f in files if not f.name.startswith(".")]
    if not files:
        raise SourceError(f"{source}: no .csv, .tsv, .jsonl or .parquet files found")
    return files


def _glob(source: str) -> list[StoragePath]:
    path = as_path(source)
    if isinstance(path, Path):
        return [Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file()]
    protocol = source.partition("://")[0]
    return [as_path(f"{protocol}://{p}") for p in path.fs.glob(path.path) if path.fs.isfile(p)]


def _source_folder(source: str) -> Path | None:
    """The local folder a folder or glob source reads (for a glob, its part before the
    first wildcard); None for a single file or an object store, which have no links."""
    path = as_path(source)
    if not isinstance(path, Path) or not (path.is_dir() or any(ch in source for ch in "*?[")):
        return None
    if path.is_dir():
        return path.resolve()
    fixed = itertools.takewhile(lambda part: not any(ch in part for ch in "*?["), path.parts)
    return Path(*fixed, ".").resolve()


def _real(path: StoragePath, folder: Path | None) -> StoragePath:
    if not isinstance(path, Path):
        return path
    real = path.resolve()
    return path.absolute() if folder is not None and not real.is_relative_to(folder) else real


def scan_source(
    source: str, *, defer_checks: bool = False, exact: Collection[StoragePath] = ()
) -> Iterator[SourceFile | RejectedFile]:
    """Read every file of a source, one at a time.

    A source that names one file fails with that file's :class:`SourceError`. In a
    folder or glob, a bad file is yielded as a :class:`RejectedFile` and the others are
    read; when none of them can be read, a :class:`SourceError` follows the rejections.
    A symbolic link to a file outside the folder is rejected without being read.

    With ``defer_checks``, a file read on the fast path is yielded before the pass that
    checks its reading is done (:attr:`SourceFile.check`), so the caller can work with the
    table meanwhile; nothing may use it as the file's reading before the check confirms it
    (:meth:`SourceFile.settled`). The files in ``exact`` are read by the exact reader
    straight away (a check overruled their fast reading before).
    """
    files = list_source_files(source)
    if as_path(source).is_file():
        yield _read_file(files[0], defer_checks, files[0] in exact)
        return
    folder = _source_folder(source)
    rejected: list[RejectedFile] = []
    for path in files:
        if folder is not None and isinstance(path, Path) and not path.resolve().is_relative_to(folder):
            why = f"{path}: is a symbolic link to a file outside the source folder {folder}: refused (copy the file in)"
            rejected.append(RejectedFile(path, why, set_aside=False))
            yield rejected[-1]
            continue
        try:
            yield _read_file(path, defer_checks, path in exact)
        except SourceError as exc:
            rejected.append(RejectedFile(path, str(exc)))
            yield rejected[-1]
    if len(rejected) == len(files):
        raise SourceError(f"{source}: none of its {len(files)} file(s) could be read; the first: {rejected[0].error}")


def read_source_file(path: StoragePath) -> pa.Table:
    """One file as a table of :data:`READ_SCHEMA`: canonical string columns, the row's
    source file and row number, and what the reader found wrong with the row."""
    return _read_file(path).table


def _read_file(path: StoragePath, defer_checks: bool = False, exact: bool = False) -> SourceFile:
    """The file read: on the fast path when it may be (a local CSV/TSV file: its sha256
    comes with it, and with ``defer_checks`` its check may still be running), else by the
    exact reader (or straight away by it, with ``exact``)."""
    kind = _kind(path)
    if kind == "parquet":
        return SourceFile(path, _read_parquet(path))
    if kind != "jsonl" and isinstance(path, Path) and not exact:
        fast = _read_delimited_fast(path, _DELIMITERS[kind])
        if fast is not None:
            table, check = fast
            read = SourceFile(path, table, check=check)
            return read if defer_checks else read.settled()
    return SourceFile(path, _read_exactly(path))


def _kind(path: StoragePath) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SourceError(f"{path}: unsupported file type {path.suffix!r} (use csv, tsv, jsonl or parquet)")
    return kind


def _read_exactly(path: StoragePath) -> pa.Table:
    """A CSV, TSV or JSON Lines file read from its bytes, with every check."""
    kind = _kind(path)
    data = _utf8_bytes(path, kind)
    if kind == "jsonl":
        return _read_jsonl(path, data)
    return _read_delimited_exact(path, data, _DELIMITERS[kind])


def read_source(source: str) -> pa.Table:
    """All readable files of a source, concatenated; rejected files are logged."""
    tables = []
    for item in scan_source(source):
        if isinstance(item, RejectedFile):
            log.warning("file rejected: %s", item.error)
        else:
            tables.append(item.table)
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def source_window(source: str, earliest: dt.date = EARLIEST_REVIEW_DATE, today: dt.date | None = None) -> Window:
    """The whole weeks covering every plausible review date in the source: from
    ``earliest`` up to today (a typo like 2099, or a placeholder like 1900-01-01, is
    quarantined with its reason, not a reason to write empty partitions for every week
    in between)."""
    plausible = PlausibleDates(earliest, today or dt.datetime.now(dt.UTC).date())
    dates = [d for d in parse_dates(read_source(source).column("review_date").to_pylist()) if d is not None]
    dates = [d for d in dates if plausible.contains(d)]
    if not dates:
        raise SourceError(f"{source}: no row has a parseable review date from {earliest} up to today")
    return Window.covering(min(dates), max(dates))


# -- text files: encoding ------------------------------------------------------------


def _utf8_bytes(path: StoragePath, kind: str) -> bytes:
    """The file's text as UTF-8 without a byte-order mark, or a SourceError saying why not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot be opened: {exc.strerror or exc}") from exc
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise SourceError(
                f"{path}: holds {what}, not {kind} text: decompress it and deliver the plain {path.suffix} file"
            )
    if data.startswith(b"PAR1"):
        raise SourceError(f"{path}: is a Parquet file, not {kind} text: rename it to .parquet")
    if data.startswith(_UTF32_BOMS):
        raise SourceError(f"{path}: is UTF-32 text, which is not read: re-export it as UTF-8")
    if data.startswith(_UTF16_BOMS):
        data = _transcode_utf16(path, data)
    else:
        data = data.removeprefix(_UTF8_BOM)
        _check_utf8(path, data)
    if _BLANK.fullmatch(data):  # not data.strip(), which copied the whole file
        raise SourceError(f"{path}: is empty: nothing to read (deliver the export again)")
    return data


def _transcode_utf16(path: StoragePath, data: bytes) -> bytes:
    try:
        return data.decode("utf-16").encode("utf-8")
    except UnicodeError as exc:
        raise SourceError(
            f"{path}: starts with a UTF-16 byte-order mark but is not valid UTF-16 "
            f"(at byte {getattr(exc, 'start', '?')}): re-export it as UTF-8"
        ) from exc


def _check_utf8(path: StoragePath, data: bytes) -> None:
    # Decoded a piece at a time and thrown away: decoding the whole file made a second copy
    # of it, up to four times its size (the largest part of ingest's peak memory at 1M rows).
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), _UTF8_PIECE):
            decoder.decode(view[start : start + _UTF8_PIECE], final=start + _UTF8_PIECE >= len(data))
        return
    except UnicodeDecodeError:
        pass  # decoded whole below, for the position of the first bad byte
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError(
            f"{path}: is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} cannot be decoded "
            "(a Latin-1/Windows-1252 export, or not a text file): re-export it as UTF-8"
        ) from exc


# -- CSV and TSV -----------------------------------------------------------------------


def _read_delimited_exact(path: StoragePath, data: bytes, delimiter: str) -> pa.Table:
    """The whole file's bytes read with every check: the row numbers of malformed rows,
    and the records a stray quote damaged set apart (see :mod:`reviewops.data.records`)."""
    header = _header_line(path, data)
    names = _column_names(header, delimiter)
    _require_columns(path, names, _delimiter_hint(header, delimiter))
    _refuse_repeated_fields(path, next(csv.reader([header], delimiter=delimiter)))
    if not data.endswith((b"\n", b"\r")):
        data += b"\n"  # a header without a line end would otherwise not count as a row
    table, malformed = _parse_delimited(path, data, names, delimiter)
    if _physical_lines(data) > 1 + table.num_rows + len(malformed):
        # Some record runs over several lines: check that no stray quote joined records.
        lines = Lines(data)
        spans = damaged_spans(lines, _lines_per_record(table, malformed), len(names), delimiter)
        if spans is not None:
            return _resynchronised(path, lines, spans, names, delimiter)
    return _with_malformed(_to_canonical(table, path), path, malformed)


def _read_delimited_fast(path: Path, delimiter: str) -> tuple[pa.Table, PendingCheck] | None:
    """The table :func:`_read_delimited_exact` gives, read by pyarrow from the file on its
    threads without holding the file's bytes, and the pass over the file (started when
    the parser is done, so the parser has every core) that decides whether it stands and
    gives the file's sha256. None when the table cannot be read so; the caller then reads
    the file with the exact reader (which also gives the errors, with their line numbers).

    The exact reader looks for damaged records only when a record runs over several
    lines; none can be damaged when every quote of the file opens and closes a value as
    RFC 4180 has it (:func:`scan_delimited`), and then the parser's records are the ones
    a careful reader finds."""
    names = _fast_header(path, delimiter)
    if names is None:
        return None
    try:
        with pa.OSFile(str(path)) as stream:
            table = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=True),
                # No invalid_row_handler: a malformed row raises, and the exact reader numbers it.
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=_as_strings(names),
            )
    except (pa.ArrowException, OSError) as exc:  # malformed rows, text that is not UTF-8
        log.info("%s: read with the exact reader: %s", path, _parse_error(exc))
        return None
    check = PendingCheck(path, delimiter, table.num_rows)
    return _to_canonical(table, path), check


class PendingCheck:
    """The pass over a file read on the fast path (:func:`scan_delimited`), running on
    the scanning thread while the caller goes on with the parser's table.

    The parser's table stands when every quote of the file is RFC 4180 clean, or when
    each of its records is one line (then no quote can have joined two)."""

    def __init__(self, path: Path, delimiter: str, rows: int) -> None:
        self.path = path
        self.rows = rows
        self._scan = _scanner().submit(scan_delimited, path, delimiter)

    @functools.cached_property
    def sha256(self) -> str | None:
        """The file's sha256 when the pass confirms the parser's table; None when the
        exact reader must read the file. Waits for the pass."""
        try:
            scan = self._scan.result()
        except OSError:
            return None  # the exact reader says what went wrong
        single_lines = scan.lines == 1 + self.rows and scan.ends_with_line_end
        if not (scan.quotes_clean or single_lines):
            log.info(
                "%s: read with the exact reader: records run over several lines and a quote is out of place", self.path
            )
            return None
        log.debug("%s: read on the fast path (%d rows, quoting clean: %s)", self.path, self.rows, scan.quotes_clean)
        return scan.sha256


@functools.cache
def _scanner() -> ThreadPoolExecutor:
    """The one thread that scans the files read on the fast path, one after another (a
    folder's files are read before ingest settles them: their scans queue, and leave
    the other cores to the parser)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-scan")


os.register_at_fork(after_in_child=_scanner.cache_clear)  # a forked child has none of the parent's threads


def _fast_header(path: Path, delimiter: str) -> list[str] | None:
    """The column names, when the first bytes show a UTF-8 text file with a usable header;
    None when the exact reader must look (it raises the error, if there is one, in the
    order it always did: what the file is, its encoding, then its header)."""
    try:
        with path.open("rb") as handle:
            prefix = handle.read(_PREFIX)
    except OSError:
        return None
    if prefix.startswith((*(magic for magic, _ in _MAGIC), b"PAR1", *_UTF16_BOMS, *_UTF32_BOMS)):
        return None
    text = prefix.removeprefix(_UTF8_BOM)
    if _BLANK.fullmatch(text) or (len(prefix) == _PREFIX and not re.search(rb"[\r\n]", text)):
        return None  # blank so far (empty, or not), or a header longer than the prefix
    try:
        header = _header_line(path, text)
        names = _column_names(header, delimiter)
        _require_columns(path, names, "")
        _refuse_repeated_fields(path, next(csv.reader([header], delimiter=delimiter)))
    except (SourceError, UnicodeDecodeError):
        return None
    return names


@dataclass(frozen=True)
class FileScan:
    """What one pass over a delimited file found.

    ``lines``: its physical lines (ended by LF, CRLF or CR; a last line without a line
    end counts). ``quotes_clean``: every quote opens a value at its start, closes one
    before a delimiter, a line end or the end of the file, or is half of a ``""`` escape
    inside a quoted value, and none is left open."""

    sha256: str
    lines: int
    ends_with_line_end: bool
    quotes_clean: bool


def scan_delimited(path: Path, delimiter: str) -> FileScan:
    """Hash the file, count its lines and check its quoting in one pass, a block at a time.

    In numpy, which leaves the GIL to the caller's thread while it works (1.7 s at 1M
    reviews, 580 MB, about 0.6 of it the hash). A loop compiled by numba checks the bytes
    in 0.6 s rather than 1.1, but its first call in a process costs a second (importing
    numba, then its first dispatch): more than it saves, even at 1M, and a second more for
    every small file ingest reads."""
    digest = hashlib.sha256()
    quotes = _QuoteCheck(delimiter)
    lines = size = 0
    with path.open("rb", buffering=0) as handle:
        # [0]: the previous block's last byte; at first a line end, as a field starts the file.
        buffer = bytearray(b"\n") + bytearray(max(1, min(_SCAN_BLOCK, os.fstat(handle.fileno()).st_size)))
        view = memoryview(buffer)
        bom = handle.read(len(_UTF8_BOM))
        if bom == _UTF8_BOM:  # hashed, not scanned: a field starts after it
            digest.update(bom)
            size = len(bom)
        else:
            handle.seek(0)
        while n := handle.readinto(view[1:]):
            digest.update(view[1 : n + 1])
            block = np.frombuffer(buffer, np.uint8, count=n + 1)
            lines += _line_ends(block)
            quotes.feed(block)
            buffer[0] = buffer[n]
            size += n
    ends = size == 0 or buffer[0] in b"\r\n"
    return FileScan(digest.hexdigest(), lines + (0 if ends else 1), ends, quotes.clean())


def _line_ends(block: npt.NDArray[np.uint8]) -> int:
    """The line ends (LF, CRLF, CR) among ``block[1:]``; ``block[0]`` is the byte before
    them, so a CRLF split between two blocks counts once."""
    feeds = int(np.count_nonzero(block[1:] == ord("\n")))
    returns = np.flatnonzero(block == ord("\r"))
    if not len(returns):
        return feeds
    before_feed = returns[returns < len(block) - 1]
    crlf = int(np.count_nonzero(block[before_feed + 1] == ord("\n")))
    return feeds + len(returns) - int(block[0] == ord("\r")) - crlf


class _QuoteCheck:
    """Whether a file's quotes are RFC 4180 clean, fed a block at a time (see :class:`FileScan`).

    Counted from the start of the file, the quotes alternately open (even) and close (odd)
    a quoted stretch. An opening quote follows a delimiter, a line end or the closing quote
    just before it (``""``); a closing quote is followed by a delimiter, a line end, the
    end of the file or the opening quote just after it."""

    def __init__(self, delimiter: str) -> None:
        self._bounds = np.zeros(256, bool)
        self._bounds[[ord(delimiter), ord("\n"), ord("\r"), _QUOTE]] = True
        self._count = 0
        self._sound = True
        self._closed_last = False  # the previous block ended with a closing quote

    def feed(self, block: npt.NDArray[np.uint8]) -> None:
        """``block``: the previous block's last byte, then the new bytes."""
        if not self._sound:
            return
        if self._closed_last and not self._bounds[block[1]]:
            self._sound = False
            return
        found = np.flatnonzero(block[1:] == _QUOTE) + 1
        opening, closing = (found[0::2], found[1::2]) if self._count % 2 == 0 else (found[1::2], found[0::2])
        within = closing[closing < len(block) - 1]
        self._sound = bool(self._bounds[block[opening - 1]].all() and self._bounds[block[within + 1]].all())
        self._closed_last = len(closing) > len(within)
        self._count += len(found)

    def clean(self) -> bool:
        return self._sound and self._count % 2 == 0


def _physical_lines(data: bytes) -> int:
    """Lines ended by LF, CRLF or CR (``data`` ends with one)."""
    count = data.count(b"\n")
    return count + data.count(b"\r") - data.count(b"\r\n") if b"\r" in data else count


def _parse_delimited(
    path: StoragePath, data: bytes, names: list[str], delimiter: str
) -> tuple[pa.Table, list[tuple[int | None, str]]]:
    """The file's records as string columns, and the records set aside by the parser
    (record number, what is wrong with it and its text)."""
    malformed: list[tuple[int | None, str]] = []

    def set_aside(row: Any) -> str:
        # Numbers count the header as row 1; they are known because use_threads=False.
        number = None if row.number is None else row.number - 1
        malformed.append((number, f"{row.actual_columns} fields, expected {row.expected_columns}: {row.text}"))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, use_threads=False, block_size=max(1 << 20, min(len(data) + 1, 1 << 30))
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=set_aside
            ),
            convert_options=_as_strings(names),
        )
    except pa.ArrowException as exc:
        kind = "tsv" if delimiter == "\t" else "csv"
        raise SourceError(f"{path}: cannot be read as {kind}: {_parse_error(exc)}: re-export it") from exc
    return table, malformed


def _parse_error(exc: BaseException) -> str:
    # Without the row a parse error may quote after its column counts: it is content.
    return re.sub(r"(got \d+): .*$", r"\1", _first_line(exc))


def _as_strings(names: list[str]) -> pacsv.ConvertOptions:
    """Every column a string, kept as found: an empty value is "", not null."""
    return pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )


def _lines_per_record(table: pa.Table, malformed: list[tuple[int | None, str]]) -> list[int]:
    """How many physical lines each record the parser read takes, in file order: one, plus
    the line ends its values hold (the parser keeps them as found)."""
    per_row = [1] * table.num_rows
    if table.num_columns:
        breaks = pc.count_substring_regex(table.column(0), _LINE_END)
        for column in table.columns[1:]:
            breaks = pc.add(breaks, pc.count_substring_regex(column, _LINE_END))
        per_row = pc.add(breaks, 1).to_pylist()
    set_aside = {number: 1 + len(_LINE_ENDS.findall(text)) for number, text in malformed}
    if None in set_aside:  # numbers unknown: the check reads every line
        return [0]
    rows = iter(per_row)
    return [set_aside[n] if n in set_aside else next(rows) for n in range(1, len(per_row) + len(malformed) + 1)]


def _resynchronised(
    path: StoragePath, lines: Sequence[bytes], spans: list[Span], names: list[str], delimiter: str
) -> pa.Table:
    """The file read again without the lines that broke its quoting: each sound record
    keeps its own number, and each damaged line is a malformed row of its own."""
    sound = [span for span in spans if not span.damaged]
    data = lines[0] + b"".join(line for span in sound for line in lines[span.first : span.end])
    table, malformed = _parse_delimited(path, data, names, delimiter)
    parsed = _with_malformed(_to_canonical(table, path), path, malformed)
    if parsed.num_rows != len(sound):  # the two readers disagree on where records end
        raise SourceError(f"{path}: its records cannot be told apart (inconsistent quoting): re-export it")
    numbers = pa.array([i for i, span in enumerate(spans, start=1) if not span.damaged], pa.int64())
    parsed = parsed.set_column(parsed.schema.get_field_index(SOURCE_ROW), SOURCE_ROW, numbers)
    damaged = [(i, span) for i, span in enumerate(spans, start=1) if span.damaged]
    log.warning("%s: %d line(s) with an unbalanced quote set aside as malformed rows", path, len(damaged))
    bad = _table(
        {name: [None] * len(damaged) for name in CANONICAL},
        [str(path)] * len(damaged),
        [i for i, _ in damaged],
        malformed=[_unbalanced(lines[span.first], span.first + 1) for _, span in damaged],
    )
    return pa.concat_tables([parsed, bad]).sort_by(SOURCE_ROW)


def _unbalanced(line: bytes, number: int) -> str:
    text = line.decode("utf-8").rstrip("\r\n")
    return f"unbalanced quote: the record on line {number} runs into the lines after it: {text}"


def _header_line(path: StoragePath, data: bytes) -> str:
    end = len(data)
    for terminator in (b"\n", b"\r"):
        found = data.find(terminator, 0, end)
        end = found if found >= 0 else end
    header = data[:end].decode("utf-8")
    if not header.strip():
        raise SourceError(f"{path}: the first line is empty: it must name the columns")
    if "\x00" in header:
        raise SourceError(
            f"{path}: the header holds NUL bytes (binary data, or UTF-16 without a byte-order mark): "
            "re-export it as UTF-8 text"
        )
    return header


def _column_names(header: str, delimiter: str) -> list[str]:
    fields = next(csv.reader([header], delimiter=delimiter))
    # Keep duplicate header names apart so pyarrow accepts them; only the first maps.
    seen: dict[str, int] = {}
    names = []
    for name in fields:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return names


def _delimiter_hint(header: str, delimiter: str) -> str:
    """What to do when the header splits into the required columns at another delimiter."""
    for other, name in _DELIMITER_NAMES.items():
        if other == delimiter or other not in header:
            continue
        if not _missing(_column_names(header, other)):
            if other == "\t":
                return "the header is tab-separated: name the file .tsv"
            if other == ",":
                return "the header is comma-separated: name the file .csv"
            return f"the header is {name}-separated: re-export it with {_DELIMITER_NAMES[delimiter]}s"
    return ""


def _with_malformed(table: pa.Table, path: StoragePath, malformed: list[tuple[int | None, str]]) -> pa.Table:
    """Put the rows set aside by the parser back in their place among the parsed ones."""
    if not malformed:
        return table
    total = table.num_rows + len(malformed)
    numbers = [n for n, _ in malformed]
    known = [n for n in numbers if n is not None]
    if len(set(known)) != len(known) or not all(1 <= n <= total for n in known):
        numbers = [None] * len(numbers)  # not trustworthy: place them after the parsed rows
    taken = {n for n in numbers if n is not None}
    free = iter(n for n in range(1, total + 1) if n not in taken)
    parsed_rows = [next(free) for _ in range(table.num_rows)]
    numbers = [n if n is not None else next(free) for n in numbers]
    bad = _table(
        {name: [None] * len(malformed) for name in CANONICAL},
        [str(path)] * len(malformed),
        numbers,
        malformed=[text for _, text in malformed],
    )
    parsed = table.set_column(table.schema.get_field_index(SOURCE_ROW), SOURCE_ROW, pa.array(parsed_rows, pa.int64()))
    return pa.concat_tables([parsed, bad]).sort_by(SOURCE_ROW)


# -- JSON Lines ------------------------------------------------------------------------


def _read_jsonl(path: StoragePath, data: bytes) -> pa.Table:
    """JSON Lines read with the json module: values keep their JSON meaning (a date string
    stays the string found; a number becomes its JSON text), and a line that is not a
    JSON object is a malformed row, not the end of the file."""
    columns: dict[str, list[str | None]] = {name: [] for name in CANONICAL}
    malformed: list[str | None] = []
    wrong: list[str | None] = []
    found: set[str] = set()
    first_kind = ""
    for line in data.split(b"\n"):
        text = line.decode("utf-8")
        if not text.strip(" \t\r"):
            continue
        record, problem, kind = _json_object(text)
        first_kind = first_kind or kind
        malformed.append(problem)
        values, wrong_fields = _canonical_values(record)
        found.update(record)
        for name in CANONICAL:
            columns[name].append(values.get(name))
        wrong.append(", ".join(wrong_fields) or None)
    if not found and all(problem is not None for problem in malformed):
        raise SourceError(
            f"{path}: no line is a JSON object, so this is not JSON Lines (line 1 is {first_kind}): "
            "write one JSON object per line"
        )
    _require_columns(path, sorted(found), "")
    n = len(malformed)
    return _table(columns, [str(path)] * n, list(range(1, n + 1)), malformed=malformed, wrong_type=wrong)


def _json_object(text: str) -> tuple[dict[str, Any], str | None, str]:
    """The line's object (empty when it is none), what is wrong with it, and what it is."""
    objects: list[list[tuple[str, Any]]] = []

    def keep(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append(pairs)  # the line's own object is the last one completed
        return dict(pairs)

    try:
        value = json.loads(text, object_pairs_hook=keep)
    except (ValueError, RecursionError) as exc:
        return {}, f"not valid JSON ({_first_line(exc)}): {text}", "not valid JSON"
    if not isinstance(value, dict):
        return {}, f"a JSON {_json_kind(value)}, not an object: {text}", f"a JSON {_json_kind(value)}"
    repeated = _repeated_fields([key for key, _ in objects[-1]], "keys")
    return value, (f"{repeated}: {text}" if repeated else None), "a JSON object"


def _canonical_values(record: dict[str, Any]) -> tuple[dict[str, str | None], list[str]]:
    values: dict[str, str | None] = {}
    wrong: list[str] = []
    for key, value in record.items():
        name = canonical_name(key)
        if name is None or name in values:
            continue
        if value is None or isinstance(value, str):
            values[name] = value
            continue
        values[name] = json.dumps(value, ensure_ascii=False)
        if isinstance(value, list | dict):
            wrong.append(f"{name}: {_json_kind(value)}")
    return values, wrong


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null")


# -- Parquet -----------------------------------------------------------------------------


def _read_parquet(path: StoragePath) -> pa.Table:
    try:
        # Names first: pyarrow refuses a repeated name too, but as a "FieldRef" error.
        _refuse_repeated_fields(path, read_parquet_metadata(path).schema.to_arrow_schema().names)
        table = read_table(path)
        table.validate(full=True)  # string values that are not UTF-8
        _ = table.column_names  # names that are not UTF-8
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        why = _first_line(exc).replace(f" '{path}'", "")
        not_utf8 = isinstance(exc, UnicodeDecodeError) or "utf8" in why.lower().replace("-", "")
        what = "re-export it with UTF-8 text" if not_utf8 else "it is truncated or not Parquet; re-export it"
        raise SourceError(f"{path}: cannot be read as Parquet ({why}): {what}") from exc
    return _to_canonical(table, path)


# -- the canonical table -------------------------------------------------------------------


def _to_canonical(table: pa.Table, path: StoragePath) -> pa.Table:
    _require_columns(path, table.column_names, "")
    _refuse_repeated_fields(path, table.column_names)
    columns: dict[str, Sequence[str | None] | pa.ChunkedArray] = {}
    wrong: dict[int, list[str]] = {}  # row -> its fields of a wrong type (a few rows, if any)
    for name in table.column_names:
        canonical = canonical_name(name)
        if canonical is not None and canonical not in columns:
            columns[canonical] = _as_string(table.column(name), canonical, wrong)
    n = table.num_rows
    return _table(
        {name: columns.get(name, pa.nulls(n, pa.string())) for name in CANONICAL},
        _repeated(str(path), n),
        pa.array(np.arange(1, n + 1, dtype=np.int64)),
        wrong_type=[", ".join(wrong.get(i, ())) or None for i in range(n)] if wrong else None,
    )


def _repeated(text: str, n: int) -> pa.Array:
    """``text`` ``n`` times, as one string array built from its bytes tiled: the array
    ``pa.repeat`` gives, which appends the values one by one (0.4 s for 1M rows)."""
    value = text.encode("utf-8")
    if len(value) * n >= 1 << 31:  # beyond a string array's 32-bit offsets
        return pa.repeat(pa.scalar(text, pa.string()), n)
    offsets = np.arange(0, (n + 1) * len(value), len(value), dtype=np.int32) if value else np.zeros(n + 1, np.int32)
    return string_array(np.tile(np.frombuffer(value, np.uint8), n), offsets)


def _as_string(column: pa.ChunkedArray, name: str, wrong: dict[int, list[str]]) -> pa.ChunkedArray | list[str | None]:
    """A column as strings; values of a nested type become their JSON text and are noted in ``wrong``."""
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_nested(column.type):
        values = column.to_pylist()
        for i, value in enumerate(values):
            if value is not None:
                wrong.setdefault(i, []).append(f"{name}: {column.type}")
        return [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values]
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        out: list[str | None] = []
        for i, value in enumerate(column.to_pylist()):
            out.append(None if value is None else str(value))
            if isinstance(value, bytes):
                wrong.setdefault(i, []).append(f"{name}: {column.type} that is not UTF-8")
        return out


def _missing(names: Sequence[str]) -> list[str]:
    found = {canonical_name(name) for name in names}
    return [name for name in REQUIRED if name not in found]


def _require_columns(path: StoragePath, names: Sequence[str], hint: str) -> None:
    missing = _missing(names)
    if missing:
        # The header's own words stay out of the message (a log line, a metric): they are
        # the file's first line, whatever the file is. The fields they give are ours.
        given = sorted({n for n in map(canonical_name, names) if n is not None}, key=CANONICAL.index)
        raise SourceError(
            f"{path}: missing required column(s) {', '.join(missing)} (its {len(names)} column(s) give "
            f"{', '.join(given) or 'none of the fields'})" + (f": {hint}" if hint else "")
        )


def _refuse_repeated_fields(path: StoragePath, names: Sequence[str]) -> None:
    """Refuse a file where two columns give the same field (a name repeated, or two
    aliases such as an unnamed index column beside ``uniqueID``): which one holds it is
    a guess, and a wrong guess is silent."""
    repeated = _repeated_fields(names)
    if repeated:
        raise SourceError(f"{path}: {repeated}: keep one of them and deliver the file again")


def _repeated_fields(names: Sequence[str], what: str = "columns") -> str:
    """What repeats, as ``columns 'a' and 'b' all give review_id``; empty when nothing does.
    Only names that map to a field are quoted (they are aliases, not the file's content)."""
    columns: dict[str, list[str]] = {}
    for name in names:
        canonical = canonical_name(name)
        if canonical is not None:
            columns.setdefault(canonical, []).append(name)
    for field, found in columns.items():
        if len(found) > 1:
            return f"{what} {' and '.join(repr(n) for n in found)} all give {field}"
    return ""


def _table(
    columns: dict[str, Any],
    files: Any,
    rows: Any,
    malformed: list[str | None] | None = None,
    wrong_type: list[str | None] | None = None,
) -> pa.Table:
    n = len(rows)
    arrays = [
        *[_string_array(columns[name]) for name in CANONICAL],
        _string_array(files),
        rows if isinstance(rows, pa.Array) else pa.array(rows, pa.int64()),
        pa.array(malformed, pa.string()) if malformed is not None else pa.nulls(n, pa.string()),
        pa.array(wrong_type, pa.string()) if wrong_type is not None else pa.nulls(n, pa.string()),
    ]
    return pa.Table.from_arrays(arrays, schema=READ_SCHEMA)


def _string_array(values: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values
    return pa.array(values, pa.string())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
