"""The Open Inference Protocol v2 (KServe, Triton, MLServer) for the ``reviews`` model:
requests checked and cleaned as the pipeline cleans, responses and metadata built.

A request holds one input tensor, ``text`` (``BYTES``, shape ``[n]``, data a flat list
of ``n`` strings). Each text is checked as validation checks a review (control
characters, empty after cleaning, longer than the pipeline's ``max_text_chars``) and
cleaned as validation cleans it (``clean_text``) before the model sees it: a text the
pipeline would quarantine is refused here with the same reason, and one it would score
is scored on the same string.

The response holds, per row: ``label`` (``BYTES``), ``probabilities`` (``FP32``,
``[n, k]``, columns in the ``classes`` the tensor's parameters name), the safety flags
batch scoring writes (``safety_flagged`` ``BOOL``, ``safety_categories`` ``BYTES``,
comma-separated, empty for none, ``safety_score`` ``FP32``), ``model_version``
(``BYTES``), the registry version that answered the row, and ``rollout_stage`` (``BYTES``):
``none`` without a roll-out, else the stage it was answered in (``shadow``, ``canary``).

During a canary the side that answers is chosen by the request key: the request's
``parameters.request_key`` (a string; e.g. a user or session id, so one user sees one
model), else the ``X-Request-Key`` header, else the request ``id``, else a random one.

Errors are ``{"error": "..."}`` with 400 (not JSON), 413 (too many rows) or 422 (JSON
that is not a valid request for this model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from reviewops.data.parsing import clean_text, has_control_characters, shows_nothing
from reviewops.serving.served import Scores, ServedModel
from reviewops.serving.settings import MODEL_NAME, ServeSettings

INPUT_NAME = "text"
OUTPUTS: dict[str, str] = {
    "label": "BYTES",
    "probabilities": "FP32",
    "safety_flagged": "BOOL",
    "safety_categories": "BYTES",
    "safety_score": "FP32",
    "model_version": "BYTES",
    "rollout_stage": "BYTES",
}
MAX_KEY_CHARS = 256


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InferRequest:
    texts: list[str]  # cleaned
    request_id: str | None
    outputs: tuple[str, ...]
    request_key: str | None = None


def read_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RequestError(400, f"the body is not JSON: {str(exc)[:200]}") from None


def parse_infer_request(payload: Any, settings: ServeSettings) -> InferRequest:
    """The cleaned texts of a v2 inference request, or a :class:`RequestError`."""
    if not isinstance(payload, dict):
        raise RequestError(422, 'an inference request is a JSON object: {"inputs": [{"name": "text", ...}]}')
    request_id = payload.get("id")
    if request_id is not None and not (isinstance(request_id, str) and len(request_id) <= MAX_KEY_CHARS):
        # The id is logged with every row and joins the ratings that arrive later: bounded.
        raise RequestError(422, f"id must be a string of at most {MAX_KEY_CHARS} characters")
    tensor = _text_tensor(payload.get("inputs"))
    data = _text_data(tensor, settings.max_rows)
    texts = [_checked_text(i, value, settings.max_text_chars) for i, value in enumerate(data)]
    return InferRequest(texts, request_id, _requested_outputs(payload.get("outputs")), _request_key(payload))


def _request_key(payload: dict[str, Any]) -> str | None:
    parameters = payload.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise RequestError(422, "parameters must be a JSON object")
    key = parameters.get("request_key")
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_KEY_CHARS):
        raise RequestError(422, f"parameters.request_key must be a string of 1 to {MAX_KEY_CHARS} characters")
    return key


def _text_tensor(inputs: Any) -> dict[str, Any]:
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError(422, f"inputs must be a list of one tensor, named {INPUT_NAME!r}")
    tensor: dict[str, Any] = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise RequestError(
            422, f"input tensor {str(tensor.get('name'))[:80]!r}: the model's one input is {INPUT_NAME!r}"
        )
    if tensor.get("datatype") != "BYTES":
        raise RequestError(422, f"input {INPUT_NAME!r} has datatype {str(tensor.get('datatype'))[:20]!r}: use 'BYTES'")
    if "binary_data_size" in (tensor.get("parameters") or {}):
        raise RequestError(422, "the binary tensor data extension is not supported: send the texts as JSON strings")
    return tensor


def _text_data(tensor: dict[str, Any], max_rows: int) -> list[Any]:
    shape, data = tensor.get("shape"), tensor.get("data")
    if not (isinstance(shape, list) and len(shape) == 1 and type(shape[0]) is int and shape[0] >= 0):
        raise RequestError(422, f"input {INPUT_NAME!r} has shape {str(shape)[:40]}: use [n], n the number of texts")
    rows = shape[0]
    if rows == 0:
        raise RequestError(422, f"input {INPUT_NAME!r} holds no text: send at least one")
    if rows > max_rows:
        raise RequestError(413, f"{rows} texts in one request, at most {max_rows}: split it into smaller requests")
    if not isinstance(data, list) or len(data) != rows:
        held = f"{len(data)} values" if isinstance(data, list) else "no list"
        raise RequestError(422, f"input {INPUT_NAME!r} has shape [{rows}] but its data holds {held}: send a flat list")
    return data


def _checked_text(row: int, value: Any, max_text_chars: int) -> str:
    """The text as transform cleans it, refused for what validation quarantines."""
    if not isinstance(value, str):
        raise RequestError(422, f"text {row} is a JSON {type(value).__name__}, not a string")
    if has_control_characters(value):
        raise RequestError(422, f"text {row} holds control characters (the pipeline quarantines it)")
    cleaned = clean_text(value)
    if shows_nothing(cleaned):  # the pipeline's empty_text: nothing visible once cleaned
        raise RequestError(422, f"text {row} is empty once blanks and quotes are removed (the pipeline quarantines it)")
    if len(cleaned) > max_text_chars:
        raise RequestError(
            422, f"text {row} has {len(cleaned)} characters once cleaned, more than the pipeline's {max_text_chars}"
        )
    return cleaned


def _requested_outputs(outputs: Any) -> tuple[str, ...]:
    if outputs is None:
        return tuple(OUTPUTS)
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise RequestError(422, 'outputs must be a list of {"name": ...} objects')
    names = tuple(str(o.get("name")) for o in outputs)
    unknown = [name for name in names if name not in OUTPUTS]
    if unknown:
        raise RequestError(422, f"unknown output {unknown[0][:80]!r}: the outputs are {', '.join(OUTPUTS)}")
    return names


def infer_response(request: InferRequest, scores: Scores, stage: str = "none") -> dict[str, Any]:
    rows = len(scores)
    classes = list(scores.classes)
    tensors: dict[str, dict[str, Any]] = {
        "label": _tensor("label", [rows], scores.labels()),
        "probabilities": {
            **_tensor("probabilities", [rows, len(classes)], scores.probabilities.astype(np.float32).ravel().tolist()),
            "parameters": {"classes": classes},
        },
        "safety_flagged": _tensor("safety_flagged", [rows], [f.flagged for f in scores.safety]),
        "safety_categories": _tensor("safety_categories", [rows], [",".join(f.categories) for f in scores.safety]),
        # float32 as batch scoring stores it, so the two agree to the bit.
        "safety_score": _tensor(
            "safety_score", [rows], np.array([f.score for f in scores.safety], np.float32).tolist()
        ),
        "model_version": _tensor("model_version", [rows], [scores.version] * rows),
        "rollout_stage": _tensor("rollout_stage", [rows], [stage] * rows),
    }
    response: dict[str, Any] = {
        "model_name": MODEL_NAME,
        "model_version": scores.version,
        "outputs": [tensors[name] for name in request.outputs],
    }
    if request.request_id is not None:
        response["id"] = request.request_id
    return response


_dumps = json.JSONEncoder(separators=(",", ":")).encode
# Each output tensor's JSON up to its shape, built once.
_TENSOR_HEADS = {name: f'{{"name":{_dumps(name)},"datatype":{_dumps(kind)},"shape":[' for name, kind in OUTPUTS.items()}
_RESPONSE_HEAD = f'{{"model_name":{_dumps(MODEL_NAME)},"model_version":'


def infer_response_json(request: InferRequest, scores: Scores, stage: str = "none") -> bytes:
    """:func:`infer_response` as compact JSON, written directly: the same bytes as
    ``json.dumps(infer_response(...), separators=(",", ":"))`` (a test holds them equal),
    without building the dicts first, and each tensor's data only when it is asked for."""
    rows = len(scores)
    version = _dumps(scores.version)
    parts = [_RESPONSE_HEAD, version, ',"outputs":[']
    for i, name in enumerate(request.outputs):
        if i:
            parts.append(",")
        parts.append(_TENSOR_HEADS[name])
        if name == "label":
            parts += [str(rows), '],"data":', _dumps(scores.labels()), "}"]
        elif name == "probabilities":
            values = scores.probabilities.astype(np.float32).ravel().tolist()
            classes = list(scores.classes)
            parts += [f'{rows},{len(classes)}],"data":', _dumps(values), ',"parameters":{"classes":']
            parts += [_dumps(classes), "}}"]
        else:
            data: list[Any]
            if name == "safety_flagged":
                data = [f.flagged for f in scores.safety]
            elif name == "safety_categories":
                data = [",".join(f.categories) for f in scores.safety]
            elif name == "safety_score":
                data = np.array([f.score for f in scores.safety], np.float32).tolist()
            elif name == "model_version":
                data = [scores.version] * rows
            else:  # rollout_stage
                data = [stage] * rows
            parts += [str(rows), '],"data":', _dumps(data), "}"]
    parts.append("]")
    if request.request_id is not None:
        parts += [',"id":', _dumps(request.request_id)]
    parts.append("}")
    return "".join(parts).encode()


def _tensor(name: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": OUTPUTS[name], "shape": shape, "data": data}


def model_metadata(model: ServedModel, settings: ServeSettings) -> dict[str, Any]:
    """The v2 model metadata, with where the version comes from and the limits a client meets."""
    k = len(model.classes)
    shapes = {name: [-1, k] if name == "probabilities" else [-1] for name in OUTPUTS}
    return {
        "name": MODEL_NAME,
        "versions": [model.version],
        "platform": "keras_tensorflow",
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": name, "datatype": kind, "shape": shapes[name]} for name, kind in OUTPUTS.items()],
        "parameters": {
            **model.info,
            "limits": {
                "max_rows": settings.max_rows,
                "max_text_chars": settings.max_text_chars,
                "max_body_bytes": settings.max_body_bytes,
            },
            "batching": {"max_batch_rows": settings.max_batch_rows, "max_wait_ms": settings.max_wait_ms},
        },
    }


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
