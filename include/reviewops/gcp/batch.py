"""Batch prediction with a Gemini model on Vertex AI: the requests file before the job,
the predictions table after it.

Two steps around one Vertex AI batch prediction job (the job itself is the Google
provider's ``CreateBatchPredictionJobOperator``):

- :func:`prepare_batch` renders every review of the input (a curated week, or a split of
  a dataset version) with a versioned prompt template into
  ``<data_root>/vertex/batch/<subject>/<prompt ref>/requests.jsonl`` (one request per
  distinct rendered text: two reviews that render the same share one request), and
  resolves where and with what the job runs (a :class:`BatchSpec`: project, location,
  model, the Cloud Storage source and output prefix), which its lineage record carries.
- :func:`collect_batch` reads the job's ``predictions*.jsonl``, matches each output line
  to its request by :func:`reviewops.gcp.gemini.request_key`, and writes one row per input
  review, in the same columns as local scoring (``reviewops.data.schema.prediction_schema``)
  plus the response's status, the model's own safety categories, the number of
  citations and the prompt template. Nothing is dropped: a review whose request came
  back with no line gets status ``missing``.

Probabilities: Gemini answers one word, not a distribution, so an answered review
(status ``ok``) gets probability 1 for its class and 0 for the others; a review the
model did not classify (``blocked``, ``unparseable``, ``error``, ``missing``) gets a null
``predicted_label`` and null probabilities, never a made-up class.

This module never imports Airflow.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reviewops.config import VertexSettings
from reviewops.contracts import DATASET_VERSION_PATTERN, ArtifactKind, ModelKind
from reviewops.data.schema import CLASSES, prediction_schema
from reviewops.gcp.gemini import MISSING, OK, ParsedResponse, batch_request, parse_output, request_key, response_summary
from reviewops.gcp.prompts import PromptTemplate, load_template
from reviewops.lineage.record import Artifact, StepResult
from reviewops.monitoring.metrics import model_safety_metrics
from reviewops.storage.io import write_parquet, write_text
from reviewops.storage.paths import Layout, StoragePath, as_path, glob, is_remote, to_uri
from reviewops.storage.publish import is_published

log = logging.getLogger(__name__)

INPUT_COLUMNS = ["review_id", "product", "condition", "text", "label", "week"]
REQUESTS_FILE = "requests.jsonl"
OUTPUT_FOLDER = "output"
# Vertex AI names each job's output folder prediction-<model>-<timestamp> under the prefix.
JOB_FOLDER_PREFIX = "prediction-"
OUTPUT_FILE_PREFIX = "predictions"
VERTEX_KIND = ModelKind.VERTEX  # registry metadata "kind" of a Vertex-tuned model
SUCCEEDED = "JOB_STATE_SUCCEEDED"

# The columns Vertex scoring adds to the local prediction schema.
VERTEX_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("response_status", pa.string()),
    ("block_reason", pa.string()),
    ("model_safety_categories", pa.list_(pa.string())),
    ("citation_count", pa.int32()),
    ("prompt_template", pa.string()),
)


class BatchError(RuntimeError):
    """An input, a model or a job output the batch steps cannot use; the message says why."""


def vertex_prediction_schema(classes: tuple[str, ...] = CLASSES) -> pa.Schema:
    """The weekly prediction schema followed by :data:`VERTEX_FIELDS`."""
    schema = prediction_schema(classes)
    for name, kind in VERTEX_FIELDS:
        schema = schema.append(pa.field(name, kind))
    return schema


@dataclass(frozen=True)
class BatchSpec:
    """What the batch prediction job runs: resolved once by :func:`prepare_batch`, carried
    in its lineage record (``metrics["vertex"]``) to the job and to :func:`collect_batch`."""

    subject: str  # week=YYYY-MM-DD, or ds-…/eval
    project: str  # empty: the Airflow Connection's project
    location: str
    model: str  # the Vertex AI model resource the job runs
    model_version: str  # the stable id written in the predictions' model_version column
    registry_version: str | None  # the registry version behind a tuned model, if any
    prompt_template: str
    prompt_sha256: str
    gcs_source: str
    gcs_destination_prefix: str
    job_display_name: str
    gcp_conn_id: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(data)
        if missing:
            raise BatchError(f"batch spec lacks {sorted(missing)}: was it written by prepare_batch?")
        return cls(**{k: data[k] for k in names})


@dataclass(frozen=True)
class PrepareParams:
    """Per-run choices of :func:`prepare_batch`; empty means the configured default
    (``VertexSettings`` from ``REVIEWOPS_VERTEX_*``)."""

    data_root: str
    prompt: str = ""  # NAME or NAME@vN
    model: str = ""  # a Vertex AI model resource name; empty: see resolve_model
    model_version: str = ""  # a pinned registry version (must be of kind vertex)
    project: str = ""
    location: str = ""
    require_gcs: bool = True  # Vertex AI reads and writes Cloud Storage only


# --- inputs ------------------------------------------------------------------------------


def batch_subject(source: Artifact) -> str:
    """``week=YYYY-MM-DD`` for a curated partition, ``ds-…/<split>`` for a dataset split."""
    path = source.path
    if source.kind == ArtifactKind.CURATED:
        return str(path.parent.name)
    if source.kind == ArtifactKind.DATASET and path.suffix == ".parquet":
        return f"{path.parent.name}/{path.stem}"
    raise BatchError(f"{source.uri} ({source.kind}) is neither a curated week nor a dataset split (.parquet)")


def select_input(outputs: Sequence[Artifact], split: str = "eval") -> Artifact:
    """The artifact to score among an upstream record's outputs: its single curated
    week, else the dataset's ``<split>.parquet``."""
    curated = [a for a in outputs if a.kind == ArtifactKind.CURATED]
    if len(curated) == 1:
        return curated[0]
    if curated:
        raise BatchError(f"expected the curated partition of one week, got {len(curated)}")
    wanted = f"{split}.parquet"
    found = [a for a in outputs if a.kind == ArtifactKind.DATASET and a.uri.rstrip("/").rsplit("/", 1)[-1] == wanted]
    if len(found) != 1:
        raise BatchError(f"the upstream record has no curated week and no dataset file {wanted}")
    return found[0]


