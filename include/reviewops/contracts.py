"""The names the steps agree on: kinds of models, backends and artifacts, and the file
names inside a version's folder. One home each, so a typo is an AttributeError, not a
silent mismatch; the enums are ``StrEnum`` and serialise as the plain strings they were."""

from __future__ import annotations

from enum import StrEnum


class ModelKind(StrEnum):
    """What a registered model version holds."""

    KERAS = "keras"  # a Keras model trained on the workers (model.keras)
    VERTEX = "vertex"  # a Gemini model tuned on Vertex AI (vertex_model.json: its resource names)


class Backend(StrEnum):
    """Where a step's model work runs."""

    LOCAL = "local"  # TensorFlow on the Airflow workers
    VERTEX = "vertex"  # a Gemini model on Vertex AI (needs a gs:// data root)


class ArtifactKind(StrEnum):
    """The kind of an artifact in a lineage record."""

    SOURCE = "source"
    REJECTED_SOURCE = "rejected_source"  # a source file rejected whole (unreadable, unknown type)
    REJECTED_FILE = "rejected_file"  # its copy set aside under quarantine/
    LANDING = "landing"
    RAW = "raw"
    VALIDATED = "validated"
    QUARANTINE = "quarantine"
    CURATED = "curated"
    DATASET = "dataset"
    TRIAL = "trial"
    MODEL_CANDIDATE = "model_candidate"
    EVALUATION = "evaluation"
    DECISION = "decision"
    MODEL = "model"
    PREDICTIONS = "predictions"
    VERTEX_REQUESTS = "vertex_requests"
    VERTEX_OUTPUT = "vertex_output"
    TUNING_DATA = "tuning_data"
    REPORT = "report"
    PROMPT_EVALUATION = "prompt_evaluation"


# Files of a model version (models/<version>/) and of a training candidate.
MODEL_FILE = "model.keras"
VERTEX_MODEL_FILE = "vertex_model.json"
METADATA_FILE = "metadata.json"
MODEL_CARD_FILE = "model_card.md"
REFERENCE_FILE = "reference.json"
VOCABULARY_FILE = "vocabulary.txt"
TRAINING_FILE = "training.json"  # how a candidate was trained (parameters, seconds, classes)
EVALUATION_FILE = "evaluation.json"
DECISION_FILE = "decision.json"
# A dataset version's manifest (datasets/<version>/).
MANIFEST_FILE = "manifest.json"
# A monitored week (monitoring/week=…/).
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
