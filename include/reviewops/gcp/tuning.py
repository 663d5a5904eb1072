"""Supervised tuning of a Gemini model on Vertex AI: the training files, the tuned
model as a registry candidate, and its evaluation beside the local models.

Three steps, each a plain function over files (the tuning job itself is the Google
provider's operator):

1. :func:`export_tuning_data`: a dataset version's train split as Vertex AI tuning
   JSONL (one :func:`reviewops.gcp.gemini.tuning_example` per line) under
   ``<data_root>/vertex/tuning/<ds-…>/<prompt ref>/``: ``train.jsonl`` and
   ``validation.jsonl``. The validation file is a deterministic carve of the *train*
   split (by a salted hash of ``review_id``), so the eval split stays untouched for the
   gate, exactly as the local trials carve their validation rows out of the train split.
2. :func:`record_tuned_model`: the tuned model's resource names, base model, prompt and
   data as a candidate folder (``vertex_model.json`` + ``training.json``) the registry
   can publish like a Keras candidate.
3. :func:`evaluate_tuned_model`: the tuned model's batch predictions on the eval split,
   the champion's (computed locally when it is a Keras model) and the two baselines, in
   the same ``evaluation.json`` shape as :func:`reviewops.modeling.evaluation.evaluate_candidate`.

Limits (Vertex AI documentation, Gemini supervised tuning): at least 16 training
examples (100 to 500 recommended), at most 5,000 validation examples and 1 GB of
training JSONL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reviewops.config import VertexSettings
from reviewops.contracts import TRAINING_FILE, VERTEX_MODEL_FILE, ArtifactKind, ModelKind, Scores
from reviewops.data.schema import CLASSES
from reviewops.gcp.gemini import tuning_example
from reviewops.gcp.prompts import PromptTemplate, load_template
from reviewops.lineage.record import Artifact, LineageRecord, StepResult, code_version
from reviewops.storage.io import read_json, write_json, write_text
from reviewops.storage.paths import Layout, StoragePath, as_path, is_remote, to_uri
from reviewops.storage.publish import publish_dir, staging_dir

log = logging.getLogger(__name__)

MIN_TRAIN_EXAMPLES = 16
RECOMMENDED_TRAIN_EXAMPLES = 100
MAX_VALIDATION_EXAMPLES = 5000
MAX_TRAIN_FILE_BYTES = 1 << 30
VALIDATION_FRACTION = 0.2  # the same share the local trials carve out of the train split
VALIDATION_SALT = "vertex-validation"

TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"
KIND = ModelKind.VERTEX
UNANSWERED = "unanswered"

_MODEL_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/models/[^/@]+(@[^/]+)?$")
_ENDPOINT_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/endpoints/[^/]+$")


class TuningError(ValueError):
    """Too little data to tune on, a data root Vertex AI cannot read, or a tuning job
    that returned no tuned model. The message says what to do."""


# --- 1. training files -----------------------------------------------------------------


@dataclass(frozen=True)
class TuningDataParams:
    data_root: str
    dataset_dir: str
    vertex: VertexSettings = field(default_factory=VertexSettings)
    validation_fraction: float = VALIDATION_FRACTION
    min_train_examples: int = MIN_TRAIN_EXAMPLES
    max_validation_examples: int = MAX_VALIDATION_EXAMPLES
    require_cloud_storage: bool = True


def validation_bucket(review_id: str) -> float:
    """Where a review falls in [0, 1) for the validation carve: salted, so it is
    independent of the eval split's hash (every train row is above the eval cut)."""
    digest = hashlib.sha256(f"{VALIDATION_SALT}:{review_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def split_for_tuning(
    rows: Sequence[Mapping[str, Any]], fraction: float, max_validation: int
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(train, validation) rows: validation is the carve below ``fraction``, cut to the
    ``max_validation`` rows with the lowest buckets; rows past the cut go back to train."""
    ordered = sorted(rows, key=lambda r: (validation_bucket(str(r["review_id"])), str(r["review_id"])))
    carved = [r for r in ordered if validation_bucket(str(r["review_id"])) < fraction]
    validation = carved[:max_validation]
    kept = {str(r["review_id"]) for r in validation}
    train = sorted((r for r in rows if str(r["review_id"]) not in kept), key=lambda r: str(r["review_id"]))
    return train, sorted(validation, key=lambda r: str(r["review_id"]))


def tuning_lines(template: PromptTemplate, rows: Iterable[Mapping[str, Any]]) -> str:
    """The JSONL text: one documented tuning example per row."""
    return "".join(
        json.dumps(tuning_example(template, row, str(row["label"])), ensure_ascii=False, sort_keys=True) + "\n"
        for row in rows
    )


def estimated_tokens(template: PromptTemplate, rows: Iterable[Mapping[str, Any]]) -> int:
    """A rough token count of one pass over the examples (system, user and model text at
    about 4 characters a token), for the cost estimate: the service counts exactly."""
    chars = sum(len(template.system_instruction) + len(template.render(row)) + len(str(row["label"])) for row in rows)
    return -(-chars // 4)


def tuning_dir(data_root: str, dataset_version: str, template: PromptTemplate) -> StoragePath:
    return Layout(data_root).vertex_tuning(dataset_version, template.ref)


def read_split(dataset_dir: StoragePath, split: str) -> list[dict[str, Any]]:
    text = (dataset_dir / f"{split}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def export_tuning_data(params: TuningDataParams) -> StepResult:
    """Write the tuning and validation JSONL of a dataset version's train split; the
    result's metrics carry the tuning request the provider's operator is rendered from."""
    dataset_dir = as_path(params.dataset_dir)
    version = str(read_json(dataset_dir / "manifest.json")["version"])
    template = load_template(params.vertex.prompt)
    folder = tuning_dir(params.data_root, version, template)
    if params.require_cloud_storage and not is_remote(folder):
        raise TuningError(
            f"Vertex AI reads tuning data from Cloud Storage, but the data root is {to_uri(folder)}: "
            "run with a gs://BUCKET/PREFIX data root (Param data_root or REVIEWOPS_DATA_ROOT), "
            "or train with training_backend=local"
        )
    train, validation = split_for_tuning(
        read_split(dataset_dir, "train"), params.validation_fraction, params.max_validation_examples
    )
    _check_counts(version, len(train), len(validation), params)
    train_text = tuning_lines(template, train)
    if len(train_text.encode("utf-8")) > MAX_TRAIN_FILE_BYTES:
        raise TuningError(
            f"{version}: the tuning file would be {len(train_text.encode()):,} bytes, over Vertex AI's 1 GB "
            "limit: snapshot a smaller window of curated weeks"
        )
    train_file = write_text(train_text, folder / TRAIN_FILE)
    validation_file = write_text(tuning_lines(template, validation), folder / VALIDATION_FILE)
    outputs = (
        Artifact.of_file(train_file, ArtifactKind.TUNING_DATA, rows=len(train)),
        Artifact.of_file(validation_file, ArtifactKind.TUNING_DATA, rows=len(validation)),
    )
    train_uri, validation_uri = to_uri(train_file), to_uri(validation_file)
    metrics: dict[str, Any] = {
        "dataset_version": version,
        **template.lineage(),
        "train_examples": len(train),
        "validation_examples": len(validation),
        "train_class_counts": _class_counts(train),
        "validation_class_counts": _class_counts(validation),
        "validation_rule": f"sha256('{VALIDATION_SALT}:' + review_id)[:8] / 2**32 < {params.validation_fraction}"
        f" (first {params.max_validation_examples})",
        # Tuning is billed per training token, every epoch: about 4 characters a token.
        "estimated_training_tokens": estimated_tokens(template, train) * params.vertex.tuning_epochs,
        "train_uri": train_uri,
        "validation_uri": validation_uri,
        "tuning": tuning_request(params.vertex, version, template, train_uri, validation_uri),
    }
    log.info(
        "tuning data for %s with %s: %d train / %d validation examples in %s; about %d training tokens over %d epochs",
        version,
        template.ref,
        len(train),
        len(validation),
        to_uri(folder),
        metrics["estimated_training_tokens"],
        params.vertex.tuning_epochs,
    )
    return StepResult(subject=version, outputs=outputs, metrics=metrics)


def _check_counts(version: str, train: int, validation: int, params: TuningDataParams) -> None:
    if train < params.min_train_examples or validation < 1:
        raise TuningError(
            f"{version}: {train} training and {validation} validation examples; Vertex AI supervised tuning needs "
            f"at least {params.min_train_examples} training examples ({RECOMMENDED_TRAIN_EXAMPLES} or more "
            "recommended) and this pipeline at least 1 validation example. Curate more weeks "
            "(reviews_initial_load over a longer window, or more reviews_weekly runs), lower the eval_fraction "
            "Param, or train with training_backend=local"
        )
    if train < RECOMMENDED_TRAIN_EXAMPLES:
        log.warning(
            "%s: only %d training examples; Vertex AI recommends %d or more for a useful tuned model",
            version,
            train,
            RECOMMENDED_TRAIN_EXAMPLES,
        )


def _class_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {name: sum(1 for r in rows if r["label"] == name) for name in CLASSES}


def tuned_model_display_name(dataset_version: str, template: PromptTemplate) -> str:
    # Up to 128 characters (Vertex AI); ds- and prompt refs are short.
    return f"reviewops-{dataset_version}-{template.name}-v{template.version}"[:128]


def tuning_request(
    vertex: VertexSettings, dataset_version: str, template: PromptTemplate, train_uri: str, validation_uri: str
) -> dict[str, Any]:
    """The arguments of ``GenAISupervisedFineTuningTrainOperator`` (plain JSON). An
    empty project means the Connection's."""
    return {
        "project_id": vertex.project,
        "location": vertex.location,
        "gcp_conn_id": vertex.gcp_conn_id,
        "source_model": vertex.tuning_source_model,
        "training_dataset": {"gcs_uri": train_uri},
        "tuning_job_config": {
            "tuned_model_display_name": tuned_model_display_name(dataset_version, template),
            "epoch_count": vertex.tuning_epochs,
            "validation_dataset": {"gcs_uri": validation_uri},
        },
    }


# --- 2. the tuned model as a candidate -------------------------------------------------


@dataclass(frozen=True)
class TunedModelParams:
    data_root: str
    tuned_model_name: str
    endpoint: str
    tuning: Mapping[str, Any]  # the metrics of export_tuning_data's record
    tuning_seconds: float | None = None


def check_tuned_model(tuned_model_name: str | None, endpoint: str | None) -> None:
    if not tuned_model_name or not _MODEL_NAME.match(tuned_model_name):
        raise TuningError(
            f"the tuning job returned no usable tuned model name ({tuned_model_name!r}, expected "
            "projects/P/locations/L/models/ID@VERSION): look the job up in the Vertex AI console "
            "(Tuning) for its error, then run reviews_training again"
        )
    if not endpoint or not _ENDPOINT_NAME.match(endpoint):
        raise TuningError(
            f"the tuning job returned no usable endpoint ({endpoint!r}, expected "
            "projects/P/locations/L/endpoints/ID): look the job up in the Vertex AI console"
        )


def record_tuned_model(params: TunedModelParams) -> StepResult:
    """Write the candidate folder of a tuned model: ``vertex_model.json`` (resource
    names, base model, prompt, data, tuning job config) and ``training.json`` (what the
    registry and the model card read). Its version hashes the tuned model's name, so
    every tuning job is a version of its own."""
    from reviewops.registry.store import Registry, model_version_id

    check_tuned_model(params.tuned_model_name, params.endpoint)
    tuning = params.tuning
    request = tuning["tuning"]
    config = request["tuning_job_config"]
    vertex = {
        "tuned_model_name": params.tuned_model_name,
        "endpoint": params.endpoint,
        "source_model": request["source_model"],
        "prompt_ref": tuning["prompt_template"],
        "prompt_sha256": tuning["prompt_sha256"],
    }
    train_params = {
        "source_model": request["source_model"],
        "epoch_count": config.get("epoch_count"),
        "prompt": tuning["prompt_template"],
        "tuned_model_display_name": config.get("tuned_model_display_name"),
    }
    dataset_version = str(tuning["dataset_version"])
    version = model_version_id(dataset_version, {"kind": KIND, **train_params, **vertex}, code_version())
    model = {
        "kind": KIND,
        "model_version": version,
        **vertex,
        "dataset_version": dataset_version,
        "project_id": request.get("project_id") or _resource_part(params.tuned_model_name, "projects"),
        "location": request.get("location") or _resource_part(params.tuned_model_name, "locations"),
        "tuning_job_config": config,
        "training_data": {"train": tuning["train_uri"], "validation": tuning["validation_uri"]},
    }
    training = {
        "kind": KIND,
        "params": train_params,
        "vertex": vertex,
        "train_rows": tuning["train_examples"],
        "validation_rows": tuning["validation_examples"],
        "classes": list(CLASSES),
        "train_seconds": round(params.tuning_seconds, 1) if params.tuning_seconds is not None else None,
        "warm_start_from": None,
        "code_version": code_version(),
    }
    folder = Registry(params.data_root).candidates() / f"{version}.{uuid.uuid4().hex[:8]}"
    # Published whole, like a Keras candidate: a reader never sees half a folder.
    staging = staging_dir(folder.parent, folder.name)
    write_json(model, staging / VERTEX_MODEL_FILE)
    write_json(training, staging / TRAINING_FILE)
    publish_dir(staging, folder)
    model_file, training_file = folder / VERTEX_MODEL_FILE, folder / TRAINING_FILE
    log.info("tuned model %s (endpoint %s) recorded as candidate %s", params.tuned_model_name, params.endpoint, version)
    return StepResult(
        subject=version,
        outputs=(
            Artifact.of_file(model_file, ArtifactKind.MODEL_CANDIDATE),
            Artifact.of_file(training_file, ArtifactKind.MODEL_CANDIDATE),
        ),
        metrics={"model_version": version, "dataset_version": dataset_version, **training},
    )


def _resource_part(name: str, collection: str) -> str:
    parts = name.split("/")
    return parts[parts.index(collection) + 1] if collection in parts else ""


# --- 3. evaluation ---------------------------------------------------------------------


def scored_metrics(labels: Sequence[str], predicted: Sequence[str | None]) -> Scores:
    """:func:`reviewops.modeling.evaluation.classification_metrics` over every eval row, where a
    review the model did not answer (blocked, unparseable, failed, missing) counts as a
    miss: it lowers accuracy and its class's recall, it is never dropped. The confusion
    matrix covers the answered rows; ``unanswered`` counts the rest by true class."""
    from reviewops.modeling.evaluation import classification_metrics

    classes = (*CLASSES, UNANSWERED)
    full = classification_metrics(labels, [p if p in CLASSES else UNANSWERED for p in predicted], classes)
    per_class = {name: full["per_class"][name] for name in CLASSES}
    f1s = [float(stats["f1"]) for stats in per_class.values()]
    k = len(CLASSES)
    return {
        "rows": full["rows"],
        "accuracy": full["accuracy"],
        "macro_f1": round(sum(f1s) / len(f1s), 4) if full["rows"] else 0.0,
        "per_class": per_class,
        "confusion_matrix": [row[:k] for row in full["confusion_matrix"][:k]],
        "classes": list(CLASSES),
        "unanswered": {name: int(full["confusion_matrix"][i][k]) for i, name in enumerate(CLASSES)},
    }


def evaluate_tuned_model(
    candidate_dir: StoragePath,
    dataset_dir: StoragePath,
    model_version: str,
    predicted: Mapping[str, str | None],
    champion: tuple[str, StoragePath] | None = None,
    predictions_summary: Mapping[str, Any] | None = None,
    vertex_champion: tuple[str, Mapping[str, str | None]] | None = None,
) -> StepResult:
    """Score the tuned model's eval-split predictions (review_id -> class, or None when
    unanswered) beside the champion's and the two baselines trained on the same train
    split; write ``evaluation.json`` into the candidate folder, in the shape
    :func:`reviewops.modeling.evaluation.evaluate_candidate` writes.

    The champion is either a Keras model (``champion``: version and model file; it
    predicts here, locally) or a Vertex AI model (``vertex_champion``: version and its own
    batch predictions of the same eval split, unanswered reviews counted as misses)."""
    from reviewops.modeling.evaluation import comparison, evaluation_report, references, write_evaluation
    from reviewops.storage.io import read_table

    evaluation = read_table(dataset_dir / "eval.parquet", columns=["review_id", "text", "label"])
    ids = [str(i) for i in evaluation.column("review_id").to_pylist()]
    texts = evaluation.column("text").to_pylist()
    labels = evaluation.column("label").to_pylist()
    matched = sum(1 for i in ids if predicted.get(i) is not None)
    if ids and not any(i in predicted for i in ids):
        raise TuningError(
            f"none of the {len(ids)} eval reviews of {dataset_dir.name} has a prediction: the batch "
            "predictions are not of this dataset version's eval split"
        )
    challenger = [predicted.get(i) for i in ids]
    metrics = scored_metrics(labels, challenger)
    compared = references(dataset_dir, texts, labels, champion)
    report = evaluation_report(model_version, dataset_dir.name, metrics, compared)
    if labels:  # intervals and paired differences, unanswered reviews counted as misses
        report["comparison"] = comparison(labels, challenger, compared)
    report["kind"] = KIND
    report["answered"] = matched
    report["predictions"] = dict(predictions_summary or {})
    if champion is None and vertex_champion is not None:
        version, answers = vertex_champion
        if ids and not any(i in answers for i in ids):
            raise TuningError(f"the champion {version}'s batch predictions are not of {dataset_dir.name}'s eval split")
        report["champion"] = {"model_version": version, **scored_metrics(labels, [answers.get(i) for i in ids])}
    if matched < len(ids):
        log.warning("%s answered %d of %d eval reviews: the rest count as misses", model_version, matched, len(ids))
    return write_evaluation(report, candidate_dir)


def predicted_labels(predictions: Sequence[Artifact]) -> dict[str, str | None]:
    """review_id -> predicted class (None when the model gave no usable answer) from
    a batch prediction step's Parquet files."""
    from reviewops.storage.io import read_table

    if not predictions:
        raise TuningError("the batch prediction step recorded no predictions output")
    predicted: dict[str, str | None] = {}
    for artifact in predictions:
        table = read_table(artifact.path, columns=["review_id", "predicted_label"])
        for review_id, label in zip(
            table.column("review_id").to_pylist(), table.column("predicted_label").to_pylist(), strict=True
        ):
            predicted[str(review_id)] = label or None
    return predicted


def evaluate_tuned_step(
    data_root: str,
    model_version: str,
    candidate: Artifact,
    eval_file: Artifact,
    predictions: LineageRecord,
    champion_predictions: LineageRecord | None,
) -> tuple[StepResult, list[Artifact]]:
    """The ``evaluate_tuned`` step: :func:`evaluate_tuned_model` against the registry's
    champion. A Keras champion predicts here; a Vertex AI champion is judged from its own
    batch predictions of the same split (``champion_predictions``, which must be of the
    champion the registry names now). Returns the result and the champion's inputs."""
    from reviewops.registry.store import ModelFileError, Registry, RegistryError

    registry = Registry(data_root)
    champion = registry.champion()
    keras_champion: tuple[str, StoragePath] | None = None
    vertex_champion: tuple[str, Mapping[str, str | None]] | None = None
    champion_inputs: list[Artifact] = []
    if champion is not None:
        try:
            model_file = registry.keras_model(champion)
        except ModelFileError:  # a Keras champion whose file is damaged, not a Vertex AI one
            raise
        except RegistryError:
            found = champion_predictions.metrics.get("registry_version") if champion_predictions else "none"
            if champion_predictions is None or found != champion:
                raise TuningError(
                    f"the champion {champion} is a Vertex AI model, but the champion's batch predictions of this "
                    f"eval split are of {found}: the champion changed during the run. Run reviews_training again"
                ) from None
            champion_inputs = champion_predictions.outputs_of(ArtifactKind.PREDICTIONS)
            for artifact in champion_inputs:
                artifact.verify()
            vertex_champion = (champion, predicted_labels(champion_inputs))
        else:
            keras_champion = (champion, model_file)
            champion_inputs = [Artifact.of_file(model_file, ArtifactKind.MODEL)]
    answers = predictions.outputs_of(ArtifactKind.PREDICTIONS)
    result = evaluate_tuned_model(
        candidate.path.parent,
        eval_file.path.parent,
        model_version,
        predicted_labels(answers),
        keras_champion,
        predictions_summary=predictions.metrics.get("response_summary") or {},
        vertex_champion=vertex_champion,
    )
    return result, champion_inputs
