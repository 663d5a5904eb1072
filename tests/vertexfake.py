"""A stand-in for Vertex AI batch prediction at the client boundary.

The Google provider's ``BatchPredictionJobHook.submit_batch_prediction_job`` calls
``google.cloud.aiplatform.BatchPredictionJob.submit(...)``; :class:`FakeVertex` replaces
exactly that classmethod. Everything above it (the real ``CreateBatchPredictionJobOperator``,
the real hook, its Connection and credentials handling) runs as in production. The fake:

- validates the request like the service would: a Gemini model name (publisher model or
  a tuned model resource), jsonl in and out, a ``gs://`` source that exists, and every
  line in the documented batch request format (``{"request": {"contents": [...], ...}}``);
- writes a real-shaped ``predictions.jsonl`` under
  ``<gcs_destination_prefix>/prediction-model-<timestamp>/``, lines in another order than
  the requests, each echoing its request;
- answers each request deterministically from its user text (:func:`outcome`): most are
  answered with a sentiment word by a keyword rule, some carry citations or a MEDIUM
  safety rating, and some come back as a blocked prompt (``promptFeedback.blockReason``),
  a blocked answer (``finishReason`` SAFETY, no text), an error line, an answer that is
  not a class, a retried request (an error line and an answered line), or no line at all;
- returns an object that behaves like ``aiplatform.BatchPredictionJob`` for the
  operator (``wait_for_resource_creation``, ``wait_for_completion``, ``name``,
  ``output_info``, ``to_dict()`` from a real ``aiplatform_v1.BatchPredictionJob`` proto);
- answers the deferrable operator's trigger, which polls the job through
  ``JobServiceAsyncClient.get_batch_prediction_job``, with the same proto.

Use the ``fake_vertex`` fixture (it also defines the ``google_cloud_default`` Connection
as anonymous credentials with a project, through the environment).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

PROJECT = "reviewops-test"
CONNECTION = json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": PROJECT}})
MODEL_VERSION = "gemini-2.5-flash-001"

_PUBLISHER_MODEL = re.compile(r"^publishers/google/models/gemini-[\w.-]+$")
_TUNED_MODEL = re.compile(r"^projects/[^/]+/locations/[^/]+/models/[^/@]+(@\d+)?$")
_REQUEST_KEYS = {"contents", "systemInstruction", "generationConfig", "safetySettings", "tools", "labels"}
_GENERATION_KEYS = {
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "thinkingConfig",
}

OUTCOMES = (
    "blocked_prompt",
    "blocked_answer",
    "error",
    "unparseable",
    "missing",
    "retried",
    "cited",
    "flagged",
    "ok",
    "ok",
    "ok",
    "ok",
)
POSITIVE_WORDS = ("great", "love", "best", "amazing", "helped", "works", "wonderful", "effective", "recommend")
NEGATIVE_WORDS = ("worst", "terrible", "horrible", "awful", "worse", "stopped", "pain", "never", "nausea")


class FakeVertexError(ValueError):
    """What the service would answer with a 400: the request is not valid."""


def review_text(user_text: str) -> str:
    """The review inside a rendered user turn (every template puts it after ``Review:``)."""
    _, _, after = user_text.partition("Review:\n")
    return (after or user_text).split("\n\n", 1)[0]


def outcome(user_text: str) -> str:
    """What the fake model does with a request, by a hash of its user text."""
    digest = int(hashlib.sha256(user_text.encode("utf-8")).hexdigest()[:8], 16)
    return OUTCOMES[digest % len(OUTCOMES)]


def sentiment(user_text: str) -> str:
    """The answer word for an answered request: a keyword vote over the review."""
    words = review_text(user_text).lower()
    score = sum(words.count(w) for w in POSITIVE_WORDS) - sum(words.count(w) for w in NEGATIVE_WORDS)
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"


def user_text(request: Mapping[str, Any]) -> str:
    """The concatenated user parts (as ``reviewops.gcp.gemini.request_key`` hashes them)."""
    texts = [
        str(part.get("text") or "")
        for content in request.get("contents") or []
        if content.get("role", "user") == "user"
        for part in content.get("parts") or []
    ]
    return "\x1f".join(texts)


def _ratings(flag: str | None = None, blocked: bool = False) -> list[dict[str, Any]]:
    ratings = []
    for category in ("HATE_SPEECH", "DANGEROUS_CONTENT", "HARASSMENT", "SEXUALLY_EXPLICIT"):
        level = "NEGLIGIBLE"
        if category == flag:
            level = "HIGH" if blocked else "MEDIUM"
        rating: dict[str, Any] = {
            "category": f"HARM_CATEGORY_{category}",
            "probability": level,
            "probabilityScore": 0.9 if level == "HIGH" else 0.5 if level == "MEDIUM" else 0.02,
            "severity": f"HARM_SEVERITY_{level}",
            "severityScore": 0.8 if level == "HIGH" else 0.4 if level == "MEDIUM" else 0.01,
        }
        if category == flag and blocked:
            rating["blocked"] = True
        ratings.append(rating)
    return ratings


def _usage(prompt_tokens: int, answer_tokens: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": answer_tokens,
        "totalTokenCount": prompt_tokens + answer_tokens,
    }


def _answer(text: str, ratings: list[dict[str, Any]], citations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "finishReason": "STOP",
        "avgLogprobs": -0.012,
        "safetyRatings": ratings,
    }
    if citations:
        candidate["citationMetadata"] = {"citations": citations}
    return candidate


def response_lines(request: dict[str, Any], when: str) -> list[dict[str, Any]]:
    """The output lines of one request (none for a request the job lost)."""
    text = user_text(request)
    kind = outcome(text)
    echoed = {key: request[key] for key in sorted(request, reverse=True)}  # the service reorders keys
    line: dict[str, Any] = {"status": "", "processed_time": when, "request": echoed}
    tokens = _usage(max(1, len(text) // 4), 1)
    common = {
        "modelVersion": MODEL_VERSION,
        "usageMetadata": tokens,
        "createTime": when,
        "responseId": uuid.uuid4().hex,
    }
    if kind == "missing":
        return []
    if kind == "error":
        error = {
            "error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}
        }
        return [{"status": f"Bad Request: {json.dumps(error)}", "processed_time": when, "request": echoed}]
    if kind == "blocked_prompt":
        feedback = {
            "blockReason": "PROHIBITED_CONTENT",
            "blockReasonMessage": "The prompt was blocked due to prohibited content.",
            "safetyRatings": _ratings("DANGEROUS_CONTENT", blocked=True),
        }
        return [{**line, "response": {"promptFeedback": feedback, **common}}]
    if kind == "blocked_answer":
        candidate = {"finishReason": "SAFETY", "safetyRatings": _ratings("HARASSMENT", blocked=True)}
        return [{**line, "response": {"candidates": [candidate], **common}}]
    if kind == "unparseable":
        return [{**line, "response": {"candidates": [_answer("I cannot tell.", _ratings())], **common}}]
    answer = sentiment(text)
    citations = None
    if kind == "cited":
        citations = [
            {"startIndex": 0, "endIndex": len(answer), "uri": "https://www.drugs.com/comments/", "title": "Reviews"}
        ]
    ratings = _ratings("HARASSMENT" if kind == "flagged" else None)
    answered = {**line, "response": {"candidates": [_answer(answer.capitalize() + ".", ratings, citations)], **common}}
    if kind == "retried":
        failed = {"status": "Internal error: the request was retried", "processed_time": when, "request": echoed}
        return [failed, answered]
    return [answered]


def validate_line(number: int, line: str) -> dict[str, Any]:
    """One input line in the documented Gemini batch request format, else FakeVertexError."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FakeVertexError(f"line {number}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"request"}:
        raise FakeVertexError(f"line {number}: expected one object with the key 'request', got {line[:80]!r}")
    request = data["request"]
    unknown = set(request) - _REQUEST_KEYS
    if unknown:
        raise FakeVertexError(f"line {number}: unknown request fields {sorted(unknown)}")
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise FakeVertexError(f"line {number}: request.contents must be a non-empty list")
    for content in [*contents, *([request["systemInstruction"]] if "systemInstruction" in request else [])]:
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts or not all(isinstance(p.get("text"), str) for p in parts):
            raise FakeVertexError(f"line {number}: every content needs parts with text")
    if contents[0].get("role") != "user":
        raise FakeVertexError(f"line {number}: the first content must be the user's")
    unknown = set(request.get("generationConfig") or {}) - _GENERATION_KEYS
    if unknown:
        raise FakeVertexError(f"line {number}: unknown generationConfig fields {sorted(unknown)}")
    _validate_thinking(number, (request.get("generationConfig") or {}).get("thinkingConfig", {}))
    result: dict[str, Any] = request
    return result