def newest_dataset(data_root: str) -> str:
    """The dataset version covering the newest data (latest last week, then most rows,
    then name): content-addressed names carry no date."""
    manifests = glob(Layout(data_root).datasets(), "ds-*/manifest.json")
    if not manifests:
        raise BatchError(f"no dataset version under {to_uri(Layout(data_root).datasets())}: run reviews_training")
    ranked = []
    for path in manifests:
        if not is_published(path.parent):  # an object store version without its marker is incomplete
            continue
        manifest = json.loads(path.read_text(encoding="utf-8"))
        last = str((manifest.get("weeks") or {}).get("last") or "")
        ranked.append((last, int(manifest.get("rows") or 0), str(manifest.get("version") or path.parent.name)))
    if not ranked:
        raise BatchError(f"no published dataset version under {to_uri(Layout(data_root).datasets())}")
    return max(ranked)[2]


DATASET_SPLITS = ("train", "eval")


def dataset_input(data_root: str, version: str = "", split: str = "eval") -> Artifact:
    """The ``<split>.parquet`` of a dataset version (empty: :func:`newest_dataset`)."""
    version = version.strip() or newest_dataset(data_root)
    if not re.fullmatch(DATASET_VERSION_PATTERN, version) or split not in DATASET_SPLITS:
        raise BatchError(
            f"dataset {version!r} split {split!r}: a dataset version is ds-<id> (see 'datasets/' under the data "
            f"root) and a split one of {', '.join(DATASET_SPLITS)}"
        )
    path = Layout(data_root).datasets() / version / f"{split}.parquet"
    if not path.exists():
        raise BatchError(f"dataset {version} has no {split} split at {to_uri(path)}")
    return Artifact.of_file(path, ArtifactKind.DATASET)


