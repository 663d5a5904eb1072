"""The Arrow validate and curate against the row-at-a-time oracle (``oracle_rowwise``):
on generated messy input both give the same valid rows, the same quarantined rows with the
same reasons and details, and the same curated rows and set-aside repeats, compared as the
Parquet rows they are written as."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from reviewops.config import SHIPPED_REVIEWS
from reviewops.data import validate
from reviewops.data.parsing import (
    check_texts,
    clean_text,
    clean_text_array,
    has_control_characters,
    is_blank_array,
    shows_nothing,
    strip_all,
)
from reviewops.data.schema import CANONICAL, CURATED_SCHEMA, QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_ROW
from reviewops.data.sources import MALFORMED, WRONG_TYPE, read_source
from reviewops.data.transform import curate_frame, curate_table
from reviewops.data.validate import ValidationOutcome, validate_frame, validate_table
from reviewops.lineage.record import Artifact
from reviewops.storage.paths import Layout

from . import oracle_rowwise
from .oracle_rowwise import curate_rowwise, validate_rowwise
from .samples import TODAY

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "reviewops-hypothesis")
MAX_CHARS = 60  # small, so text_too_long is reachable
EARLIEST = dt.date(1995, 1, 1)

# Whitespace Python's str.isspace accepts and RE2's \s does not, characters that show
# nothing, control characters, entities (escaped twice too), the scrape's quotes.
BLANKS = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u2028", "\u3000"]
INVISIBLE = ["\u200b", "\u200d", "\ufeff", "&#8203;", "&nbsp;", "\u00ad"]
CONTROL = ["\x00", "\x07", "\x1b", "\x7f", "\x08"]
ENTITIES = ["&amp;", "&#039;", "&quot;", "&amp;#039;", "&amp;amp;amp;", "&lt;b&gt;", "&copy", "&#x27;", "&bogus;", "&"]
# Those the Arrow path decodes itself, next to what must stay Python's: an "&" alone before
# a blank, "<", "&", ";" or the end; an entity cut short, escaped twice, or run together.
ENTITIES += ["&rsquo;", "&hellip;", "&apos;", "&#39;", "&amp;quot;", "&amp;rsquo;", "&&amp;", "&amp", "&rsquo"]
ENTITIES += [
    "& ",
    "&;",
    "&<",
    "&\t",
    "&\r",
    "&\x0c",
    "&amp;&amp;",
    "&#0039;",
    "&mdash;&ndash;",
    "&ldquo;&rdquo;&lsquo;",
]
WORDS = ["good", "bad", "Café", "ÉCOLE", "ǅ", "İ", "ß", "日本", "\U0001f44d", "K", "\u212a", "x", '"', '""']
piece = st.one_of(st.sampled_from(BLANKS + INVISIBLE + CONTROL + ENTITIES + WORDS), st.text(max_size=3))
texts = st.lists(piece, max_size=8).map("".join)
small_texts = st.lists(st.sampled_from(["a", "b", " ", '"', "&amp;", "\xa0"]), max_size=4).map("".join)

FORMATS = ("%B %d, %Y", "%b %d, %Y", "%Y-%m-%d", "%d %B %Y", "%Y/%m/%d")
some_days = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))
near_days = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 12, 31))
dates = st.one_of(
    st.tuples(st.one_of(near_days, some_days), st.sampled_from(FORMATS)).map(lambda p: p[0].strftime(p[1])),
    st.tuples(near_days, st.sampled_from(FORMATS), st.sampled_from(BLANKS)).map(lambda p: p[2] + p[0].strftime(p[1])),
    near_days.map(lambda d: d.strftime("%B %d, %Y").upper()),
    near_days.map(lambda d: d.strftime("%b %-d, %Y")),
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2030, 1, 1)).map(dt.datetime.isoformat),
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(dt.UTC)).map(
        lambda d: d.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()
    ),
    st.sampled_from(
        [
            "February 30, 2017",
            "2017-13-01",
            "2017-1-5",
            "20170105",
            "٢٠١٧-٠١-٠٥",
            "2017-01-05T",
            "2017-01-05 25:00",
            "May 30 2011",
            "30 May, 2011",
            "",
            "   ",
        ]
    ),
    texts,
)
labels = st.one_of(
    st.sampled_from(["positive", "neutral", "negative", "POSITIVE", " Neutral\t", "posİtive"]),
    st.integers(-2, 12).map(str),
    st.sampled_from(["07", " 7 ", "7.0", "1e1", "١٠", "１０", "+5", "010"]),
    texts,
)
counts = st.one_of(
    st.just(""),
    st.integers(-3, 2**64).map(str),
    st.sampled_from(
        ["007", " 12 ", "1_0", "١٠", "9223372036854775807", "9223372036854775808", "00000000000000000000001"]
    ),
    texts,
)
ids = st.one_of(st.sampled_from(["1", "2", " 2", "3\xa0"]), st.integers(0, 10**6).map(str), small_texts)
products = st.one_of(st.sampled_from(["Valsartan", "valsartan", " Nubain"]), small_texts, texts)
duplicated_texts = st.sampled_from(['"good"', "good", "Good", "good&amp;bad", " good ", "&quot;good&quot;"])
cells = {
    "review_id": ids,
    "product": products,
    "condition": st.one_of(st.none(), st.sampled_from(["", " ", "Pain"]), texts),
    "text": st.one_of(duplicated_texts, texts),
    "label": labels,
    "review_date": dates,
    "useful_count": counts,
}


@st.composite
def frames(draw: Any) -> pd.DataFrame:
    n = draw(st.integers(0, 25))
    data: dict[str, list[Any]] = {}
    for name in CANONICAL:
        data[name] = draw(
            st.lists(st.one_of(st.none(), cells[name]) if draw(st.booleans()) else cells[name], min_size=n, max_size=n)
        )
    # Copies of earlier rows, whole or with one field changed: exact duplicates and conflicts.
    for _ in range(draw(st.integers(0, 6)) if n else 0):
        source = draw(st.integers(0, n - 1))
        changed = draw(st.sampled_from([None, *CANONICAL]))
        for name in CANONICAL:
            value = data[name][source] if name != changed else draw(cells[name])
            data[name].append(value)
    total = len(data["review_id"])
    data[SOURCE_FILE] = ["f"] * total
    data[SOURCE_ROW] = list(range(1, total + 1))
    for marker in (MALFORMED, WRONG_TYPE):
        if draw(st.booleans()):
            data[marker] = draw(st.lists(st.one_of(st.none(), st.none(), texts), min_size=total, max_size=total))
    return pd.DataFrame(data).astype({name: "str" for name in CANONICAL if name in data})


def rows_of(frame: pd.DataFrame, schema: pa.Schema) -> list[dict[str, Any]]:
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False).to_pylist()


def assert_same_outcome(got: ValidationOutcome, want: oracle_rowwise.ValidationOutcome) -> None:
    assert rows_of(got.quarantined, QUARANTINE_SCHEMA) == rows_of(want.quarantined, QUARANTINE_SCHEMA)
    # The oracle's valid rows kept the text as it arrived and its curate cleaned it; the
    # valid rows now hold it cleaned (it is cleaned once).
    # (Cleaned in the rows, not the frame: a pandas copy of a count column holding None
    # and 2**63 - 1 turns the count into a float that Arrow refuses.)
    expected = [{**row, "text": clean_text(row["text"])} for row in rows_of(want.valid, CURATED_SCHEMA)]
    assert rows_of(got.valid, CURATED_SCHEMA) == expected
    assert got.reasons == want.reasons


def assert_same_curation(valid: pd.DataFrame, oracle_valid: pd.DataFrame) -> None:
    """curate of the valid rows against the oracle's curate of its own valid rows."""
    curated, duplicates = curate_frame(valid)
    # The old transform read its input back from Parquet like this (a set-aside repeat then
    # kept its count as "4", not "4.0").
    read_back = pa.Table.from_pandas(oracle_valid, schema=CURATED_SCHEMA, preserve_index=False)
    want_curated, want_duplicates = curate_rowwise(read_back.to_pandas(integer_object_nulls=True))
    assert rows_of(curated, CURATED_SCHEMA) == rows_of(want_curated, CURATED_SCHEMA)
    got = rows_of(duplicates, QUARANTINE_SCHEMA)
    assert got == rows_of(oracle_rowwise.as_quarantine(want_duplicates), QUARANTINE_SCHEMA)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames(), max_chars=st.sampled_from([MAX_CHARS, 10_000]))