def _validate_thinking(number: int, thinking: Any) -> None:
    if not isinstance(thinking, dict) or set(thinking) - {"thinkingBudget", "includeThoughts"}:
        raise FakeVertexError(
            f"line {number}: thinkingConfig takes thinkingBudget and includeThoughts, got {thinking!r}"
        )
    budget = thinking.get("thinkingBudget", 0)
    if not isinstance(budget, int) or budget < -1:
        raise FakeVertexError(f"line {number}: thinkingBudget is an integer >= -1 (-1: dynamic), got {budget!r}")


class FakeBatchPredictionJob:
    """What the provider's operator uses of ``aiplatform.BatchPredictionJob``."""

    def __init__(self, proto: Any) -> None:
        self._gca_resource = proto
        self.waited_for_creation = False
        self.waited_for_completion = False
        self.cancelled = False

    @property
    def name(self) -> str:
        return str(self._gca_resource.name).rsplit("/", 1)[-1]

    @property
    def resource_name(self) -> str:
        return str(self._gca_resource.name)

    @property
    def state(self) -> Any:
        return self._gca_resource.state

    @property
    def output_info(self) -> Any:
        return self._gca_resource.output_info

    def wait_for_resource_creation(self) -> None:
        self.waited_for_creation = True

    def wait_for_completion(self) -> None:
        self.waited_for_completion = True

    def cancel(self) -> None:
        self.cancelled = True

    def to_dict(self) -> dict[str, Any]:
        from google.protobuf import json_format

        data: dict[str, Any] = json_format.MessageToDict(self._gca_resource._pb)
        return data


