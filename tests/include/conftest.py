"""Fixtures of the domain tests: files holding slices of the real shipped reviews."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests import gcsfake

from .samples import SLICE_ROWS, Record, shipped_records, shipped_text, tsv_line

AppendRows = Callable[[Path, Sequence[Sequence[str]]], None]


@pytest.fixture
def slice_records() -> list[Record]:
    """The reviews of ``review_slice``, read independently by the stdlib csv module."""
    return shipped_records(SLICE_ROWS)


@pytest.fixture
def review_slice(tmp_path: Path) -> Path:
    """A TSV holding the header and the first SLICE_ROWS real reviews, byte for byte."""
    path = tmp_path / "source" / "reviews.tsv"
    path.parent.mkdir()
    path.write_text(shipped_text(SLICE_ROWS), encoding="utf-8", newline="")
    return path


@pytest.fixture
def append_rows() -> AppendRows:
    """Append hand-built rows (values in the shipped header's order) to a TSV."""

    def append(path: Path, rows: Sequence[Sequence[str]]) -> None:
        with open(path, "a", encoding="utf-8", newline="") as handle:
            for row in rows:
                handle.write(tsv_line(row))

    return append


@pytest.fixture
def fake_gcs(tmp_path: Path) -> Iterator[Path]:
    """``gs://`` served by the fake object store (tests/gcsfake.py) for the test; yields
    the local folder its buckets live in."""
    with gcsfake.installed(tmp_path / "fake-gcs") as root:
        yield root
