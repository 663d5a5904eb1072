"""A stand-in for Vertex AI tuning at the client boundary: the Google provider's
``GenAIGenerativeModelHook.get_genai_client`` returns a fake ``google.genai.Client``
whose ``tunings`` checks each request the way the service would and answers with real
``google.genai.types.TuningJob`` objects.

``tunings.tune(base_model=, training_dataset=, config=)`` checks that the training and
validation files exist in the (fake) bucket and that EVERY line is the documented
supervised-tuning format (``systemInstruction`` plus ``contents`` with exactly one user
turn, then one model turn whose text is one of the prompt's answers), the documented
limits (at least 16 training examples, at most 5,000 validation examples) and the job
config; it returns a job in ``JOB_STATE_SUCCEEDED`` (the hook polls every 60 s while a job
runs) with tuned model resource names shaped like the service's. Everything else in the
provider (operator, hook, polling loop, XCom) runs for real.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.genai import types

from reviewops.gcp.prompts import PromptTemplate
from reviewops.storage.paths import as_path

MIN_TRAIN = 16
PROJECT = "reviewops-test"
# The Connection the hook reads when it is built (anonymous: its credentials are never used).
CONNECTION = json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": PROJECT}})
MAX_VALIDATION = 5000


class FakeTuningRejected(ValueError):
    """What the service would answer with a 400: the request is not valid."""


@dataclass
class FakeTunings:
    project: str
    location: str
    answers: frozenset[str]
    fail_with: str | None = None  # make jobs end in JOB_STATE_FAILED with this message
    jobs: dict[str, types.TuningJob] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    gets: int = 0

    def tune(self, *, base_model: str, training_dataset: Any, config: Any = None) -> types.TuningJob:
        dataset = types.TuningDataset.model_validate(training_dataset)
        job_config = types.CreateTuningJobConfig.model_validate(config or {})
        if not base_model or "/" in base_model.removeprefix("publishers/google/models/"):
            raise FakeTuningRejected(f"base_model {base_model!r} is not a Gemini model id")
        if not dataset.gcs_uri or not dataset.gcs_uri.startswith("gs://"):
            raise FakeTuningRejected(f"training_dataset.gcs_uri {dataset.gcs_uri!r} is not a gs:// URI")
        train = self._examples(dataset.gcs_uri)
        if len(train) < MIN_TRAIN:
            raise FakeTuningRejected(f"{len(train)} training examples, at least {MIN_TRAIN} are required")
        validation: list[dict[str, Any]] = []
        if job_config.validation_dataset is not None:
            uri = job_config.validation_dataset.gcs_uri
            if not uri or not uri.startswith("gs://"):
                raise FakeTuningRejected(f"validation_dataset.gcs_uri {uri!r} is not a gs:// URI")
            validation = self._examples(uri)
            if not 1 <= len(validation) <= MAX_VALIDATION:
                raise FakeTuningRejected(f"{len(validation)} validation examples: 1 to {MAX_VALIDATION} allowed")
        if job_config.epoch_count is not None and not (
            isinstance(job_config.epoch_count, int) and job_config.epoch_count >= 1
        ):
            raise FakeTuningRejected(f"epoch_count {job_config.epoch_count!r} must be a positive integer")
        name = job_config.tuned_model_display_name or ""
        if not name or len(name) > 128:
            raise FakeTuningRejected(f"tuned_model_display_name {name!r}: 1 to 128 characters")
        number = len(self.jobs) + 1
        job_name = f"projects/{self.project}/locations/{self.location}/tuningJobs/{7000 + number}"
        self.requests.append(
            {
                "base_model": base_model,
                "training_dataset": dataset.model_dump(exclude_none=True),
                "config": job_config.model_dump(exclude_none=True),
                "train_examples": len(train),
                "validation_examples": len(validation),
            }
        )
        if self.fail_with:
            job = types.TuningJob(
                name=job_name,
                state=types.JobState.JOB_STATE_FAILED,
                base_model=base_model,
                error=types.GoogleRpcStatus(code=3, message=self.fail_with),
            )
        else:
            job = types.TuningJob(
                name=job_name,
                state=types.JobState.JOB_STATE_SUCCEEDED,
                base_model=base_model,
                tuned_model=types.TunedModel(
                    model=f"projects/{self.project}/locations/{self.location}/models/{1230 + number}@1",
                    endpoint=f"projects/{self.project}/locations/{self.location}/endpoints/{4560 + number}",
                ),
            )
        self.jobs[job_name] = job
        return job

    def get(self, *, name: str, config: Any = None) -> types.TuningJob:
        self.gets += 1
        if name not in self.jobs:
            raise FakeTuningRejected(f"tuning job {name} not found")
        return self.jobs[name]

    def _examples(self, uri: str) -> list[dict[str, Any]]:
        path = as_path(uri)
        if not path.exists():
            raise FakeTuningRejected(f"{uri} does not exist in the bucket")
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [self._check_line(uri, number, line) for number, line in enumerate(lines, 1)]

    def _check_line(self, uri: str, number: int, line: str) -> dict[str, Any]:
        where = f"{uri} line {number}"
        example = json.loads(line)
        if set(example) != {"systemInstruction", "contents"}:
            raise FakeTuningRejected(f"{where}: fields {sorted(example)}, expected systemInstruction and contents")
        system = example["systemInstruction"]
        if system.get("role") != "system" or not _text_of(system):
            raise FakeTuningRejected(f"{where}: systemInstruction needs role system and a text part")
        contents = example["contents"]
        if [c.get("role") for c in contents] != ["user", "model"]:
            raise FakeTuningRejected(f"{where}: contents must be one user turn then one model turn")
        if not _text_of(contents[0]):
            raise FakeTuningRejected(f"{where}: the user turn has no text")
        answer = _text_of(contents[1])
        if answer not in self.answers:
            raise FakeTuningRejected(f"{where}: model turn {answer!r} is not one of the answers {sorted(self.answers)}")
        return dict(example)


def _text_of(content: dict[str, Any]) -> str:
    parts = content.get("parts") or []
    if len(parts) != 1 or set(parts[0]) != {"text"}:
        return ""
    return str(parts[0]["text"])


@dataclass
class FakeGenAIClient:
    """The part of ``google.genai.Client`` the tuning hook uses."""

    tunings: FakeTunings
    vertexai: bool = True
    clients: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class FakeVertexTuning:
    """What a test sees: the fake client and every client the hook asked for."""

    client: FakeGenAIClient
    clients: list[dict[str, str]] = field(default_factory=list)

    @property
    def tunings(self) -> FakeTunings:
        return self.client.tunings


TUNED_MODEL_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/models/\d+@\d+$")
ENDPOINT_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/endpoints/\d+$")


def install(
    monkeypatch: pytest.MonkeyPatch,
    template: PromptTemplate,
    project: str = "reviewops-test",
    location: str = "us-central1",
) -> FakeVertexTuning:
    """Replace the hook's client factory for the test (nothing else of the provider)."""
    from airflow.providers.google.cloud.hooks.gen_ai import GenAIGenerativeModelHook

    fake = FakeVertexTuning(FakeGenAIClient(FakeTunings(project, location, frozenset(template.answers))))

    def get_genai_client(self: GenAIGenerativeModelHook, project_id: str, location: str) -> FakeGenAIClient:
        if (project_id, location) != (project, fake.tunings.location):
            raise FakeTuningRejected(f"client for {project_id}/{location}, expected {project}/{location}")
        fake.clients.append({"project_id": project_id, "location": location, "gcp_conn_id": self.gcp_conn_id})
        return fake.client

    monkeypatch.setattr(GenAIGenerativeModelHook, "get_genai_client", get_genai_client)
    return fake


@pytest.fixture
def vertex_tuning_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVertexTuning]:
    """The fake for the default prompt, with the Vertex settings pointing at it."""
    from reviewops.config import VertexSettings
    from reviewops.gcp.prompts import load_template

    settings = VertexSettings.from_env()
    monkeypatch.setenv("REVIEWOPS_VERTEX_PROJECT", PROJECT)
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", CONNECTION)
    yield install(monkeypatch, load_template(settings.prompt), PROJECT, settings.location)
