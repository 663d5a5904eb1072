"""The batch safety scan (an Arrow prefilter, then the per-review scan on the texts it
cannot rule out) gives exactly the per-review flags: on every shipped review and on texts
built to slip past a careless prefilter."""

from __future__ import annotations

import pytest

from reviewops.data.safety import candidates, load_toxic_terms, scan_text, scan_texts
from tests.conftest import shipped_records

ADVERSARIAL = [
    "Call me at 555-123-4567 tomorrow",
    "Call me at ٥٥٥-١٢٣-٤٥٦٧ tomorrow",  # Arabic-Indic digits: Python's \d matches them
    "Call me at ５５５-１２３-４５６７",  # full-width digits
    "ring (020) 7946\u00a00958 now",  # a no-break space between the runs
    "ring 020\n7946 0958",  # a line break between the runs
    "+44 20 7946 0958",
    "took 16-24mg then 100-150mcg",  # dosages: hints, but no phone
    "Mail ME at John.Doe@Example.COM",
    "see WWW.DRUGS.COM/reviews",
    "HTTPS://example.org/x",
    "read it on nhs.uk please",
    "drugs.comé is not a domain",
    "This stuff is BULLSHIT",
    "This stuff is bull\tshit",  # not the term: no flag
    "a piece  of   SHIT drug",
    "shİt",  # Python lowercases İ to i + a combining dot
    "\u212aill it",  # the Kelvin sign lowercases to k
    "",
    "   ",
    "nothing to see here at all",
]


def test_the_batch_scan_equals_the_per_review_scan_on_the_shipped_reviews() -> None:
    header, records = shipped_records()
    texts = [row[header.index("review")] for row in records]
    assert scan_texts(texts) == [scan_text(t) for t in texts]
    # The prefilter is what makes it fast: most reviews are ruled out.
    assert sum(candidates(texts)) < len(texts) / 2


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_the_batch_scan_equals_the_per_review_scan_on_adversarial_text(text: str) -> None:
    (flags,) = scan_texts([text])
    assert flags == scan_text(text)
    if scan_text(text).flagged:
        assert candidates([text]) == [True]


def test_every_lexicon_term_in_any_case_is_a_candidate() -> None:
    terms = load_toxic_terms()
    texts = [f"so {term.upper()}!" for term in terms] + [f"({term.title()})" for term in terms]
    assert all(candidates(texts))
    assert scan_texts(texts) == [scan_text(t) for t in texts]


def test_the_arrow_columns_of_the_scan_hold_each_texts_flags() -> None:
    import pyarrow as pa

    from reviewops.data.safety import scan_text_array

    header, records = shipped_records()
    texts = [*ADVERSARIAL, *(row[header.index("review")] for row in records)]
    categories, scores = scan_text_array(pa.chunked_array([texts[:7], texts[7:]], pa.string()))
    flags = [scan_text(t) for t in texts]
    assert categories.type == pa.list_(pa.string()) and scores.type == pa.float32()
    assert categories.to_pylist() == [list(f.categories) for f in flags]
    assert scores.to_pylist() == pytest.approx([f.score for f in flags])
    assert any(f.flagged for f in flags) and not all(f.flagged for f in flags)
