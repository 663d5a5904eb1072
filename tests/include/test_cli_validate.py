"""``reviewops validate``: the pipeline's validation of a file or folder, loading nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from reviewops.cli import main
from reviewops.config import SHIPPED_REVIEWS
from reviewops.data import validate as v
from reviewops.data.schema import QUARANTINE_SCHEMA, SOURCE_ROW

from .conftest import AppendRows
from .samples import SLICE_ROWS, Record, as_row, shipped_text
from .test_sources import BROKEN, write_broken

NEW_ROW = SLICE_ROWS + 1


def run(capsys: pytest.CaptureFixture[str], *args: str, data_root: Path | None = None) -> tuple[int, str, str]:
    code = main([*(["--data-root", str(data_root)] if data_root else []), "validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def report(capsys: pytest.CaptureFixture[str], *args: str, data_root: Path | None = None) -> dict[str, Any]:
    code, out, err = run(capsys, *args, "--json", data_root=data_root)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture
def faulty_slice(review_slice: Path, slice_records: list[Record], append_rows: AppendRows) -> Path:
    """The real slice plus a review with a word for a rating and a row cut short."""
    append_rows(review_slice, [[*as_row(slice_records[0])[:4], "great", *as_row(slice_records[0])[5:]]])
    with open(review_slice, "a", encoding="utf-8", newline="") as handle:
        handle.write("900002\tcut short\n")
    return review_slice


def test_the_shipped_file_is_all_valid(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = report(capsys, "--input", str(SHIPPED_REVIEWS))

    assert {k: data[k] for k in ("rows_read", "rows_valid", "rows_quarantined", "reasons")} == {
        "rows_read": 600,
        "rows_valid": 600,
        "rows_quarantined": 0,
        "reasons": {},
    }
    assert [f["file"] for f in data["files"]] == [str(SHIPPED_REVIEWS.resolve())]
    assert data["files_rejected"] == []


def test_bad_rows_are_counted_by_reason_and_written_out_when_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, faulty_slice: Path
) -> None:
    out = tmp_path / "checked" / "quarantine.parquet"
    data_root = tmp_path / "data"

    data = report(capsys, "--input", str(faulty_slice), "--quarantine-out", str(out), data_root=data_root)

    assert (data["rows_read"], data["rows_valid"], data["rows_quarantined"]) == (NEW_ROW + 1, SLICE_ROWS, 2)
    assert data["reasons"] == {v.MALFORMED_ROW: 1, v.UNKNOWN_LABEL: 1}
    assert data["quarantine_out"] == str(out)
    written = pq.read_table(out)
    assert written.schema.equals(QUARANTINE_SCHEMA)
    assert sorted(zip(written.column(SOURCE_ROW).to_pylist(), written.column("reason").to_pylist(), strict=True)) == [
        (NEW_ROW, v.UNKNOWN_LABEL),
        (NEW_ROW + 1, v.MALFORMED_ROW),
    ]
    assert not data_root.exists(), "validate must not load anything into the data root"


def test_text_output_shows_each_file_and_the_total_and_csv_is_written_for_a_csv_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, faulty_slice: Path
) -> None:
    out = tmp_path / "quarantine.csv"

    code, text, err = run(capsys, "--input", str(faulty_slice), "--quarantine-out", str(out))

    assert (code, err) == (0, "")
    lines = text.splitlines()
    assert lines[1].split() == [
        str(NEW_ROW + 1),
        str(SLICE_ROWS),
        "2",
        str(faulty_slice),
        "(malformed_row=1,",
        "unknown_label=1)",
    ]
    assert lines[2].split()[:4] == [str(NEW_ROW + 1), str(SLICE_ROWS), "2", "total"]
    assert pacsv.read_csv(out).column("reason").to_pylist() == [v.UNKNOWN_LABEL, v.MALFORMED_ROW]


def test_a_folder_with_a_bad_file_reports_it_and_validates_the_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.tsv").write_text(shipped_text(SLICE_ROWS), encoding="utf-8", newline="")
    (folder / "b.tsv").write_text(shipped_text(SLICE_ROWS + 5, first=SLICE_ROWS), encoding="utf-8", newline="")
    bad = write_broken("latin-1", folder / "c")

    data = report(capsys, "--input", str(folder))

    assert (data["rows_read"], data["rows_valid"], data["rows_quarantined"]) == (SLICE_ROWS + 5, SLICE_ROWS + 5, 0)
    assert [(Path(f["file"]).name, f["rows_read"]) for f in data["files"]] == [("a.tsv", SLICE_ROWS), ("b.tsv", 5)]
    assert [r["file"] for r in data["files_rejected"]] == [str(bad)]
    assert data["files_rejected"][0]["error"].startswith(f"{bad}: is not UTF-8 text")
    code, text, _ = run(capsys, "--input", str(folder))
    assert code == 0
    assert f"rejected: {bad}: is not UTF-8 text" in text


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_single_file_that_cannot_be_read_exits_2_with_one_line(
    case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_broken(case, tmp_path)

    code, out, err = run(capsys, "--input", str(path), "--quarantine-out", str(tmp_path / "q.parquet"))

    assert (code, out) == (2, "")
    assert err.startswith(f"reviewops: {path}: ") and err.endswith("\n") and err.count("\n") == 1
    assert not (tmp_path / "q.parquet").exists()


def test_a_folder_where_no_file_can_be_read_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_broken("gzip under .csv", tmp_path / "drop" / "one")
    write_broken("empty", tmp_path / "drop" / "two")

    code, out, err = run(capsys, "--input", str(tmp_path / "drop"))

    assert (code, out) == (2, "")
    assert err.startswith(f"reviewops: {tmp_path / 'drop'}: none of its 2 file(s) could be read")
    assert err.count("\n") == 1


def test_the_installed_command_exits_with_the_codes(tmp_path: Path, faulty_slice: Path) -> None:
    command = [str(Path(sys.executable).parent / "reviewops"), "validate", "--json", "--input"]
    bad = write_broken("gzip under .csv", tmp_path / "bad")

    readable = subprocess.run([*command, str(faulty_slice)], capture_output=True, text=True, timeout=120)
    unreadable = subprocess.run([*command, str(bad)], capture_output=True, text=True, timeout=120)

    assert readable.returncode == 0, readable.stderr
    assert json.loads(readable.stdout)["rows_quarantined"] == 2
    assert unreadable.returncode == 2
    assert unreadable.stderr.splitlines() == [
        f"reviewops: {bad}: holds gzip-compressed data, not csv text: decompress it and deliver the plain .csv file"
    ]
