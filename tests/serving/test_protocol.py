"""v2 requests checked and cleaned as the pipeline checks and cleans reviews; responses
shaped as v2 tensors. Pure: no server, no model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from reviewops.data.parsing import clean_text
from reviewops.data.safety import scan_text
from reviewops.serving.protocol import (
    OUTPUTS,
    InferRequest,
    RequestError,
    infer_response,
    infer_response_json,
    parse_infer_request,
    read_json,
)
from reviewops.serving.served import Scores
from reviewops.serving.settings import ServeSettings

SETTINGS = ServeSettings(max_rows=4, max_text_chars=50)


def request(data: Any, **tensor: Any) -> dict[str, Any]:
    rows = len(data) if isinstance(data, list) else 1
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [rows], "data": data, **tensor}]}


def refused(payload: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse_infer_request(payload, SETTINGS)
    return caught.value


def test_texts_are_cleaned_as_transform_cleans_them() -> None:
    raw = ['"Works &amp;#039;well&amp;#039;,\n   no   side effects"', "  fine  "]
    parsed = parse_infer_request({**request(raw), "id": "r-1"}, SETTINGS)
    assert parsed.texts == [clean_text(t) for t in raw] == ["Works 'well', no side effects", "fine"]
    assert parsed.request_id == "r-1"
    assert parsed.outputs == tuple(OUTPUTS)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"[" * 100_000, 400),  # deeper than the parser goes
    ],
)
def test_a_body_that_is_not_json_is_400(body: bytes, status: int) -> None:
    with pytest.raises(RequestError) as caught:
        read_json(body)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ([], "JSON object"),
        ({}, "list of one tensor"),
        ({"inputs": [request(["a"])["inputs"][0]] * 2}, "list of one tensor"),
        (request(["a"], name="review"), "'review'"),
        (request(["a"], datatype="FP32"), "'BYTES'"),
        (request(["a"], shape=[1, 1]), "shape"),
        (request(["a"], shape=["1"]), "shape"),
        (request(["a"], shape=[True]), "shape"),
        (request(["a", "b"], shape=[3]), "holds 2 values"),
        (request([["a"]], shape=[1]), "not a string"),
        (request("a", shape=[1]), "no list"),
        (request([]), "no text"),
        (request([7]), "JSON int, not a string"),
        (request([None]), "not a string"),
        (request(["fine", "bad\x00byte"]), "text 1 holds control characters"),
        (request(['  ""  ']), "text 0 is empty"),
        (request(["\u200b\u200d\ufeff"]), "text 0 is empty"),  # zero-width only: validation's empty_text
        (request(["&nbsp;&#8203;"]), "text 0 is empty"),
        (request(["x" * 51]), "51 characters once cleaned, more than the pipeline's 50"),
        (request(["a"], parameters={"binary_data_size": 1}), "binary tensor data"),
        ({**request(["a"]), "outputs": [{"name": "logits"}]}, "unknown output 'logits'"),
        ({**request(["a"]), "outputs": "label"}, "outputs must be a list"),
        ({**request(["a"]), "id": 3}, "id must be a string"),
        ({**request(["a"]), "id": "i" * 257}, "id must be a string of at most 256 characters"),
        ({**request(["a"]), "parameters": {"request_key": 7}}, "parameters.request_key must be a string"),
        ({**request(["a"]), "parameters": {"request_key": "k" * 257}}, "of 1 to 256 characters"),
        ({**request(["a"]), "parameters": "user-1"}, "parameters must be a JSON object"),
    ],
)
def test_a_request_the_model_cannot_take_is_422_saying_why(payload: Any, says: str) -> None:
    error = refused(payload)
    assert error.status == 422
    assert says in error.message


def test_the_text_limit_counts_cleaned_characters_as_validation_does() -> None:
    assert parse_infer_request(request(["  " + "x" * 50 + "  "]), SETTINGS).texts == ["x" * 50]
    assert parse_infer_request(request(["&amp;" * 50]), SETTINGS).texts == ["&" * 50]


def test_too_many_rows_is_413() -> None:
    error = refused(request(["a"] * 5))
    assert error.status == 413
    assert "5 texts in one request, at most 4" in error.message


def test_the_response_holds_v2_tensors_per_row() -> None:
    texts = ["call me at 555-123-4567", "great"]
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    scores = Scores("m-abc", ("negative", "neutral", "positive"), probabilities, tuple(map(scan_text, texts)))
    response = infer_response(InferRequest(texts, "r-2", tuple(OUTPUTS)), scores)
    tensors = {t["name"]: t for t in response["outputs"]}
    assert response["model_name"] == "reviews" and response["model_version"] == "m-abc" and response["id"] == "r-2"
    assert tensors["label"] == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["negative", "positive"]}
    assert tensors["probabilities"]["shape"] == [2, 3] and tensors["probabilities"]["datatype"] == "FP32"
    assert np.array_equal(np.array(tensors["probabilities"]["data"], np.float32), probabilities.ravel())
    assert tensors["probabilities"]["parameters"] == {"classes": ["negative", "neutral", "positive"]}
    assert tensors["safety_flagged"]["data"] == [True, False]
    assert tensors["safety_categories"]["data"] == ["phone", ""]
    assert tensors["safety_score"]["data"] == [1.0, 0.0]
    assert tensors["model_version"]["data"] == ["m-abc", "m-abc"]


def test_a_request_may_ask_for_some_outputs_only() -> None:
    parsed = parse_infer_request(
        {**request(["ok"]), "outputs": [{"name": "model_version"}, {"name": "label"}]}, SETTINGS
    )
    scores = Scores(
        "m-abc", ("negative", "neutral", "positive"), np.array([[0.1, 0.1, 0.8]], np.float32), (scan_text("ok"),)
    )
    assert [t["name"] for t in infer_response(parsed, scores)["outputs"]] == ["model_version", "label"]


@pytest.mark.parametrize("outputs", [None, [{"name": "safety_score"}, {"name": "probabilities"}]])
@pytest.mark.parametrize("request_id", [None, 'r-"3\u00e9'])
def test_the_written_response_is_the_response_as_compact_json(outputs: Any, request_id: str | None) -> None:
    texts = ["call me at 555-123-4567", 'great "value"', "m\u00e9h"]
    payload: dict[str, Any] = {**request(texts), "id": request_id}
    if outputs is not None:
        payload["outputs"] = outputs
    parsed = parse_infer_request(payload, SETTINGS)
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3]], np.float32)
    scores = Scores("m-abc", ("negative", "neutral", "positive"), probabilities, tuple(map(scan_text, texts)))
    for stage in ("none", "canary"):
        expected = json.dumps(infer_response(parsed, scores, stage), separators=(",", ":")).encode()
        assert infer_response_json(parsed, scores, stage) == expected


@pytest.mark.parametrize(
    "change",
    [{"max_rows": 0}, {"max_wait_ms": -1.0}, {"poll_seconds": 0}, {"max_rows": 100, "max_queue_rows": 10}],
)
def test_settings_refuse_limits_that_cannot_work(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"max_|poll_"):
        ServeSettings(**change)
