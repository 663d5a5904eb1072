"""Safety flags: the real shipped reviews stay unflagged (their numbers are dosages,
dates and pain scores), while texts carrying an email, a phone number, a URL or abuse
are flagged with the right category and score."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from reviewops.data.parsing import clean_text
from reviewops.data.safety import (
    CATEGORIES,
    TOXIC_TERMS_FILE,
    SafetyFlags,
    load_toxic_terms,
    scan_text,
    scan_texts,
    toxic_matches,
)

from .samples import shipped_records

# Number shapes that real reviews use and that a loose phone pattern would catch.
DOSAGE_OR_DATE = re.compile(
    r"\d+\s?-\s?\d+\s?(?:mg|mcg|ml|lbs?|pounds|days?|weeks?|months?)\b"  # 16-24mg, 60-80mg, 2-3 weeks
    r"|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b"  # 02.25.2016, 10/10/2017
    r"|\b\d+ to \d+\b",  # 10 to 6 on the pain scale
    re.IGNORECASE,
)


@cache
def real_texts() -> tuple[str, ...]:
    """The 600 shipped reviews as the pipeline stores them (cleaned)."""
    return tuple(clean_text(record["review"]) for record in shipped_records())


def test_real_reviews_with_dosages_dates_and_ranges_are_not_phone_numbers() -> None:
    numeric = [text for text in real_texts() if DOSAGE_OR_DATE.search(text)]
    first = real_texts()[0]
    assert "16-24mg oral/60-80mg" in first and "100-150mcg" in first and "(10 to 6 on pain scale)" in first
    assert len(numeric) >= 30  # measured: 34 of the 600 reviews hold such a number

    assert [text[:80] for text in numeric if "phone" in scan_text(text).categories] == []


def test_the_real_corpus_is_almost_never_flagged() -> None:
    texts = real_texts()
    flags = scan_texts(texts)
    rate = sum(f.flagged for f in flags) / len(texts)

    # Measured: 0 of the 600 shipped reviews are flagged (0.0%).
    assert rate <= 0.01
    # An independent, deliberately loose search finds nothing that could be personal
    # data in the shipped reviews, so any personal-data flag there is a false positive.
    loose = re.compile(r"\w@\w|https?:|www\.|\.(?:com|org|net)\b|\d(?:[\s().-]?\d){8}", re.IGNORECASE)
    assert [t[:80] for t in texts if loose.search(t)] == []
    assert [f for f in flags if set(f.categories) & {"email", "phone", "url"}] == []


def test_mild_expletives_of_honest_reviews_are_not_toxic() -> None:
    mild = re.compile(r"\b(?:crap|hell|sucks|stupid|hate)\b", re.IGNORECASE)
    texts = [text for text in real_texts() if mild.search(text)]
    assert len(texts) >= 10  # "Absolute crap!", "it was hell", "This thing sucks."

    assert [t[:80] for t in texts if scan_text(t).flagged] == []


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Email me at jane.doe+meds@example.co.uk if you want details.", "email"),
        ("My pharmacist (Bob.Smith@Pharmacy-Online.COM) said so.", "email"),
        ("Call me at 555-123-4567 to talk about it.", "phone"),
        ("Their line is (555) 123-4567.", "phone"),
        ("Ring 555.123.4567 any time", "phone"),
        ("The helpline 1-800-555-0199 was useless.", "phone"),
        ("From abroad: +44 20 7946 0958.", "phone"),
        ("Reach me on +49-30-1234567.", "phone"),
        ("UK number 020 7946 0958 for the clinic.", "phone"),
        ("See https://example.org/my-story?id=3 for pictures.", "url"),
        ("More at www.example.net/page.", "url"),
        ("I read about it on Drugs.com first.", "url"),
        ("My doctor is a complete idiot.", "toxic"),
        ("What a fucking joke this pill is.", "toxic"),
        ("This piece of shit gave me hives.", "toxic"),
        ("The nurse told me to go to hell.", "toxic"),
    ],
)
def test_a_text_carrying_a_category_is_flagged(text: str, category: str) -> None:
    flags = scan_text(text)

    assert flags.categories == (category,)
    assert flags.flagged
    assert flags.score == (1.0 if category != "toxic" else 0.5)


@pytest.mark.parametrize(
    "text",
    [
        "It took 16-24mg oral/60-80mg of oral morphine, 100-150mcg of fentanyl, 150-200mg of Demerol.",
        "Pain went from 10 to 6 on the pain scale within 20 minutes.",
        "Started on 02.25.2016, weight 235 lbs; 2017-10-04 I was at 198.",
        "Titrated 150-200-1000 mg over 6 weeks; cost $1,200.00 for 90 tablets.",
        "Gained +10 pounds in 2 weeks, 20 40 60 lbs by now, ratio 1:2:3.",
        "Hysterectomy @ 31 yrs old, now 45.",
        "A shot of morphine helped kill pain; the drug wore off by 3 p.m. and I felt like dying.",
        "The assessment of this cocktail of analgesics in Scunthorpe was classic; shitake soup.",
        "Needle prick hurt; the retard tablets made me feel dopey, I hate the taste, absolute crap.",
        "Dr.Smith said e.g. take it at 9.30 a.m. with food.",
    ],
)
def test_real_looking_text_without_a_category_is_not_flagged(text: str) -> None:
    assert scan_text(text) == SafetyFlags(categories=(), score=0.0)


def test_categories_come_in_a_fixed_order_and_personal_data_scores_one() -> None:
    flags = scan_text("You idiot, mail me at a.b@example.com or call 555-123-4567, see www.example.com")

    assert flags.categories == ("email", "phone", "url", "toxic")
    assert set(flags.categories) <= set(CATEGORIES)
    assert flags.score == 1.0


def test_the_domain_of_an_email_address_is_not_also_a_url() -> None:
    assert scan_text("write to someone@gmail.com").categories == ("email",)


def test_the_toxic_score_grows_with_the_number_of_matches() -> None:
    texts = ["an idiot", "an idiot and a moron", "an idiot and a moron, fucking hell"]
    scores = [scan_text(text).score for text in texts]

    assert scores == [0.5, 0.75, 0.875]
    assert all(0.0 < s < 1.0 for s in scores)


def test_a_phrase_is_one_match_and_matching_is_whole_word_and_case_blind() -> None:
    assert toxic_matches("What a PIECE OF   SHIT") == ["piece of   shit"]
    assert toxic_matches("Bullshit! BITCHES.") == ["bullshit", "bitches"]
    assert toxic_matches("shitake, classic, cocktail, Dickensian, assessment") == []


def test_scan_texts_scans_each_text_in_order() -> None:
    texts = ["fine", "call 555-123-4567", "idiot", ""]
    assert scan_texts(texts) == [scan_text(t) for t in texts]
    assert [f.flagged for f in scan_texts(texts)] == [False, True, True, False]


def test_the_shipped_lexicon_is_small_lowercase_and_free_of_medical_words() -> None:
    header = TOXIC_TERMS_FILE.read_text(encoding="utf-8").splitlines()[0]
    terms = load_toxic_terms()

    assert header.startswith("#") and "lexicon" in header.lower()
    assert 40 <= len(terms) <= 80
    assert all(term == term.lower() for term in terms)
    medical = {"kill", "shot", "drug", "pain", "dose", "needle", "prick", "retard", "dope", "high"}
    assert medical.isdisjoint(word for term in terms for word in term.split())
    assert {"crap", "hell", "sucks", "damn", "hate"}.isdisjoint(terms)  # mild: only in phrases ("go to hell")


@pytest.mark.parametrize(("line", "error"), [("Idiot", "lowercase"), ("idiot\nidiot", "twice"), ("#only", "no terms")])
def test_a_malformed_lexicon_is_refused(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "terms.txt"
    path.write_text(f"# header\n{line}\n", encoding="utf-8")

    with pytest.raises(ValueError, match=error):
        load_toxic_terms(path)
