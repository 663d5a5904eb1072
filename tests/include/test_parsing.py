"""Parsing the strings found in review sources: dates, labels, counts and text."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest

from reviewops.data.parsing import (
    clean_text,
    content_key,
    has_control_characters,
    parse_count,
    parse_date,
    parse_dates,
    parse_label,
    shows_nothing,
)

from .samples import Record, shipped_records, source_date

ENTITY = re.compile(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)


def first_review_with(fragment: str) -> Record:
    return next(r for r in shipped_records() if fragment in r["review"])


@pytest.mark.parametrize(
    "text",
    [
        "May 30, 2011",
        "  May 30, 2011 ",
        "may 30, 2011",
        "May 30, 2011".replace("May", "MAY"),
        "2011-05-30",
        "2011-05-30T18:45:00",
        "2011-05-30T18:45:00+02:00",
        "2011-05-30 18:45:00",
        "2011-05-30 00:00:00.000000",
        "2011-05-30 09:30:00.000000000Z",
        "30 May 2011",
        "2011/05/30",
    ],
)
def test_parse_date_reads_every_form_seen_in_sources(text: str) -> None:
    assert parse_date(text) == dt.date(2011, 5, 30)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2011-05-30T23:30:00-05:00", dt.date(2011, 5, 31)),  # 04:30 UTC the next day
        ("2011-05-31T01:00:00+02:00", dt.date(2011, 5, 30)),  # 23:00 UTC the day before
        ("2011-05-30 23:59:59-00:01", dt.date(2011, 5, 31)),
        ("2011-05-30T23:30:00", dt.date(2011, 5, 30)),  # no offset: the day as written
    ],
)
def test_parse_date_puts_a_time_with_an_offset_in_its_utc_day(text: str, day: dt.date) -> None:
    assert parse_date(text) == day


def test_parse_date_reads_abbreviated_month_names() -> None:
    assert parse_date("Sep 14, 2016") == dt.date(2016, 9, 14)


@pytest.mark.parametrize(
    "text",
    # February 30th, a day-first slash form, a word and empty values.
    [
        None,
        "",
        "   ",
        "February 30, 2011",
        "30/05/2011",
        "yesterday",
        "2011-13-01",
        "May 2011",
        "2011-05-30 junk",
        "2011-05-30Tnoon",
    ],
)
def test_parse_date_gives_none_for_what_is_not_a_date(text: str | None) -> None:
    assert parse_date(text) is None


def test_parse_date_reads_every_shipped_date_like_the_standard_library() -> None:
    dates = [r["date"] for r in shipped_records()]

    assert parse_dates(dates) == [source_date(d) for d in dates]


def test_parse_dates_keeps_order_and_position_of_repeats_and_junk() -> None:
    values = ["May 30, 2011", None, "junk", "May 30, 2011", "2012-01-02"]

    assert parse_dates(values) == [parse_date(v) for v in values]
    assert parse_dates(values)[3] == dt.date(2011, 5, 30)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("positive", "positive"),
        ("POSITIVE", "positive"),
        (" Negative ", "negative"),
        ("nEuTrAl", "neutral"),
    ],
)
def test_parse_label_reads_class_words_in_any_case(text: str, label: str) -> None:
    assert parse_label(text) == label


@pytest.mark.parametrize(
    ("stars", "label"),
    [
        *[(str(s), "negative") for s in (1, 2, 3, 4)],
        *[(str(s), "neutral") for s in (5, 6)],
        *[(str(s), "positive") for s in (7, 8, 9, 10)],
        (" 5 ", "neutral"),
    ],
)
def test_parse_label_maps_one_to_ten_stars_like_the_shipped_file(stars: str, label: str) -> None:
    assert parse_label(stars) == label


@pytest.mark.parametrize("text", [None, "", "good", "0", "11", "-3", "4.5", "nan", "inf", "positive!"])
def test_parse_label_gives_none_for_junk(text: str | None) -> None:
    assert parse_label(text) is None


@pytest.mark.parametrize(
    "text",
    # Numbers int() and float() accept that no rating column holds: exponents, decimals,
    # digit separators, signs, Arabic-Indic, Extended Arabic-Indic, Devanagari and
    # full-width digits.
    ["1e1", "10.0", "7.0", "1_0", "+7", "١٠", "٧", "۷", "७", "１０", "７"],
)
def test_parse_label_refuses_numbers_that_are_not_plain_ratings(text: str) -> None:
    assert parse_label(text) is None


def test_parse_label_reads_every_shipped_label_unchanged() -> None:
    labels = [r["rating"] for r in shipped_records()]

    assert [parse_label(v) for v in labels] == labels


@pytest.mark.parametrize(
    ("text", "count"), [("12", 12), (" 3 ", 3), ("0", 0), (str(2**63 - 1), 2**63 - 1), ("", None), (None, None)]
)
def test_parse_count_reads_non_negative_integers(text: str | None, count: int | None) -> None:
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["-1", "1.5", "many", str(2**63), "9" * 5000, "1e1", "1_000", "+5", "١٢", "１２"])
def test_parse_count_raises_on_what_is_not_a_count(text: str) -> None:
    # Counts are stored as int64; a longer number is not a count either.
    with pytest.raises(ValueError):
        parse_count(text)


def test_clean_text_decodes_a_right_single_quote_and_collapses_double_spaces() -> None:
    raw = first_review_with("&rsquo;")["review"]

    cleaned = clean_text(raw)

    assert "couldn’t help it much" in cleaned
    assert "  " in raw and "  " not in cleaned
    assert ENTITY.search(cleaned) is None


def test_clean_text_decodes_apostrophes_and_ampersands_of_a_real_review() -> None:
    raw = first_review_with("ineffectiveness &amp; I")["review"]

    cleaned = clean_text(raw)

    assert "before 'pooping out' last year" in cleaned
    assert "cause of it's ineffectiveness & I have learned my lesson" in cleaned
    assert ENTITY.search(cleaned) is None


def test_clean_text_removes_the_scrape_quotes_around_the_review() -> None:
    record = shipped_records(1)[0]
    # The stdlib csv module unquotes """text""" to "text"; the file holds the triple form.
    triple_quoted = f'""{record["review"]}""'

    for raw in (record["review"], triple_quoted):
        cleaned = clean_text(raw)
        assert cleaned.startswith("I recently received an injection of nalbuphine")
        assert cleaned.endswith("that actually helped severe pain.")


def test_clean_text_joins_lines_of_a_multi_line_review() -> None:
    raw = first_review_with("Tremors seem to be getting worse")["review"]

    cleaned = clean_text(raw)

    assert "\n" in raw
    assert "\n" not in cleaned
    assert "for many years. Maybe I should ask my doctor" in cleaned


def test_clean_text_of_every_shipped_review_is_its_decoded_words() -> None:
    for record in shipped_records():
        raw = record["review"]
        cleaned = clean_text(raw)
        assert ENTITY.search(cleaned) is None, record[""]
        assert not re.search(r"\s{2}|[\n\t]", cleaned), record[""]
        assert cleaned == cleaned.strip()
        # Same words in the same order: only the scrape quotes and whitespace removed
        # (a review can end with a quote of its own, decoded from &quot;).
        assert raw[0] == raw[-1] == '"'
        assert cleaned.split() == html.unescape(raw[1:-1]).split(), record[""]


def test_clean_text_decodes_entities_escaped_twice() -> None:
    assert clean_text("it&amp;#039;s fine &amp;amp; cheap") == "it's fine & cheap"


def test_clean_text_keeps_a_quote_the_reviewer_wrote_at_the_end() -> None:
    raw = first_review_with("wonderful &quot;side-effect&quot;")["review"]

    assert clean_text(raw).endswith('What a wonderful "side-effect"')


def test_clean_text_keeps_quotes_inside_the_text() -> None:
    assert (
        clean_text('"My doctor said "give it time" and she was right"')
        == 'My doctor said "give it time" and she was right'
    )


def test_clean_text_of_quotes_and_blanks_only_is_empty() -> None:
    assert clean_text('"""   """') == ""
    assert clean_text(" &nbsp; ") == ""


def test_control_characters_are_found_but_tabs_and_newlines_are_not_control() -> None:
    assert has_control_characters("bell \x07 in text")
    assert has_control_characters("nul \x00")
    assert not has_control_characters("tab\tnew\nline\r\n")
    assert not any(has_control_characters(r["review"]) for r in shipped_records())


def test_content_key_ignores_case_entities_quotes_and_spacing() -> None:
    record = first_review_with("&#039;")
    variant = html.unescape(record["review"]).upper().replace(" ", "  ")

    assert content_key(record["drugName"], record["review"]) == content_key(f" {record['drugName'].upper()}", variant)
    assert content_key(record["drugName"], record["review"]) != content_key("Other product", record["review"])


@pytest.mark.parametrize(
    "raw",
    [
        "\u200b",
        "\u200b\u200c\u200d\u2060\ufeff",
        "&nbsp;&#8203;",
        "&#8203; &zwnj;&zwj;",
        '"\u200b"',
        "\u00a0\u3000\u2028",
    ],
)
def test_a_text_of_zero_width_characters_and_blanks_shows_nothing(raw: str) -> None:
    assert shows_nothing(clean_text(raw))


def test_a_text_with_one_visible_character_shows_something() -> None:
    assert not shows_nothing(clean_text("&#8203;ok\u200b"))
    assert not shows_nothing(clean_text("\U0001f44d"))  # an emoji alone is a review