def test_arrow_validate_and_curate_agree_with_the_row_at_a_time_oracle(frame: pd.DataFrame, max_chars: int) -> None:
    want = validate_rowwise(frame, max_chars, TODAY, EARLIEST)
    got = validate_frame(frame, max_chars, TODAY, EARLIEST)
    assert_same_outcome(got, want)
    assert_same_curation(got.valid, want.valid)
    # A batch read from Parquet comes in several chunks, which the steps keep as they are.
    names = [n for n in (*CANONICAL, MALFORMED, WRONG_TYPE, SOURCE_FILE) if n in frame]
    table = pa.table(
        {
            **{n: pa.array(frame[n].astype(object), pa.string(), from_pandas=True) for n in names},
            SOURCE_ROW: pa.array(frame[SOURCE_ROW], pa.int64()),
        }
    )
    chunked = validate_table(
        pa.Table.from_batches(table.to_batches(max_chunksize=3), table.schema), max_chars, TODAY, EARLIEST
    )
    assert chunked.valid_table.equals(got.valid_table) and chunked.quarantined_table.equals(got.quarantined_table)
    # Texts checked a few at a time (a repeated id's copies in different slices), and the
    # step that streams a raw file of several row groups, give the same rows.
    with mock.patch.object(validate, "SLICE_ROWS", 4):
        sliced = validate_table(table, max_chars, TODAY, EARLIEST)
        streamed = validate_file(table, max_chars)
    for outcome in (sliced, streamed):
        assert outcome.valid_table.to_pylist() == got.valid_table.to_pylist()
        assert outcome.quarantined_table.to_pylist() == got.quarantined_table.to_pylist()
    valid = got.valid_table
    pieces = pa.Table.from_batches(valid.to_batches(max_chunksize=2), valid.schema)
    assert [t.to_pylist() for t in curate_table(pieces)] == [t.to_pylist() for t in curate_table(valid)]