def read_input(source: Artifact) -> pa.Table:
    """The reviews to score, read from exactly the bytes upstream recorded."""
    data = source.path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != source.sha256:
        raise BatchError(f"{source.uri} changed since it was recorded: expected {source.sha256}, found {found}")
    return pq.read_table(pa.BufferReader(data), columns=INPUT_COLUMNS)


# --- the model -----------------------------------------------------------------------------


def _vertex_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``vertex.*`` of a registry version's metadata, nested or with dotted keys."""
    nested = meta.get("vertex")
    found: dict[str, Any] = dict(nested) if isinstance(nested, Mapping) else {}
    for key, value in meta.items():
        if key.startswith("vertex.") and value:
            found.setdefault(key.removeprefix("vertex."), value)
    return found


@dataclass(frozen=True)
class ResolvedModel:
    """The model a batch runs, and the prompt a tuned model was tuned with (if any)."""

    model: str  # Vertex AI model resource name
    registry_version: str | None = None
    tuned_prompt: str | None = None  # NAME@vN the registered model was tuned with
    tuned_prompt_sha256: str | None = None


def resolve_model(params: PrepareParams, settings: VertexSettings) -> ResolvedModel:
    """The model, by precedence:

    1. ``params.model``: a Vertex AI model resource, as given;
    2. ``params.model_version``: a pinned, blessed registry version of kind ``vertex``;
    3. the registry's champion when it is of kind ``vertex`` (a tuned Gemini model);
    4. ``VertexSettings.model``: the base Gemini model.
    """
    from reviewops.registry.store import Registry, RegistryError

    if params.model.strip():
        return ResolvedModel(params.model.strip())
    registry = Registry(params.data_root)
    version = params.model_version.strip() or None
    try:
        if version:
            registry.resolve(version)  # a pinned version must be blessed
        else:
            version = registry.champion()
        meta: Mapping[str, Any] = registry.metadata(version) if version else {}
    except RegistryError as exc:
        raise BatchError(str(exc)) from exc
    kind = meta.get("kind")
    if version and kind == VERTEX_KIND:
        vertex = _vertex_metadata(meta)
        if not vertex.get("tuned_model_name"):
            raise BatchError(f"model {version} is of kind vertex but names no vertex.tuned_model_name")
        prompt = vertex.get("prompt_ref")
        sha = vertex.get("prompt_sha256")
        return ResolvedModel(str(vertex["tuned_model_name"]), version, str(prompt) if prompt else None, sha)
    if params.model_version.strip():
        raise BatchError(
            f"model {version} is of kind {kind!r}, not vertex: score it with scoring_backend=local, "
            "or leave model_version empty"
        )
    return ResolvedModel(settings.model)


def choose_template(params: PrepareParams, settings: VertexSettings, resolved: ResolvedModel) -> PromptTemplate:
    """The run's prompt when given; else the one a registered tuned model was tuned with
    (it must still hash the same); else the configured one."""
    if params.prompt.strip():
        template = load_template(params.prompt.strip())
        if resolved.tuned_prompt and template.ref != resolved.tuned_prompt:
            log.warning(
                "model %s was tuned with %s, not %s", resolved.registry_version, resolved.tuned_prompt, template.ref
            )
        return template
    if resolved.tuned_prompt:
        template = load_template(resolved.tuned_prompt)
        if resolved.tuned_prompt_sha256 and template.sha256 != resolved.tuned_prompt_sha256:
            raise BatchError(
                f"prompt {template.ref} changed since model {resolved.registry_version} was tuned with it "
                f"(sha256 {resolved.tuned_prompt_sha256} then, {template.sha256} now): templates are immutable"
            )
        return template
    return load_template(settings.prompt)


def model_id(model: str, registry_version: str | None, prompt_ref: str) -> str:
    """The predictions' ``model_version``: the model (its registry version, the short name
    of a publisher model, else its resource name) and the prompt template."""
    if registry_version:
        name = registry_version
    elif "/publishers/" in f"/{model}":
        name = f"vertex:{model.rsplit('/', 1)[-1]}"
    else:
        name = f"vertex:{model}"
    return f"{name}+{prompt_ref}"