@dataclass
class FakeVertex:
    """The fake service: install with :meth:`patch`; every submitted job is recorded."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    protos: dict[str, Any] = field(default_factory=dict)  # job resource name -> its proto

    def submit(self, **kwargs: Any) -> FakeBatchPredictionJob:
        from google.cloud.aiplatform_v1 import types

        from reviewops.storage.paths import as_path

        self.jobs.append(dict(kwargs))
        model = str(kwargs["model_name"])
        if not (_PUBLISHER_MODEL.match(model) or _TUNED_MODEL.match(model)):
            raise FakeVertexError(f"model {model!r} is not a Gemini publisher model nor a tuned model resource")
        if kwargs.get("instances_format") != "jsonl" or kwargs.get("predictions_format") != "jsonl":
            raise FakeVertexError("Gemini batch prediction takes jsonl in and writes jsonl out")
        if not kwargs.get("project") or not kwargs.get("location"):
            raise FakeVertexError(f"no project or location: {kwargs.get('project')!r} {kwargs.get('location')!r}")
        sources = kwargs["gcs_source"]
        sources = [sources] if isinstance(sources, str) else list(sources)
        prefix = str(kwargs.get("gcs_destination_prefix") or "")
        for uri in [*sources, prefix]:
            if not uri.startswith("gs://"):
                raise FakeVertexError(f"{uri!r} is not a Cloud Storage URI")
        requests = []
        for uri in sources:
            path = as_path(uri)
            if not path.exists():
                raise FakeVertexError(f"gcs_source {uri} does not exist")
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            requests += [validate_line(number, line) for number, line in enumerate(lines, start=1)]
        now = dt.datetime.now(dt.UTC)
        when = now.isoformat(timespec="milliseconds")
        output_lines = [line for request in requests for line in response_lines(request, when)]
        # The service writes lines in no particular order.
        output_lines.sort(
            key=lambda line: hashlib.sha256(json.dumps(line["request"], sort_keys=True).encode()).hexdigest()
        )
        directory = f"{prefix.rstrip('/')}/prediction-model-{now.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z"
        target = as_path(directory) / "predictions.jsonl"
        with target.open("w", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in output_lines))
        job_id = str(abs(hash((directory, len(self.jobs)))) % 10**18)
        proto = types.BatchPredictionJob(
            name=f"projects/{kwargs['project']}/locations/{kwargs['location']}/batchPredictionJobs/{job_id}",
            display_name=kwargs.get("job_display_name") or "",
            model=model,
            state=types.JobState.JOB_STATE_SUCCEEDED,
            input_config={"instances_format": "jsonl", "gcs_source": {"uris": sources}},
            output_config={"predictions_format": "jsonl", "gcs_destination": {"output_uri_prefix": prefix}},
            output_info={"gcs_output_directory": directory},
            completion_stats={
                "successful_count": sum(1 for line in output_lines if not line["status"]),
                "failed_count": sum(1 for line in output_lines if line["status"]),
            },
            create_time=now,
            start_time=now,
            end_time=now + dt.timedelta(seconds=42),
        )
        self.protos[proto.name] = proto
        self.jobs[-1]["output_directory"] = directory
        self.jobs[-1]["requests"] = len(requests)
        return FakeBatchPredictionJob(proto)

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> FakeVertex:
        from google.cloud import aiplatform
        from google.cloud.aiplatform_v1 import JobServiceAsyncClient

        fake = self

        def submit(cls: Any, **kwargs: Any) -> FakeBatchPredictionJob:
            return fake.submit(**kwargs)

        async def get_batch_prediction_job(client: Any, request: Mapping[str, Any], **kwargs: Any) -> Any:
            # The deferrable operator's trigger polls the job through the async client.
            name = request["name"]
            if name not in fake.protos:
                raise FakeVertexError(f"no batch prediction job {name}")
            return fake.protos[name]

        monkeypatch.setattr(aiplatform.BatchPredictionJob, "submit", classmethod(submit))
        monkeypatch.setattr(JobServiceAsyncClient, "get_batch_prediction_job", get_batch_prediction_job)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", CONNECTION)
        return self


@pytest.fixture
def fake_vertex(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVertex]:
    """Vertex AI batch prediction replaced at ``BatchPredictionJob.submit``."""
    yield FakeVertex().patch(monkeypatch)


class FakeEndpoints:
    """Vertex AI models and endpoints at the client boundary: ``ModelServiceClient.upload_model``
    and ``EndpointServiceClient.deploy_model`` / ``undeploy_model`` / ``get_endpoint`` replaced;
    the provider's ``UploadModelOperator``, ``DeployModelOperator``, ``UndeployModelOperator``
    and hooks run as they are. Uploads and deployments answer with real long-running
    operations (``google.api_core.operation.Operation``, done) carrying real response protos,
    and are checked like the service checks them: a traffic split sums to 100 and names
    deployed models (or ``"0"``, the one being deployed). Every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.models: dict[str, int] = {}  # model resource name -> its latest version
        self.endpoints: dict[str, Any] = {}  # endpoint resource name -> Endpoint proto
        self._ids = 0

    def _next_id(self) -> str:
        self._ids += 1
        return str(7_000_000_000_000_000_000 + self._ids)

    def create_endpoint(self, endpoint_id: str, location: str = "us-central1") -> str:
        from google.cloud.aiplatform_v1 import types

        name = f"projects/{PROJECT}/locations/{location}/endpoints/{endpoint_id}"
        self.endpoints[name] = types.Endpoint(name=name, display_name="reviewops-sentiment")
        return name

    @staticmethod
    def _done(response: Any, result_type: Any) -> Any:
        from google.api_core import operation
        from google.longrunning import operations_pb2
        from google.protobuf import any_pb2

        packed = any_pb2.Any()
        packed.Pack(type(response).pb(response))
        proto = operations_pb2.Operation(name=f"operations/{uuid.uuid4().hex}", done=True, response=packed)
        return operation.Operation(  # type: ignore[no-untyped-call]
            proto, refresh=lambda: proto, cancel=lambda: None, result_type=result_type
        )

    def upload_model(self, request: Mapping[str, Any]) -> Any:
        from google.cloud.aiplatform_v1 import types

        self.requests.append(("upload_model", dict(request)))
        types.UploadModelRequest(request)  # a wrong field or type fails here, as in the real client
        model = types.Model(request["model"])
        if not model.artifact_uri or not model.container_spec.image_uri:
            raise FakeVertexError("a model to upload needs artifact_uri and container_spec.image_uri")
        if "parent_model" in request:
            name = str(request["parent_model"])
            if name not in self.models:
                raise FakeVertexError(f"parent model {name} not found")
        else:
            name = f"{request['parent']}/models/{self._next_id()}"
            self.models[name] = 0
        self.models[name] += 1
        response = types.UploadModelResponse(model=name, model_version_id=str(self.models[name]))
        return self._done(response, types.UploadModelResponse)

    def _endpoint(self, name: str) -> Any:
        if name not in self.endpoints:
            raise FakeVertexError(f"endpoint {name} not found")
        return self.endpoints[name]

    @staticmethod
    def _check_split(split: Mapping[str, int], ids: set[str]) -> None:
        if sum(split.values()) != 100:
            raise FakeVertexError(f"traffic split {dict(split)} does not sum to 100")
        unknown = set(split) - ids
        if unknown:
            raise FakeVertexError(f"traffic split names models not deployed: {sorted(unknown)}")

    def deploy_model(self, request: Mapping[str, Any]) -> Any:
        from google.cloud.aiplatform_v1 import types

        self.requests.append(("deploy_model", dict(request)))
        types.DeployModelRequest(request)  # a field of the wrong type fails here, as in the real client
        endpoint = self._endpoint(str(request["endpoint"]))
        deployed = types.DeployedModel(request["deployed_model"])
        base = deployed.model.split("@", 1)[0]
        if base not in self.models:
            raise FakeVertexError(f"model {deployed.model} not found")
        if not deployed.dedicated_resources.machine_spec.machine_type:
            raise FakeVertexError("a TensorFlow model needs dedicated_resources.machine_spec")
        split = {str(k): int(v) for k, v in (request.get("traffic_split") or {"0": 100}).items()}
        self._check_split(split, {"0", *(d.id for d in endpoint.deployed_models)})
        deployed.id = self._next_id()
        deployed.create_time = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._ids)  # type: ignore[assignment]
        endpoint.deployed_models.append(deployed)
        endpoint.traffic_split.clear()
        endpoint.traffic_split.update({(deployed.id if k == "0" else k): v for k, v in split.items()})
        return self._done(types.DeployModelResponse(deployed_model=deployed), types.DeployModelResponse)

    def undeploy_model(self, request: Mapping[str, Any]) -> Any:
        from google.cloud.aiplatform_v1 import types

        self.requests.append(("undeploy_model", dict(request)))
        types.UndeployModelRequest(request)  # e.g. a deployed_model_id that is not a string
        endpoint = self._endpoint(str(request["endpoint"]))
        gone = str(request["deployed_model_id"])
        remaining = [d for d in endpoint.deployed_models if d.id != gone]
        if len(remaining) == len(endpoint.deployed_models):
            raise FakeVertexError(f"deployed model {gone} is not on {endpoint.name}")
        split = {str(k): int(v) for k, v in (request.get("traffic_split") or {}).items()}
        self._check_split(split, {d.id for d in remaining})
        del endpoint.deployed_models[:]
        endpoint.deployed_models.extend(remaining)
        endpoint.traffic_split.clear()
        endpoint.traffic_split.update(split)
        return self._done(types.UndeployModelResponse(), types.UndeployModelResponse)

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> FakeEndpoints:
        from google.cloud.aiplatform_v1 import EndpointServiceClient, ModelServiceClient, types

        fake = self

        def method(name: str) -> Any:
            def call(client: Any, request: Mapping[str, Any], **kwargs: Any) -> Any:
                return getattr(fake, name)(request)

            return call

        def get_endpoint(client: Any, request: Mapping[str, Any], **kwargs: Any) -> Any:
            fake.requests.append(("get_endpoint", dict(request)))
            return types.Endpoint(fake._endpoint(str(request["name"])))  # a copy, as from the wire

        monkeypatch.setattr(ModelServiceClient, "upload_model", method("upload_model"))
        monkeypatch.setattr(EndpointServiceClient, "deploy_model", method("deploy_model"))
        monkeypatch.setattr(EndpointServiceClient, "undeploy_model", method("undeploy_model"))
        monkeypatch.setattr(EndpointServiceClient, "get_endpoint", get_endpoint)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", CONNECTION)
        return self