def validate_file(raw: pa.Table, max_chars: int) -> ValidationOutcome:
    """``validate_reviews`` of ``raw`` written as a raw batch of row groups of 5 rows."""
    with tempfile.TemporaryDirectory() as folder:
        layout = Layout(folder)
        path = layout.raw("k")
        path.parent.mkdir(parents=True)
        pq.write_table(raw, path, row_group_size=5)
        params = validate.ValidateParams(folder, "k", max_text_chars=max_chars, today=TODAY, earliest=EARLIEST)
        validate.validate_reviews(params, Artifact.of_file(path, "raw"))
        return ValidationOutcome(pq.read_table(layout.validated("k")), pq.read_table(layout.quarantine("k")))


def test_the_shipped_reviews_validate_and_curate_as_the_oracle_does() -> None:
    raw = read_source(str(SHIPPED_REVIEWS)).to_pandas()
    want = validate_rowwise(raw, 10_000, TODAY)
    got = validate_frame(raw, 10_000, TODAY)
    assert_same_outcome(got, want)
    assert_same_curation(got.valid, want.valid)


@settings(max_examples=200, deadline=None, database=None)
@given(values=st.lists(st.one_of(st.none(), texts, st.text()), max_size=30))
def test_arrow_text_kernels_agree_with_the_per_value_parsers(values: list[str | None]) -> None:
    array = pa.array(values, pa.string())
    cleaned = [clean_text(v or "") for v in values]
    # Slices too: their bytes start past the buffer's start.
    for offset in (0, 1):
        facts = check_texts(array.slice(offset))
        assert facts.cleaned.to_pylist() == cleaned[offset:]
        assert facts.blank.tolist() == [not v or not v.strip() for v in values[offset:]]
        assert facts.control.tolist() == [v is not None and has_control_characters(v) for v in values[offset:]]
        assert facts.empty.tolist() == [shows_nothing(c) for c in cleaned[offset:]]
        assert facts.lengths.tolist() == [len(c) for c in cleaned[offset:]]
    assert strip_all(array).to_pylist() == [None if v is None else v.strip() for v in values]
    assert is_blank_array(array).to_pylist() == [not v or not v.strip() for v in values]


def test_the_blanks_arrow_trims_and_collapses_are_exactly_what_str_isspace_accepts() -> None:
    from reviewops.data import parsing

    assert "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) == parsing._SPACES


def test_the_entities_of_review_scrapes_are_decoded_without_python(monkeypatch: Any) -> None:
    from reviewops.data import parsing

    values = ["It&#039;s", "a &amp; b", "&amp;quot;x&amp;quot;", "&rsquo;ok&hellip;", '"  q&nbsp;\r\n"', "&&amp;"]
    want = [clean_text(v) for v in values]

    def refuse(value: str) -> str:
        raise AssertionError(f"cleaned in Python: {value!r}")

    monkeypatch.setattr(parsing, "clean_text", refuse)
    assert clean_text_array(pa.array(values, pa.string())).to_pylist() == want
    with pytest.raises(AssertionError, match="cleaned in Python"):
        clean_text_array(pa.array(["&copy;"], pa.string()))  # not one of the entities decoded without Python