def batch_folder(data_root: str, subject: str, prompt_ref: str) -> StoragePath:
    return Layout(data_root).vertex_batch(subject, prompt_ref)


_DISPLAY = re.compile(r"[^A-Za-z0-9._@=/+ -]+")


# --- prepare ----------------------------------------------------------------------------------


def prepare_batch(params: PrepareParams, source: Artifact) -> tuple[StepResult, list[Artifact]]:
    """Write the requests file of ``source`` and resolve the job's :class:`BatchSpec`.

    Returns the result (output: the requests file; metrics: counts, the prompt's ref and
    sha256, and ``vertex``: the spec) and its inputs (``source``).
    """
    settings = VertexSettings.from_env(project=params.project, location=params.location)
    root = Layout(params.data_root).root
    if params.require_gcs and not is_remote(root):
        raise BatchError(
            f"the data root {to_uri(root)} is not on Cloud Storage: Vertex AI batch prediction reads its "
            "requests from and writes its output to gs://, so set data_root to gs://BUCKET/PREFIX"
        )
    resolved = resolve_model(params, settings)
    model, registry_version = resolved.model, resolved.registry_version
    template = choose_template(params, settings, resolved)
    subject = batch_subject(source)
    table = read_input(source)
    if not table.num_rows:
        # Vertex AI fails a job with no instances; the local backend would fail the
        # week's volume check. Say so before anything is submitted or billed.
        raise BatchError(f"{subject} has no reviews to score: no batch prediction job was submitted")
    lines: dict[str, str] = {}
    for review in table.to_pylist():
        request = batch_request(template, review)
        lines.setdefault(request_key(request["request"]), json.dumps(request, ensure_ascii=False, sort_keys=True))
    folder = batch_folder(params.data_root, subject, template.ref)
    requests_path = write_text("".join(line + "\n" for line in lines.values()), folder / REQUESTS_FILE)
    version = model_id(model, registry_version, template.ref)
    spec = BatchSpec(
        subject=subject,
        project=settings.project,
        location=settings.location,
        model=model,
        model_version=version,
        registry_version=registry_version,
        prompt_template=template.ref,
        prompt_sha256=template.sha256,
        gcs_source=to_uri(requests_path),
        gcs_destination_prefix=to_uri(folder / OUTPUT_FOLDER),
        job_display_name=_DISPLAY.sub("-", f"reviewops {subject} {template.ref} {version}")[:128],
        gcp_conn_id=settings.gcp_conn_id,
    )
    log.info("%s: %d reviews -> %d requests with %s for %s", subject, table.num_rows, len(lines), template.ref, model)
    result = StepResult(
        subject=subject,
        outputs=(Artifact.of_file(requests_path, ArtifactKind.VERTEX_REQUESTS, rows=len(lines)),),
        metrics={
            "reviews": table.num_rows,
            "requests": len(lines),
            "shared_requests": table.num_rows - len(lines),
            **template.lineage(),
            "model_version": version,
            "vertex": spec.to_dict(),
        },
    )
    return result, [source]


# --- the job's output ------------------------------------------------------------------------------


def job_output_directory(job: Mapping[str, Any] | None) -> str | None:
    """``outputInfo.gcsOutputDirectory`` of a job dict: camelCase from the operator's
    synchronous path (``BatchPredictionJob.to_dict``), snake_case from the deferrable
    path (the trigger's proto-plus ``to_dict``)."""
    if not job:
        return None
    info = job.get("outputInfo") or job.get("output_info") or {}
    directory = info.get("gcsOutputDirectory") or info.get("gcs_output_directory")
    return str(directory) if directory else None


def job_sources(job: Mapping[str, Any] | None) -> list[str]:
    """The input URIs a job dict names (camelCase or snake_case), if it names any."""
    config = (job or {}).get("inputConfig") or (job or {}).get("input_config") or {}
    source = config.get("gcsSource") or config.get("gcs_source") or {}
    return [str(uri) for uri in source.get("uris") or ()]


