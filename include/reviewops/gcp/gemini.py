"""The Vertex AI Gemini formats, as plain data: supervised-tuning examples, batch
prediction requests, and the parsing of batch prediction output lines.

Formats (Vertex AI generative AI documentation):

- Supervised tuning dataset, one JSON object per line::

    {"systemInstruction": {"role": "system", "parts": [{"text": ...}]},
     "contents": [{"role": "user", "parts": [{"text": ...}]},
                  {"role": "model", "parts": [{"text": "positive"}]}]}

- Batch prediction input (Cloud Storage JSONL), one request per line::

    {"request": {"contents": [...], "systemInstruction": {...}, "generationConfig": {...}}}

- Batch prediction output (``predictions.jsonl`` under the job's output prefix)::

    {"status": "", "processed_time": "...", "request": {...}, "response": {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "positive"}]},
                        "finishReason": "STOP", "safetyRatings": [...],
                        "citationMetadata": {"citations": [...]}}],
        "promptFeedback": {...}, "usageMetadata": {...}, "modelVersion": "..."}}

  A failed line has a non-empty ``status`` and no response; a blocked prompt has
  ``promptFeedback.blockReason`` and no candidates; a blocked answer has a candidate
  with ``finishReason`` SAFETY (or another filter's reason: RECITATION, BLOCKLIST, ...)
  and usually no text; an empty answer that finished normally is unparseable.

Output lines come back in any order and echo the request, so each is matched to its
reviews by :func:`request_key`, a hash of the request's user text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reviewops.contracts import ANSWERED
from reviewops.gcp.prompts import PromptTemplate

# Statuses of a parsed output line.
OK = ANSWERED
BLOCKED = "blocked"  # the prompt or the answer was blocked by the model's safety filters
UNPARSEABLE = "unparseable"  # an answer that is not one of the template's classes
ERROR = "error"  # the line failed (non-empty status, or no response at all)
MISSING = "missing"  # a request with no output line

# Finish reasons of an answer that was not cut off by a filter.
NORMAL_FINISH = frozenset({"", "STOP", "MAX_TOKENS", "FINISH_REASON_UNSPECIFIED"})

# Safety ratings at or above this probability count as flagged in monitoring.
FLAGGED_PROBABILITIES = frozenset({"MEDIUM", "HIGH"})


def _text(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"text": text}]}


def tuning_example(template: PromptTemplate, review: Mapping[str, Any], label: str) -> dict[str, Any]:
    """One supervised-tuning line: the rendered review as the user turn, the class as
    the model turn (the template's answer word for it)."""
    answer = next((word for word, cls in template.answers.items() if cls == label), None)
    if answer is None:
        raise ValueError(f"label {label!r} has no answer in prompt {template.ref}")
    return {
        "systemInstruction": _text("system", template.system_instruction),
        "contents": [_text("user", template.render(review)), _text("model", answer)],
    }


def batch_request(template: PromptTemplate, review: Mapping[str, Any]) -> dict[str, Any]:
    """One batch prediction input line for a review."""
    request: dict[str, Any] = {
        "contents": [_text("user", template.render(review))],
        "systemInstruction": _text("system", template.system_instruction),
    }
    if template.generation:
        request["generationConfig"] = dict(template.generation)
    return {"request": request}


def request_key(request: Mapping[str, Any]) -> str:
    """A hash of a request's user text: the same for the line we wrote and the
    request Vertex echoes back (which may add null fields or reorder keys)."""
    texts = []
    for content in request.get("contents") or []:
        if (content or {}).get("role", "user") == "user":
            texts += [str(part.get("text") or "") for part in content.get("parts") or [] if part]
    return hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class ParsedResponse:
    """One output line, reduced to what the predictions and monitoring need."""

    key: str
    status: str
    label: str | None = None
    answer: str | None = None
    finish_reason: str | None = None
    block_reason: str | None = None
    error: str | None = None
    safety_ratings: tuple[Mapping[str, Any], ...] = ()
    citations: tuple[Mapping[str, Any], ...] = ()
    model_version: str | None = None
    tokens: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def safety_categories(self) -> list[str]:
        """Categories the model blocked or rated MEDIUM/HIGH, sorted, without repeats."""
        found = {
            _category(r)
            for r in self.safety_ratings
            if r.get("blocked") or str(r.get("probability", "")).upper() in FLAGGED_PROBABILITIES
        }
        return sorted(found)


def _category(rating: Mapping[str, Any]) -> str:
    name = str(rating.get("category", "UNSPECIFIED"))
    return name.removeprefix("HARM_CATEGORY_").lower()


def parse_output_line(line: str | Mapping[str, Any], template: PromptTemplate) -> ParsedResponse:
    """Parse one output line; never raises on a well-formed JSON object (a line that
    is not one raises ValueError naming the problem)."""
    data = json.loads(line) if isinstance(line, str) else dict(line)
    if not isinstance(data, dict):
        raise ValueError(f"batch output line is not a JSON object: {str(line)[:80]!r}")
    key = request_key(data.get("request") or {})
    status = str(data.get("status") or "")
    response = data.get("response")
    if status or not isinstance(response, dict):
        return ParsedResponse(key=key, status=ERROR, error=status or "no response in output line")
    usage = response.get("usageMetadata") or {}
    common: dict[str, Any] = {
        "key": key,
        "model_version": response.get("modelVersion"),
        "tokens": int(usage.get("totalTokenCount") or 0),
    }
    feedback = response.get("promptFeedback") or {}
    candidates = response.get("candidates") or []
    if feedback.get("blockReason") or not candidates:
        return ParsedResponse(
            status=BLOCKED,
            block_reason=str(feedback.get("blockReason") or "NO_CANDIDATES"),
            safety_ratings=tuple(feedback.get("safetyRatings") or ()),
            **common,
        )
    candidate = candidates[0]
    finish = str(candidate.get("finishReason") or "")
    parts = (candidate.get("content") or {}).get("parts") or []
    answer = "".join(str(p.get("text") or "") for p in parts if p).strip() or None
    ratings = tuple(candidate.get("safetyRatings") or ())
    citations = tuple((candidate.get("citationMetadata") or {}).get("citations") or ())
    if finish not in NORMAL_FINISH:
        # Stopped by a filter (SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, ...).
        return ParsedResponse(
            status=BLOCKED,
            finish_reason=finish,
            block_reason=finish,
            answer=answer,
            safety_ratings=ratings,
            citations=citations,
            **common,
        )
    label = template.parse_answer(answer)
    return ParsedResponse(
        status=OK if label else UNPARSEABLE,
        label=label,
        answer=answer,
        finish_reason=finish or None,
        safety_ratings=ratings,
        citations=citations,
        **common,
    )


def parse_output(
    lines: Iterable[str], template: PromptTemplate, invalid: list[str] | None = None
) -> dict[str, ParsedResponse]:
    """Parse output lines (blank lines skipped) into key -> response. When a key comes
    back twice (a retried line), an answered line wins over a failed one, else the first
    is kept. A line that is not a JSON object raises ValueError, unless ``invalid`` is
    given: it is then appended there (its review stays without a response)."""
    parsed: dict[str, ParsedResponse] = {}
    for line in lines:
        if not line.strip():
            continue
        try:
            response = parse_output_line(line, template)
        except ValueError:
            if invalid is None:
                raise
            invalid.append(line)
            continue
        previous = parsed.get(response.key)
        if previous is None or (previous.status == ERROR and response.status != ERROR):
            parsed[response.key] = response
    return parsed


def response_summary(responses: Sequence[ParsedResponse]) -> dict[str, Any]:
    """Counts for lineage metrics and monitoring: statuses, blocked reasons, flagged
    safety categories, answers with citations, tokens."""
    by_status: dict[str, int] = {}
    by_category: dict[str, int] = {}
    blocked: dict[str, int] = {}
    for r in responses:
        by_status[r.status] = by_status.get(r.status, 0) + 1
        for category in r.safety_categories:
            by_category[category] = by_category.get(category, 0) + 1
        if r.block_reason:
            blocked[r.block_reason] = blocked.get(r.block_reason, 0) + 1
    return {
        "responses": len(responses),
        "by_status": dict(sorted(by_status.items())),
        "blocked_reasons": dict(sorted(blocked.items())),
        "model_safety_flagged": sum(1 for r in responses if r.safety_categories),
        "model_safety_by_category": dict(sorted(by_category.items())),
        "with_citations": sum(1 for r in responses if r.citations),
        "total_tokens": sum(r.tokens for r in responses),
    }
