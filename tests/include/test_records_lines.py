"""records.Lines: a file's physical lines found as offsets are exactly the lines
``bytes.splitlines(keepends=True)`` gives (LF, CRLF and CR ends), also when a CRLF or a
line falls across the pieces the scan reads."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from reviewops.data.records import Lines

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "reviewops-hypothesis")


class SmallPieces(Lines):
    _CHUNK = 3


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.lists(st.sampled_from([b"a", b"\xc3\xa9", b"\r", b"\n", b"\r\n", b"\t"]), max_size=20).map(b"".join))
def test_lines_are_the_lines_splitlines_gives(data: bytes) -> None:
    want = data.splitlines(keepends=True)
    for lines in (Lines(data), SmallPieces(data)):
        assert len(lines) == len(want)
        assert list(lines) == want
        assert lines[1:4] == want[1:4]
        if want:
            assert lines[-1] == want[-1]