def check_job(job: Mapping[str, Any] | None, spec: BatchSpec) -> None:
    """The job succeeded and read the requests this batch wrote (when the dict says)."""
    state = (job or {}).get("state")
    # The deferrable path gives enum numbers (4 is SUCCEEDED), the synchronous one names.
    if state not in (None, SUCCEEDED, 4):
        error = (job or {}).get("error") or {}
        raise BatchError(f"batch prediction job {job.get('name') if job else ''} ended {state}: {error}")
    sources = job_sources(job)
    if sources and spec.gcs_source not in sources:
        raise BatchError(f"job {(job or {}).get('name')} read {sources}, not this batch's requests {spec.gcs_source}")


def output_files(job: Mapping[str, Any] | None, destination_prefix: str) -> list[StoragePath]:
    """The job's ``predictions*.jsonl``, in the output directory the job names. Never a
    guess from the destination prefix: jobs of other models on the same requests (a
    challenger and the champion on one eval split) write under the same prefix."""
    directory = job_output_directory(job)
    if directory is None:
        raise BatchError(
            f"the batch prediction job's result names no output directory (job: {(job or {}).get('name')}); "
            f"its output is somewhere under {destination_prefix}: clear batch_predict to run the job again"
        )
    files = glob(as_path(directory), f"{OUTPUT_FILE_PREFIX}*.jsonl")
    if not files:
        raise BatchError(f"the job wrote no {OUTPUT_FILE_PREFIX}*.jsonl under {directory}")
    return files


def read_output(files: Sequence[StoragePath]) -> tuple[list[str], list[Artifact]]:
    """Every line of the output files, and each file as an artifact hashed from the
    same bytes that were parsed."""
    lines: list[str] = []
    artifacts = []
    for path in files:
        data = path.read_bytes()
        text = data.decode("utf-8")
        found = [line for line in text.splitlines() if line.strip()]
        lines += found
        artifacts.append(
            Artifact(
                uri=to_uri(path),
                kind=ArtifactKind.VERTEX_OUTPUT,
                sha256=hashlib.sha256(data).hexdigest(),
                rows=len(found),
                bytes=len(data),
            )
        )
    return lines, artifacts


