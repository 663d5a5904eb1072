"""Vertex AI Gemini formats: tuning and request lines, and the parsing of real-shaped
batch prediction output lines (answered, blocked prompt, blocked answer, error status,
citations or none, unparseable, duplicates, any order)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reviewops.gcp.gemini import (
    BLOCKED,
    ERROR,
    OK,
    UNPARSEABLE,
    ParsedResponse,
    batch_request,
    parse_output,
    parse_output_line,
    request_key,
    response_summary,
    tuning_example,
)
from reviewops.gcp.prompts import load_template

TEMPLATE = load_template("review_sentiment@v2")
REVIEW = {
    "review_id": "206461",
    "product": "Valsartan",
    "condition": "Left Ventricular Dysfunction",
    "text": "It has no side effect, I take it in combination of Bystolic 5 Mg and Fish Oil",
    "label": "positive",
}
OTHER = {**REVIEW, "review_id": "95260", "product": "Guanfacine", "text": "My son is halfway through his fourth week."}

NEGLIGIBLE = [
    {
        "category": "HARM_CATEGORY_HATE_SPEECH",
        "probability": "NEGLIGIBLE",
        "probabilityScore": 0.03,
        "severity": "HARM_SEVERITY_NEGLIGIBLE",
        "severityScore": 0.02,
    },
    {
        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
        "probability": "LOW",
        "probabilityScore": 0.2,
        "severity": "HARM_SEVERITY_LOW",
        "severityScore": 0.1,
    },
]
USAGE = {"promptTokenCount": 118, "candidatesTokenCount": 1, "totalTokenCount": 119}


def echoed(review: dict[str, Any]) -> dict[str, Any]:
    """The request as Vertex echoes it: keys reordered, defaults filled in."""
    request = batch_request(TEMPLATE, review)["request"]
    return {
        "systemInstruction": request["systemInstruction"],
        "generationConfig": {**request["generationConfig"], "topP": None},
        "contents": [{"parts": [{"text": request["contents"][0]["parts"][0]["text"]}], "role": "user"}],
    }


def answered(review: dict[str, Any], text: str, citations: list[dict[str, Any]] | None = None) -> str:
    candidate: dict[str, Any] = {
        "avgLogprobs": -0.0021,
        "content": {"parts": [{"text": text}], "role": "model"},
        "finishReason": "STOP",
        "safetyRatings": NEGLIGIBLE,
    }
    if citations is not None:
        candidate["citationMetadata"] = {"citations": citations}
    response = {
        "candidates": [candidate],
        "createTime": "2026-11-26T18:00:02.123456Z",
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "abc",
        "usageMetadata": USAGE,
    }
    return json.dumps(
        {"status": "", "processed_time": "2026-11-26T18:00:03.0+00:00", "request": echoed(review), "response": response}
    )


def blocked_prompt(review: dict[str, Any]) -> str:
    response = {
        "promptFeedback": {
            "blockReason": "PROHIBITED_CONTENT",
            "blockReasonMessage": "The prompt was blocked due to prohibited content.",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            ],
        },
        "modelVersion": "gemini-2.5-flash-001",
        "usageMetadata": {"promptTokenCount": 118, "totalTokenCount": 118},
    }
    return json.dumps({"status": "", "processed_time": "t", "request": echoed(review), "response": response})


def blocked_answer(review: dict[str, Any]) -> str:
    candidate = {
        "finishReason": "SAFETY",
        "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "MEDIUM", "blocked": True},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        ],
    }
    response = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash-001", "usageMetadata": USAGE}
    return json.dumps({"status": "", "processed_time": "t", "request": echoed(review), "response": response})


def error_line(review: dict[str, Any]) -> str:
    status = 'Bad Request: {"error": {"code": 400, "message": "Request contains an invalid argument."}}'
    return json.dumps({"status": status, "processed_time": "t", "request": echoed(review)})


def test_request_lines_follow_the_documented_format() -> None:
    line = batch_request(TEMPLATE, REVIEW)
    assert set(line) == {"request"}
    request = line["request"]
    assert request["contents"] == [{"role": "user", "parts": [{"text": TEMPLATE.render(REVIEW)}]}]
    assert request["systemInstruction"] == {"role": "system", "parts": [{"text": TEMPLATE.system_instruction}]}
    assert request["generationConfig"] == {
        "temperature": 0.0,
        "maxOutputTokens": 5,
        "candidateCount": 1,
        "thinkingConfig": {"thinkingBudget": 0},  # else Gemini 2.5's thinking eats the 5 tokens
    }
    json.dumps(line)  # one JSON line


def test_tuning_examples_answer_with_the_templates_word() -> None:
    example = tuning_example(TEMPLATE, REVIEW, "neutral")
    assert example["contents"][1] == {"role": "model", "parts": [{"text": "neutral"}]}
    assert example["contents"][0]["parts"][0]["text"] == TEMPLATE.render(REVIEW)
    with pytest.raises(ValueError, match="no answer"):
        tuning_example(TEMPLATE, REVIEW, "ecstatic")


def test_the_key_of_an_echoed_request_is_the_key_of_the_written_one() -> None:
    assert request_key(echoed(REVIEW)) == request_key(batch_request(TEMPLATE, REVIEW)["request"])
    assert request_key(echoed(OTHER)) != request_key(echoed(REVIEW))


def test_an_answer_is_parsed_with_its_safety_ratings_and_tokens() -> None:
    parsed = parse_output_line(answered(REVIEW, "Positive."), TEMPLATE)
    assert (parsed.status, parsed.label, parsed.answer) == (OK, "positive", "Positive.")
    assert parsed.finish_reason == "STOP" and parsed.tokens == 119 and parsed.model_version == "gemini-2.5-flash-001"
    assert parsed.safety_categories == []  # NEGLIGIBLE and LOW do not count
    assert parsed.citations == ()  # no citationMetadata at all


def test_citations_are_kept_when_present() -> None:
    citations = [{"startIndex": 0, "endIndex": 8, "uri": "https://www.drugs.com/", "title": "Drugs.com"}]
    parsed = parse_output_line(answered(REVIEW, "positive", citations), TEMPLATE)
    assert parsed.citations == tuple(citations)
    assert parse_output_line(answered(REVIEW, "positive", []), TEMPLATE).citations == ()


def test_a_blocked_prompt_has_its_reason_and_categories() -> None:
    parsed = parse_output_line(blocked_prompt(REVIEW), TEMPLATE)
    assert (parsed.status, parsed.label, parsed.block_reason) == (BLOCKED, None, "PROHIBITED_CONTENT")
    assert parsed.safety_categories == ["dangerous_content"]


def test_a_blocked_answer_is_blocked_not_unparseable() -> None:
    parsed = parse_output_line(blocked_answer(REVIEW), TEMPLATE)
    assert (parsed.status, parsed.finish_reason, parsed.block_reason) == (BLOCKED, "SAFETY", "SAFETY")
    assert parsed.answer is None and parsed.safety_categories == ["harassment"]


def test_an_error_status_line_is_an_error() -> None:
    parsed = parse_output_line(error_line(REVIEW), TEMPLATE)
    assert parsed.status == ERROR and parsed.error is not None and "invalid argument" in parsed.error
    assert parsed.key == request_key(echoed(REVIEW))


@pytest.mark.parametrize("text", ["I cannot tell.", "The rating class is positive", "5"])
def test_an_answer_that_is_no_class_is_unparseable(text: str) -> None:
    parsed = parse_output_line(answered(REVIEW, text), TEMPLATE)
    assert (parsed.status, parsed.label, parsed.answer) == (UNPARSEABLE, None, text)


def test_an_empty_answer_that_finished_normally_is_unparseable() -> None:
    line = json.loads(answered(REVIEW, "positive"))
    line["response"]["candidates"][0]["content"]["parts"] = [{"text": "  "}]
    assert parse_output_line(line, TEMPLATE).status == UNPARSEABLE


def test_lines_in_any_order_map_to_their_requests() -> None:
    lines = [answered(OTHER, "negative"), "", answered(REVIEW, "positive")]
    parsed = parse_output(lines, TEMPLATE)
    assert parsed[request_key(echoed(REVIEW))].label == "positive"
    assert parsed[request_key(echoed(OTHER))].label == "negative"
    assert parse_output(list(reversed(lines)), TEMPLATE) == parsed


def test_a_duplicate_key_keeps_the_answer_over_the_failure_and_else_the_first() -> None:
    key = request_key(echoed(REVIEW))
    assert parse_output([error_line(REVIEW), answered(REVIEW, "neutral")], TEMPLATE)[key].label == "neutral"
    assert parse_output([answered(REVIEW, "neutral"), error_line(REVIEW)], TEMPLATE)[key].label == "neutral"
    assert parse_output([answered(REVIEW, "neutral"), answered(REVIEW, "positive")], TEMPLATE)[key].label == "neutral"


def test_a_line_that_is_not_a_json_object_fails_or_is_set_aside() -> None:
    with pytest.raises(ValueError):
        parse_output(['{"status": ""', answered(REVIEW, "positive")], TEMPLATE)
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_output_line("[1, 2]", TEMPLATE)
    invalid: list[str] = []
    parsed = parse_output(['{"status": ""', answered(REVIEW, "positive")], TEMPLATE, invalid)
    assert invalid == ['{"status": ""'] and len(parsed) == 1


def test_summary_counts_statuses_reasons_categories_and_citations() -> None:
    citations = [{"startIndex": 0, "endIndex": 3, "uri": "https://example.org/"}]
    responses = [
        parse_output_line(line, TEMPLATE)
        for line in (
            answered(REVIEW, "positive", citations),
            answered(OTHER, "negative"),
            blocked_prompt(REVIEW),
            blocked_answer(OTHER),
            error_line(REVIEW),
            answered(REVIEW, "maybe"),
        )
    ] + [ParsedResponse(key="k", status="missing")]
    summary = response_summary(responses)
    assert summary["responses"] == 7
    assert summary["by_status"] == {"blocked": 2, "error": 1, "missing": 1, "ok": 2, "unparseable": 1}
    assert summary["blocked_reasons"] == {"PROHIBITED_CONTENT": 1, "SAFETY": 1}
    assert summary["model_safety_flagged"] == 2
    assert summary["model_safety_by_category"] == {"dangerous_content": 1, "harassment": 1}
    assert summary["with_citations"] == 1
    assert summary["total_tokens"] == 119 * 3 + 118 + 119  # answers, blocked prompt, blocked answer
