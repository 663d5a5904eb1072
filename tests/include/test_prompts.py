"""Versioned prompt templates: loading, hashing, rendering, answer parsing, refusals."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reviewops.data.schema import CLASSES
from reviewops.gcp.prompts import (
    DEFAULT_PROMPT,
    PROMPTS_DIR,
    PromptError,
    list_templates,
    load_template,
    parse_ref,
    versions,
)

V1 = """name = "demo"
version = 1
description = "test"
system_instruction = "Classify."
user_template = "Review: {text}"

[answers]
bad = "negative"
meh = "neutral"
good = "positive"
"""


def write(root: Path, name: str, version: int, text: str) -> Path:
    path = root / name / f"v{version}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_templates_load_with_the_hash_of_their_file() -> None:
    templates = list_templates()
    assert [t.ref for t in templates if t.name == DEFAULT_PROMPT] == [f"{DEFAULT_PROMPT}@v1", f"{DEFAULT_PROMPT}@v2"]
    for template in templates:
        path = PROMPTS_DIR / template.name / f"v{template.version}.toml"
        assert template.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert set(template.answers.values()) == set(CLASSES)
        assert template.lineage() == {"prompt_template": template.ref, "prompt_sha256": template.sha256}


def test_a_bare_name_means_the_latest_version() -> None:
    assert load_template(DEFAULT_PROMPT).version == max(versions(DEFAULT_PROMPT))
    assert load_template(f"{DEFAULT_PROMPT}@v1").version == 1
    assert load_template(f"{DEFAULT_PROMPT}@1").version == 1


@pytest.mark.parametrize("ref", ["", "Review", "a@vx", "a b", "1abc"])
def test_malformed_references_are_refused(ref: str) -> None:
    with pytest.raises(PromptError, match="not a prompt reference"):
        parse_ref(ref)


def test_render_fills_fields_and_missing_ones_read_unknown() -> None:
    template = load_template(f"{DEFAULT_PROMPT}@v2")
    text = template.render({"product": "Zoloft", "condition": None, "text": "  It {helped} a lot. "})
    assert "Medicine: Zoloft" in text and "Taken for: unknown" in text
    # Review text is inserted as is: braces in it are not placeholders.
    assert "It {helped} a lot." in text


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("positive", "positive"),
        ("Positive.", "positive"),
        ("  NEGATIVE\n", "negative"),
        ("neutral - the reviewer is unsure", "neutral"),
        ("The sentiment is positive", None),
        ("I cannot tell.", None),
        ("", None),
        (None, None),
        ("   ", None),
    ],
)
def test_parse_answer_reads_the_first_word_only(answer: str | None, expected: str | None) -> None:
    assert load_template(f"{DEFAULT_PROMPT}@v1").parse_answer(answer) == expected


def test_custom_answer_words_map_onto_the_classes(tmp_path: Path) -> None:
    write(tmp_path, "demo", 1, V1)
    template = load_template("demo", tmp_path)
    assert template.parse_answer("Good!") == "positive" and template.parse_answer("meh") == "neutral"
    assert template.ref == "demo@v1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('user_template = "Review: {text}"', 'user_template = "Review"'), "must contain"),
        (lambda t: t.replace("{text}", "{text} {rating}"), "unknown placeholders"),
        (lambda t: t.replace('meh = "neutral"\n', ""), "exactly the classes"),
        (lambda t: t.replace('meh = "neutral"', 'meh = "mixed"'), "exactly the classes"),
        (lambda t: t.replace('system_instruction = "Classify."\n', ""), "missing system_instruction"),
        (lambda t: t.replace("version = 1", "version = 2"), "must match its path"),
        (lambda t: t + "\n[answers\n", "not valid TOML"),
    ],
)
def test_broken_templates_are_refused_naming_the_file(tmp_path: Path, change: object, message: str) -> None:
    assert callable(change)
    path = write(tmp_path, "demo", 1, change(V1))
    with pytest.raises(PromptError, match=message) as info:
        load_template("demo@v1", tmp_path)
    assert message == "must match its path" or str(path) in str(info.value)


def test_unknown_names_and_versions_say_what_exists(tmp_path: Path) -> None:
    write(tmp_path, "demo", 1, V1)
    with pytest.raises(PromptError, match="known: demo"):
        load_template("other", tmp_path)
    with pytest.raises(PromptError, match=r"versions: \[1\]"):
        load_template("demo@v3", tmp_path)


def test_editing_a_version_changes_its_hash(tmp_path: Path) -> None:
    path = write(tmp_path, "demo", 1, V1)
    before = load_template("demo", tmp_path).sha256
    path.write_text(V1.replace("Classify.", "Classify the review."), encoding="utf-8")
    assert load_template("demo", tmp_path).sha256 != before