def job_seconds(job: Mapping[str, Any] | None) -> float | None:
    """Wall time of the job from its start (or create) to end time, when it says."""
    if not job:
        return None
    start = job.get("startTime") or job.get("start_time") or job.get("createTime") or job.get("create_time")
    end = job.get("endTime") or job.get("end_time")
    if not (isinstance(start, str) and isinstance(end, str)):
        return None
    try:
        seconds = (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None
    return round(seconds, 3)


# --- collect -------------------------------------------------------------------------------------------


def predictions_target(data_root: str, spec: BatchSpec) -> StoragePath:
    """A week's predictions partition (the same as local scoring), or, for a dataset
    split, a file per model beside the requests."""
    if spec.subject.startswith("week="):
        return Layout(data_root).predictions(spec.subject.removeprefix("week="))
    slug = re.sub(r"[^A-Za-z0-9._@+-]+", "-", spec.model_version)
    return batch_folder(data_root, spec.subject, spec.prompt_template) / f"predictions-{slug}.parquet"


def load_spec_template(spec: BatchSpec) -> PromptTemplate:
    """The template the requests were rendered with; fails when its file changed since."""
    template = load_template(spec.prompt_template)
    if template.sha256 != spec.prompt_sha256:
        raise BatchError(
            f"prompt {spec.prompt_template} changed since the requests were written "
            f"(sha256 {spec.prompt_sha256} then, {template.sha256} now): templates are immutable, "
            "add a new version instead"
        )
    return template


def join_responses(
    table: pa.Table, template: PromptTemplate, responses: Mapping[str, ParsedResponse]
) -> list[ParsedResponse]:
    """The response of each review, in the table's order (``missing`` when none came back)."""
    found = []
    for review in table.to_pylist():
        key = request_key(batch_request(template, review)["request"])
        found.append(responses.get(key) or ParsedResponse(key=key, status=MISSING))
    return found


def predictions_table(
    table: pa.Table, responses: Sequence[ParsedResponse], model_version: str, prompt_ref: str
) -> pa.Table:
    """One row per review in :func:`vertex_prediction_schema`."""
    from reviewops.data.safety import scan_texts

    flags = scan_texts(table.column("text").to_pylist())
    answered = [r.label if r.status == OK else None for r in responses]
    columns: dict[str, Any] = {
        "review_id": table.column("review_id"),
        "predicted_label": pa.array(answered, pa.string()),
        **{
            f"prob_{name}": pa.array([None if a is None else float(a == name) for a in answered], pa.float32())
            for name in CLASSES
        },
        "model_version": pa.array([model_version] * table.num_rows, pa.string()),
        "week": table.column("week"),
        "label": table.column("label"),
        "safety_categories": pa.array([list(f.categories) for f in flags], pa.list_(pa.string())),
        "safety_score": pa.array([f.score for f in flags], pa.float32()),
        "response_status": pa.array([r.status for r in responses], pa.string()),
        "block_reason": pa.array([r.block_reason for r in responses], pa.string()),
        "model_safety_categories": pa.array([r.safety_categories for r in responses], pa.list_(pa.string())),
        "citation_count": pa.array([len(r.citations) for r in responses], pa.int32()),
        "prompt_template": pa.array([prompt_ref] * table.num_rows, pa.string()),
    }
    return pa.Table.from_pydict(columns, schema=vertex_prediction_schema())


def collect_batch(
    data_root: str, spec: BatchSpec, source: Artifact, requests: Artifact, job: Mapping[str, Any] | None
) -> tuple[StepResult, list[Artifact]]:
    """Join the job's output back to every review of ``source`` and write the predictions.

    Returns the result (output: the predictions file; metrics: counts by status, the
    response summary, the model's safety counts, the prompt's ref and sha256) and its
    inputs: the scored reviews, the requests file and the job's output files.
    """
    template = load_spec_template(spec)
    table = read_input(source)
    check_job(job, spec)
    lines, outputs = read_output(output_files(job, spec.gcs_destination_prefix))
    invalid: list[str] = []
    parsed = parse_output(lines, template, invalid)
    if invalid:
        # A truncated or garbled line: its review is reported missing, the rest is kept.
        log.warning("%d output lines of %s are not JSON objects, e.g. %.80r", len(invalid), spec.subject, invalid[0])
    responses = join_responses(table, template, parsed)
    matched = {r.key for r in responses}
    unmatched = sorted(set(parsed) - matched)
    if unmatched:
        # Lines for requests this input does not hold: reported, they score nothing.
        log.warning("%d output lines match no review of %s", len(unmatched), spec.subject)
    predictions = predictions_table(table, responses, spec.model_version, spec.prompt_template)
    target = write_parquet(predictions, predictions_target(data_root, spec))
    summary = response_summary(responses)
    seconds = job_seconds(job)
    metrics: dict[str, Any] = {
        "subject": spec.subject,
        "model_version": spec.model_version,
        "model_choice": "registry" if spec.registry_version else "vertex",
        "vertex_model": spec.model,
        "registry_version": spec.registry_version,
        **template.lineage(),
        "rows_scored": predictions.num_rows,
        "requests": requests.rows,
        "output_lines": len(lines),
        "unmatched_lines": len(unmatched),
        "invalid_lines": len(invalid),
        "job": (job or {}).get("name"),
        "batch_seconds": [seconds] if seconds is not None else [],
        "response_summary": summary,
        **model_safety_metrics(predictions),
    }
    if spec.subject.startswith("week="):
        metrics["week"] = spec.subject.removeprefix("week=")
    log.info("%s: %d reviews, %s", spec.subject, predictions.num_rows, summary["by_status"])
    result = StepResult(
        subject=spec.subject,
        outputs=(Artifact.of_file(target, ArtifactKind.PREDICTIONS),),
        metrics=metrics,
    )
    return result, [source, requests, *outputs]


# --- monitoring ---------------------------------------------------------------------------------------
