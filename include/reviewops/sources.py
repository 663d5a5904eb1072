"""Reading a review source (file, folder or glob of CSV/TSV/JSONL/Parquet) as strings.

Every value is kept as the string found in the file, so validation sees exactly what
arrived; each row carries its source file and 1-based row number for lineage.
"""

from __future__ import annotations

import csv
import glob
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from reviewops.parsing import parse_dates
from reviewops.schema import CANONICAL, REQUIRED, SOURCE_FILE, SOURCE_ROW, canonical_name
from reviewops.windows import Window

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class SourceError(ValueError):
    """A source file that cannot be read as a whole; the message names file and problem."""


def list_source_files(source: str) -> list[Path]:
    """The files a source names, in a stable order; a clear error when there are none."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    elif any(ch in source for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
    elif path.is_file():
        files = [path]
    else:
        raise SourceError(f"{source}: no such file or folder (set REVIEWOPS_SOURCE or the source Param)")
    files = [f.resolve() for f in files if not f.name.startswith(".")]
    if not files:
        raise SourceError(f"{source}: no .csv, .tsv, .jsonl or .parquet files found")
    return files


def read_source_file(path: Path) -> pa.Table:
    """One file as a table of canonical string columns plus source_file and source_row."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SourceError(f"{path}: unsupported file type {path.suffix!r} (use csv, tsv, jsonl or parquet)")
    try:
        table = _read(path, kind)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot be read as {kind}: {_first_line(exc)}") from exc
    return _to_canonical(table, path)


def _read(path: Path, kind: str) -> pa.Table:
    if kind in ("csv", "tsv"):
        delimiter = "\t" if kind == "tsv" else ","
        names = _csv_header(path, delimiter)
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    if kind == "jsonl":
        return pajson.read_json(path)
    return pq.read_table(path)


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.readline()
    if not first.strip():
        raise SourceError(f"{path}: empty file or empty header line")
    header = next(csv.reader([first], delimiter=delimiter))
    # Keep duplicate header names apart so pyarrow accepts them; only the first maps.
    seen: dict[str, int] = {}
    names = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return names


def _to_canonical(table: pa.Table, path: Path) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for name in table.column_names:
        canonical = canonical_name(name)
        if canonical is not None and canonical not in columns:
            columns[canonical] = _as_string(table.column(name))
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise SourceError(
            f"{path}: missing required column(s) {', '.join(missing)} "
            f"(found {', '.join(repr(c) for c in table.column_names)})"
        )
    n = table.num_rows
    arrays = [columns.get(name, pa.nulls(n, pa.string())) for name in CANONICAL]
    arrays.append(pa.array([str(path)] * n, pa.string()))
    arrays.append(pa.array(range(1, n + 1), pa.int64()))
    return pa.Table.from_arrays(arrays, names=[*CANONICAL, SOURCE_FILE, SOURCE_ROW])


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.chunked_array([pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_source(source: str) -> pa.Table:
    """All files of a source, concatenated."""
    tables = [read_source_file(path) for path in list_source_files(source)]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def source_window(source: str) -> Window:
    """The whole weeks covering every parseable review date in the source."""
    dates = [d for d in parse_dates(read_source(source).column("review_date").to_pylist()) if d is not None]
    if not dates:
        raise SourceError(f"{source}: no row has a parseable review date")
    return Window.covering(min(dates), max(dates))
