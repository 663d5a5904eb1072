"""Validation: every row read ends valid or quarantined with the first reason that applies."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from reviewops.config import SHIPPED_REVIEWS, Settings
from reviewops.data import validate as v
from reviewops.data.ingest import IngestParams, ingest_reviews
from reviewops.data.parsing import clean_text
from reviewops.data.schema import CLASSES, QUARANTINE_SCHEMA, SOURCE_ROW
from reviewops.data.sources import MALFORMED, WRONG_TYPE, read_source, read_source_file, source_window
from reviewops.data.validate import (
    VALIDATED_SCHEMA,
    ValidateParams,
    ValidationOutcome,
    check_conservation,
    validate_frame,
    validate_reviews,
    validation_report,
    write_quarantined,
)
from reviewops.lineage.record import Artifact
from reviewops.storage.io import write_parquet
from reviewops.storage.paths import Layout

from .conftest import AppendRows
from .samples import HEADER, SLICE_ROWS, TODAY, Record, as_row, monday, source_date, tsv_line

MAX_CHARS = Settings().max_text_chars
NEW_ROW = SLICE_ROWS + 1  # source_row of the first row appended to the slice

Craft = Callable[[list[Record]], list[str]]


def changed(record: Record, **values: str) -> list[str]:
    """A real record with some source columns replaced (``id`` stands for the unnamed one)."""
    out = dict(record)
    if "id" in values:
        out[""] = values.pop("id")
    out.update(values)
    return as_row(out)


def fresh(records: list[Record], review_id: str = "900001", **values: str) -> list[str]:
    """A new review (an unused id) built from the first real one."""
    return changed(records[0], id=review_id, **values)


def long_text(records: list[Record], chars: int) -> str:
    """Real review words repeated to exactly ``chars`` characters once cleaned."""
    words = clean_text(records[0]["review"])
    text = ((words + " ") * (chars // len(words) + 1))[:chars].rstrip()
    return text + "x" * (chars - len(text))


def check(path: Path) -> tuple[pd.DataFrame, ValidationOutcome]:
    raw = read_source_file(path).to_pandas()
    outcome = validate_frame(raw, MAX_CHARS, TODAY)
    assert len(raw) == len(outcome.valid) + len(outcome.quarantined)
    assert sorted([*outcome.valid[SOURCE_ROW], *outcome.quarantined[SOURCE_ROW]]) == list(raw[SOURCE_ROW])
    return raw, outcome


def reason_of(outcome: ValidationOutcome, source_row: int) -> str:
    rows = outcome.quarantined[outcome.quarantined[SOURCE_ROW] == source_row]
    assert len(rows) == 1, f"row {source_row} was not quarantined"
    return str(rows["reason"].iloc[0])


def test_the_real_slice_is_all_valid_and_typed(review_slice: Path, slice_records: list[Record]) -> None:
    _, outcome = check(review_slice)

    assert outcome.quarantined.empty
    assert outcome.reasons == {}
    valid = outcome.valid
    assert list(valid.columns) == VALIDATED_SCHEMA.names
    assert list(valid["review_id"]) == [r[""] for r in slice_records]
    assert list(valid["review_date"]) == [source_date(r["date"]) for r in slice_records]
    assert list(valid["week"]) == [monday(source_date(r["date"])) for r in slice_records]
    assert list(valid["label"]) == [r["rating"] for r in slice_records]
    assert set(valid["label"]) <= set(CLASSES)
    assert list(valid["useful_count"]) == [int(r["usefulCount"]) for r in slice_records]
    # Valid rows carry the text cleaned, once (entities decoded, the scrape's quotes gone).
    assert list(valid["text"]) == [clean_text(r["review"]) for r in slice_records]
    assert any("&#039;" in r["review"] for r in slice_records) and not any("&#039;" in t for t in valid["text"])


def test_every_shipped_review_is_valid() -> None:
    outcome = validate_frame(read_source(str(SHIPPED_REVIEWS)).to_pandas(), MAX_CHARS, TODAY)

    assert len(outcome.valid) == 600
    assert outcome.reasons == {}


CRAFTED: dict[str, tuple[str, Craft]] = {
    "no id": (v.MISSING_FIELD, lambda r: changed(r[0], id=" ", review="Another review of this medicine.")),
    "no product": (v.MISSING_FIELD, lambda r: fresh(r, drugName="")),
    "no text": (v.MISSING_FIELD, lambda r: fresh(r, review="")),
    "no label": (v.MISSING_FIELD, lambda r: fresh(r, rating="  ")),
    "no date": (v.MISSING_FIELD, lambda r: fresh(r, date="")),
    "day-first date": (v.BAD_DATE, lambda r: fresh(r, date="30/05/2011")),
    "impossible date": (v.BAD_DATE, lambda r: fresh(r, date="February 30, 2011")),
    "tomorrow": (v.FUTURE_DATE, lambda r: fresh(r, date=(TODAY + dt.timedelta(days=1)).strftime("%B %d, %Y"))),
    "word label": (v.UNKNOWN_LABEL, lambda r: fresh(r, rating="great")),
    "zero stars": (v.UNKNOWN_LABEL, lambda r: fresh(r, rating="0")),
    "word count": (v.BAD_TYPE, lambda r: fresh(r, usefulCount="many")),
    "negative count": (v.BAD_TYPE, lambda r: fresh(r, usefulCount="-2")),
    "bell in text": (v.CONTROL_CHARACTERS, lambda r: fresh(r, review=r[0]["review"].replace(". ", ".\x07 ", 1))),
    "quotes only": (v.EMPTY_TEXT, lambda r: fresh(r, review='"   "')),
    "entity only": (v.EMPTY_TEXT, lambda r: fresh(r, review='"&nbsp;"')),
    "too long": (v.TEXT_TOO_LONG, lambda r: fresh(r, review=long_text(r, MAX_CHARS + 1))),
    "exact copy": (v.EXACT_DUPLICATE, lambda r: as_row(r[1])),
    # Reasons as strings: the tests must fail, not break, on code without them.
    "dated 1900": ("too_old_date", lambda r: fresh(r, date="January 1, 1900")),
    "dated 1970 in ISO": ("too_old_date", lambda r: fresh(r, date="1970-01-01")),
    "ten stars with a decimal": ("unknown_label", lambda r: fresh(r, rating="10.0")),
    "ten stars as an exponent": ("unknown_label", lambda r: fresh(r, rating="1e1")),
    "arabic-indic ten": ("unknown_label", lambda r: fresh(r, rating="١٠")),
    "full-width ten": ("unknown_label", lambda r: fresh(r, rating="１０")),
    "full-width count": ("bad_type", lambda r: fresh(r, usefulCount="１２")),
    "zero-width characters only": ("empty_text", lambda r: fresh(r, review='"\u200b\u200c\u2060\ufeff"')),
    "no-break and zero-width space entities": ("empty_text", lambda r: fresh(r, review='"&nbsp;&#8203;"')),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_bad_row_is_quarantined_for_its_reason_and_the_real_rows_stay_valid(
    case: str, review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    reason, craft = CRAFTED[case]
    append_rows(review_slice, [craft(slice_records)])

    raw, outcome = check(review_slice)

    assert len(raw) == NEW_ROW
    assert reason_of(outcome, NEW_ROW) == reason
    assert outcome.reasons == {reason: 1}
    assert list(outcome.valid[SOURCE_ROW]) == list(range(1, NEW_ROW))


def test_quarantined_rows_keep_the_values_as_read_and_say_why(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    append_rows(review_slice, [fresh(slice_records, date="30/05/2011"), fresh(slice_records, "900002", drugName=" ")])

    _, outcome = check(review_slice)

    bad_date, no_product = outcome.quarantined.sort_values(SOURCE_ROW).to_dict(orient="records")
    assert (bad_date["reason"], bad_date["detail"], bad_date["review_date"]) == (v.BAD_DATE, "30/05/2011", "30/05/2011")
    assert (no_product["reason"], no_product["detail"], no_product["product"]) == (v.MISSING_FIELD, "product", " ")
    assert bad_date["text"] == slice_records[0]["review"]


def test_text_of_exactly_the_limit_is_valid(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    append_rows(review_slice, [fresh(slice_records, review=long_text(slice_records, MAX_CHARS))])

    _, outcome = check(review_slice)

    assert outcome.quarantined.empty
    assert len(clean_text(outcome.valid["text"].iloc[-1])) == MAX_CHARS


def test_a_review_dated_today_is_not_in_the_future(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    append_rows(review_slice, [fresh(slice_records, date=TODAY.strftime("%B %d, %Y"))])

    _, outcome = check(review_slice)

    assert outcome.quarantined.empty
    assert outcome.valid["review_date"].iloc[-1] == TODAY


def test_the_first_reason_that_applies_is_the_one_recorded(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    # No product, a bad date, an unknown label and a bad count all at once.
    append_rows(review_slice, [fresh(slice_records, drugName="", date="soon", rating="meh", usefulCount="x")])

    _, outcome = check(review_slice)

    assert reason_of(outcome, NEW_ROW) == v.MISSING_FIELD
    assert outcome.quarantined["detail"].iloc[0] == "product"


def test_same_id_with_other_content_quarantines_every_copy(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    original = slice_records[0]
    append_rows(review_slice, [changed(original, review='"A different review under the same id."')])

    _, outcome = check(review_slice)

    assert reason_of(outcome, 1) == reason_of(outcome, NEW_ROW) == v.DUPLICATE_ID_CONFLICT
    assert outcome.reasons == {v.DUPLICATE_ID_CONFLICT: 2}
    assert original[""] not in set(outcome.valid["review_id"])
    assert len(outcome.valid) == SLICE_ROWS - 1


def test_an_exact_copy_keeps_the_first_and_quarantines_the_rest(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    # A re-delivered review: same id, same content up to spacing and entities.
    record = slice_records[2]
    respaced = changed(record, review=record["review"].replace("&#039;", "'").replace(" ", "  "))
    append_rows(review_slice, [as_row(record), respaced])

    _, outcome = check(review_slice)

    assert reason_of(outcome, NEW_ROW) == reason_of(outcome, NEW_ROW + 1) == v.EXACT_DUPLICATE
    assert list(outcome.valid["review_id"]).count(record[""]) == 1
    assert outcome.valid.loc[outcome.valid["review_id"] == record[""], SOURCE_ROW].item() == 3


def test_a_copy_that_is_quarantined_for_another_reason_is_not_a_duplicate(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    append_rows(review_slice, [changed(slice_records[0], date="not a date")])

    _, outcome = check(review_slice)

    assert outcome.reasons == {v.BAD_DATE: 1}
    assert slice_records[0][""] in set(outcome.valid["review_id"])


def test_every_row_is_accounted_for_when_all_faults_arrive_together(
    review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    crafted = []
    for i, (reason, craft) in enumerate(CRAFTED.values()):
        row = craft(slice_records)
        if row[0] == "900001":
            row[0] = f"9{i:05d}"
        crafted.append((reason, row))
    append_rows(review_slice, [row for _, row in crafted])

    raw, outcome = check(review_slice)

    assert len(raw) == SLICE_ROWS + len(crafted)
    for offset, (reason, _) in enumerate(crafted):
        assert reason_of(outcome, NEW_ROW + offset) == reason
    assert outcome.reasons == dict(sorted(Counter(reason for reason, _ in crafted).items()))
    assert len(outcome.valid) == SLICE_ROWS


def test_missing_values_of_a_jsonl_source_are_missing_fields(tmp_path: Path, slice_records: list[Record]) -> None:
    # JSON carries null and absent keys, not empty strings; optional ones may be absent.
    path = tmp_path / "reviews.jsonl"
    rows = [
        {"id": r[""], "drugName": r["drugName"], "review": r["review"], "rating": r["rating"], "date": r["date"]}
        for r in slice_records[:5]
    ]
    rows[1]["rating"] = None
    del rows[2]["date"]
    rows[3]["usefulCount"] = 7
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    raw = read_source_file(path).to_pandas()
    outcome = validate_frame(raw, MAX_CHARS, TODAY)

    assert outcome.quarantined[[SOURCE_ROW, "reason", "detail"]].to_dict(orient="records") == [
        {SOURCE_ROW: 2, "reason": v.MISSING_FIELD, "detail": "label"},
        {SOURCE_ROW: 3, "reason": v.MISSING_FIELD, "detail": "review_date"},
    ]
    counts = dict(zip(outcome.valid[SOURCE_ROW], outcome.valid["useful_count"], strict=True))
    assert counts[4] == 7
    assert all(pd.isna(counts[row]) for row in (1, 5))

    raw_path = write_parquet(read_source_file(path), Layout(tmp_path / "data").raw("k"))
    result = validate_reviews(
        ValidateParams(str(tmp_path / "data"), "k", today=TODAY), Artifact.of_file(raw_path, "raw")
    )
    written = pq.read_table(Layout(tmp_path / "data").quarantine("k")).select(["reason", "label", "review_date"])
    assert written.to_pylist() == [
        {"reason": v.MISSING_FIELD, "label": None, "review_date": rows[1]["date"]},
        {"reason": v.MISSING_FIELD, "label": rows[2]["rating"], "review_date": None},
    ]
    assert pq.read_table(Layout(tmp_path / "data").validated("k")).column("useful_count").to_pylist() == [None, 7, None]
    assert result.metrics["rows_valid"] == 3


def test_validate_reviews_writes_valid_and_quarantine_files_with_reasons(
    tmp_path: Path, review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    crafted = {"900001": v.BAD_DATE, "900002": v.UNKNOWN_LABEL, "900003": v.CONTROL_CHARACTERS}
    append_rows(
        review_slice,
        [
            fresh(slice_records, date="someday"),
            changed(slice_records[0], id="900002", rating="11"),
            changed(slice_records[0], id="900003", review="bell\x07"),
        ],
    )
    data_root = tmp_path / "data"
    key = "week=2011-05-30"
    raw_path = write_parquet(read_source_file(review_slice), Layout(data_root).raw(key))

    result = validate_reviews(ValidateParams(str(data_root), key, today=TODAY), Artifact.of_file(raw_path, "raw"))

    valid_file = Layout(data_root).validated(key)
    quarantine_file = Layout(data_root).quarantine(key)
    assert [a.path for a in result.outputs] == [valid_file, quarantine_file]
    assert [a.kind for a in result.outputs] == ["validated", "quarantine"]
    valid = pq.read_table(valid_file)
    quarantined = pq.read_table(quarantine_file)
    assert valid.schema.equals(VALIDATED_SCHEMA)
    assert quarantined.schema.equals(QUARANTINE_SCHEMA)
    assert valid.column("review_id").to_pylist() == [r[""] for r in slice_records]
    assert (
        dict(zip(quarantined.column("review_id").to_pylist(), quarantined.column("reason").to_pylist(), strict=True))
        == crafted
    )
    metrics = result.metrics
    assert metrics["rows_read"] == SLICE_ROWS + len(crafted) == metrics["rows_valid"] + metrics["rows_quarantined"]
    assert (metrics["rows_valid"], metrics["rows_quarantined"]) == (valid.num_rows, quarantined.num_rows)
    assert metrics["reasons"] == dict(Counter(crafted.values()))
    assert result.outputs[0].rows == valid.num_rows


def test_validate_reviews_of_a_clean_batch_writes_an_empty_quarantine(tmp_path: Path, review_slice: Path) -> None:
    data_root = tmp_path / "data"
    raw_path = write_parquet(read_source_file(review_slice), Layout(data_root).raw("k"))

    result = validate_reviews(ValidateParams(str(data_root), "k", today=TODAY), Artifact.of_file(raw_path, "raw"))

    quarantined = pq.read_table(Layout(data_root).quarantine("k"))
    assert quarantined.num_rows == 0
    assert quarantined.schema.equals(QUARANTINE_SCHEMA)
    assert result.metrics["reasons"] == {}
    assert result.metrics["rows_valid"] == SLICE_ROWS


# -- rows the reader could not split, and values of the wrong type ---------------------------


def test_a_malformed_row_is_quarantined_with_its_text_and_row_number(
    review_slice: Path, slice_records: list[Record]
) -> None:
    with open(review_slice, "a", encoding="utf-8", newline="") as handle:
        handle.write("900001\tValsartan\tonly three fields\n")
        handle.write(tsv_line(fresh(slice_records, "900002")))
        handle.write(tsv_line([*fresh(slice_records, "900003"), "an eighth field"]))

    _, outcome = check(review_slice)

    assert outcome.reasons == {v.MALFORMED_ROW: 2}
    quarantined = outcome.quarantined.sort_values(SOURCE_ROW).to_dict(orient="records")
    assert [q[SOURCE_ROW] for q in quarantined] == [NEW_ROW, NEW_ROW + 2]
    assert quarantined[0]["detail"] == "3 fields, expected 7: 900001\tValsartan\tonly three fields"
    assert quarantined[1]["detail"].endswith("\tan eighth field")
    assert quarantined[0]["review_id"] is None
    assert list(outcome.valid[SOURCE_ROW]) == [*range(1, NEW_ROW), NEW_ROW + 1]
    assert MALFORMED not in outcome.quarantined.columns and WRONG_TYPE not in outcome.quarantined.columns


def test_lists_and_objects_are_bad_type_and_numbers_are_their_text(tmp_path: Path, slice_records: list[Record]) -> None:
    first = slice_records[0]
    base = {"id": "1", "drugName": first["drugName"], "review": first["review"], "rating": 8, "date": first["date"]}
    rows = [
        base,
        {**base, "id": 2, "review": 12345, "usefulCount": 3},  # numbers where strings are expected: fine
        {**base, "id": "3", "review": ["a", "list"]},
        {**base, "id": "4", "drugName": {"name": "Valsartan"}},
        {**base, "id": "5", "review": ["a list"], "drugName": None},  # the type is reported before the gap
        "not an object",
    ]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    raw = read_source_file(path).to_pandas()
    outcome = validate_frame(raw, MAX_CHARS, TODAY)

    assert outcome.quarantined[[SOURCE_ROW, "reason", "detail"]].to_dict(orient="records") == [
        {SOURCE_ROW: 3, "reason": v.BAD_TYPE, "detail": "text: list"},
        {SOURCE_ROW: 4, "reason": v.BAD_TYPE, "detail": "product: object"},
        {SOURCE_ROW: 5, "reason": v.BAD_TYPE, "detail": "text: list"},
        {SOURCE_ROW: 6, "reason": v.MALFORMED_ROW, "detail": 'a JSON string, not an object: "not an object"'},
    ]
    assert list(outcome.valid["text"]) == [clean_text(first["review"]), "12345"]
    assert list(outcome.valid["label"]) == ["positive", "positive"]
    assert [None if pd.isna(c) else int(c) for c in outcome.valid["useful_count"]] == [None, 3]


def test_a_batch_written_before_the_reader_marked_rows_still_validates(review_slice: Path) -> None:
    raw = read_source_file(review_slice).drop_columns([MALFORMED, WRONG_TYPE]).to_pandas()

    outcome = validate_frame(raw, MAX_CHARS, TODAY)

    assert (len(outcome.valid), len(outcome.quarantined)) == (SLICE_ROWS, 0)


def test_ingest_carries_malformed_rows_into_every_batch_and_validate_quarantines_them(
    tmp_path: Path, review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    append_rows(review_slice, [fresh(slice_records, date="30/05/2011")])
    with open(review_slice, "a", encoding="utf-8", newline="") as handle:
        handle.write("only\ttwo\n")
    data_root = tmp_path / "data"
    window = source_window(str(review_slice))

    ingested, _ = ingest_reviews(IngestParams(str(review_slice), str(data_root), window))
    result = validate_reviews(ValidateParams(str(data_root), ingested.subject, today=TODAY), ingested.outputs[0])

    metrics = result.metrics
    assert ingested.metrics["rows_read"] == metrics["rows_read"] == SLICE_ROWS + 2
    assert metrics["rows_read"] == metrics["rows_valid"] + metrics["rows_quarantined"]
    assert metrics["reasons"] == {v.BAD_DATE: 1, v.MALFORMED_ROW: 1}
    written = pq.read_table(Layout(data_root).quarantine(ingested.subject)).to_pylist()
    malformed = next(q for q in written if q["reason"] == v.MALFORMED_ROW)
    assert (malformed[SOURCE_ROW], malformed["detail"]) == (NEW_ROW + 1, "2 fields, expected 7: only\ttwo")
    assert malformed["source_file"] == str(review_slice.resolve())


def test_rows_read_must_equal_valid_plus_quarantined(review_slice: Path) -> None:
    _, outcome = check(review_slice)

    check_conservation(SLICE_ROWS, outcome)
    with pytest.raises(AssertionError, match=f"validation lost rows: {SLICE_ROWS + 1} read, {SLICE_ROWS} valid"):
        check_conservation(SLICE_ROWS + 1, outcome)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_quarantined_rows_are_written_with_their_reasons_as_parquet_or_csv(
    suffix: str, tmp_path: Path, review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    append_rows(review_slice, [fresh(slice_records, rating="great"), fresh(slice_records, "900002", date="soon")])
    _, outcome = check(review_slice)

    path = write_quarantined(outcome, tmp_path / "out" / f"quarantine{suffix}")

    read = pq.read_table(path) if suffix == ".parquet" else pacsv.read_csv(path)
    assert read.column_names == QUARANTINE_SCHEMA.names
    assert read.column("reason").to_pylist() == [v.UNKNOWN_LABEL, v.BAD_DATE]
    assert read.column(SOURCE_ROW).to_pylist() == [NEW_ROW, NEW_ROW + 1]
    assert read.column("detail").to_pylist() == ["great", "soon"]


def test_the_report_counts_rows_and_reasons_in_total_and_per_file(
    tmp_path: Path, review_slice: Path, slice_records: list[Record], append_rows: AppendRows
) -> None:
    append_rows(review_slice, [fresh(slice_records, rating="great")])
    other = tmp_path / "other.tsv"
    other.write_text(tsv_line(HEADER) + tsv_line(fresh(slice_records, "900002", date="soon")), encoding="utf-8")
    raw = pa.concat_tables([read_source_file(review_slice), read_source_file(other)]).to_pandas()

    report = validation_report(raw, validate_frame(raw, MAX_CHARS, TODAY))

    assert report == {
        "rows_read": NEW_ROW + 1,
        "rows_valid": SLICE_ROWS,
        "rows_quarantined": 2,
        "reasons": {v.BAD_DATE: 1, v.UNKNOWN_LABEL: 1},
        "files": [
            {
                "file": str(review_slice),
                "rows_read": NEW_ROW,
                "rows_valid": SLICE_ROWS,
                "rows_quarantined": 1,
                "reasons": {v.UNKNOWN_LABEL: 1},
            },
            {"file": str(other), "rows_read": 1, "rows_valid": 0, "rows_quarantined": 1, "reasons": {v.BAD_DATE: 1}},
        ],
    }


def test_a_date_with_a_time_zone_offset_falls_in_its_utc_day_and_week(tmp_path: Path) -> None:
    # Sunday 23:30 at UTC-5 is Monday 04:30 UTC: the next week, as every week is in UTC.
    row = {"id": "1", "drugName": "a", "review": "Worked well.", "rating": "9", "date": "2011-05-29T23:30:00-05:00"}
    path = tmp_path / "reviews.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")

    _, outcome = check(path)

    assert list(outcome.valid["review_date"]) == [dt.date(2011, 5, 30)]
    assert list(outcome.valid["week"]) == [dt.date(2011, 5, 30)]


def test_too_old_is_before_the_configured_earliest_review_date(review_slice: Path, append_rows: AppendRows) -> None:
    append_rows(review_slice, [["900001", "a", "", "Worked well.", "9", "December 31, 1999", "0"]])
    raw = read_source_file(review_slice).to_pandas()

    default = validate_frame(raw, MAX_CHARS, TODAY)
    stricter = validate_frame(raw, MAX_CHARS, TODAY, earliest=dt.date(2000, 1, 1))

    assert Settings().earliest_review_date == dt.date(1995, 1, 1)
    assert default.reasons == {}
    assert stricter.reasons == {"too_old_date": 1}
    assert stricter.quarantined["detail"].tolist() == ["1999-12-31 < 2000-01-01 (earliest_review_date)"]
