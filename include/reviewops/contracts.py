"""The names the steps agree on: kinds of models, backends and artifacts, and the file
names inside a version's folder. One home each, so a typo is an AttributeError, not a
silent mismatch; the enums are ``StrEnum`` and serialise as the plain strings they were."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NotRequired, TypedDict


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


# A model version id: what registry.store.model_version_id makes (m- and 12 hex digits)
# and hand-made names of the same shape; never a path separator or a dot.
MODEL_VERSION_PATTERN = r"m-[a-z0-9]+(?:-[a-z0-9]+)*"
# A dataset version id (``ds-`` and a content hash; tests use hand-made ones alike).
DATASET_VERSION_PATTERN = r"ds-[a-z0-9]+(?:-[a-z0-9]+)*"
MODEL_VERSION_MAX_LENGTH = 64

# A Gemini answer that names a class (reviewops.gcp.gemini's statuses; monitoring counts it).
ANSWERED = "ok"

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
# Beside the weeks (monitoring/): the pre-label accuracy estimate against the realised
# accuracy over every monitored week with ratings.
ESTIMATION_FILE = "estimation.json"


# --- the JSON documents steps hand each other -----------------------------------------
# Shapes of what one step writes and another reads (evaluation.json, a model version's
# metadata.json, a week's metrics.json), so a reader's key is checked against the writer's.


class ClassScores(TypedDict):
    precision: float
    recall: float
    f1: float
    support: int


class Scores(TypedDict):
    """:func:`reviewops.modeling.evaluation.classification_metrics` of one model on one split."""

    rows: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]
    classes: list[str]
    predicts: NotRequired[str]  # the majority baseline: the class it always predicts
    model: NotRequired[str]  # a baseline: its exact configuration
    settings: NotRequired[dict[str, Any]]  # a baseline: its settings, as the library names them
    unanswered: NotRequired[dict[str, int]]  # a Vertex AI model: reviews it left unanswered, by true class


class ChampionScores(Scores):
    model_version: str


class EvaluationReport(Scores):
    """``evaluation.json``: the challenger's scores on the eval split beside the baselines'
    and the champion's on the same rows; the gate decides from it."""

    model_version: str
    dataset_version: str
    split: str
    baselines: dict[str, Scores]
    champion: ChampionScores | None
    kind: NotRequired[str]  # ModelKind.VERTEX for a tuned Gemini model (else Keras)
    answered: NotRequired[int]  # a Vertex AI model: eval reviews it answered
    predictions: NotRequired[dict[str, Any]]  # a Vertex AI model: its response summary
    # Bootstrap intervals on the eval rows and paired differences, challenger minus each
    # reference (reviewops.modeling.bootstrap.bootstrap_comparison); the gate reads them.
    comparison: NotRequired[dict[str, Any]]
    # The decision rule and temperature cross-validation chose, and the expected
    # calibration error on the eval rows before and after the temperature.
    calibration: NotRequired[dict[str, Any]]
    # The chosen trial against the standard baseline on the train split's folds.
    cross_validation: NotRequired[dict[str, Any]]


class GateRecord(TypedDict):
    """``decision.json``: :class:`reviewops.modeling.promotion.GateDecision` as written."""

    promote: bool
    verdict: str
    reasons: list[str]
    challenger: str
    champion: str | None
    policy: dict[str, float]


class ModelMetadata(TypedDict):
    """A registered version's ``metadata.json``."""

    version: str
    kind: str
    dataset_version: str
    params: dict[str, Any]
    warm_start_from: str | None
    code_version: str
    registered_at: str
    train_seconds: float
    size_bytes: int
    classes: list[str]
    metrics: dict[str, Any]
    baselines: dict[str, Scores]
    champion_at_evaluation: ChampionScores | None
    gate: GateRecord
    vertex: NotRequired[dict[str, Any]]  # a tuned Gemini model: its resource names and tuning
    sha256: NotRequired[dict[str, str]]  # file name -> sha256 at registration (absent before they were recorded)
    # evaluation.json's comparison, calibration and cross_validation (absent for a model
    # evaluated without them: a Vertex AI model, or one registered before they existed)
    uncertainty: NotRequired[dict[str, Any]]


class VertexSignals(TypedDict, total=False):
    """A Gemini model's own safety signals in a week it scored on Vertex AI
    (:func:`reviewops.monitoring.metrics.model_safety_metrics`); empty for local scoring."""

    model_safety_flagged: int
    model_safety_rate: float | None
    model_safety_by_category: dict[str, int]
    model_blocked: int
    model_blocked_rate: float | None
    citations_reviews: int
    citations_total: int
    citation_rate: float | None
    response_status: dict[str, int]
    answered_rate: float | None


class WeekMetrics(VertexSignals):
    """A monitored week's ``metrics.json`` (:func:`reviewops.monitoring.metrics.week_metrics`,
    completed by the monitoring step). A metric the week cannot define is None. The
    answered rate is always there (every review answered by a local model)."""

    review_count: int
    answered_count: int
    throughput_rows_per_second: float | None
    batch_latency_seconds: dict[str, Any]
    predicted_class_counts: dict[str, int]
    predicted_class_distribution: dict[str, float] | None
    mean_confidence: float | None
    length_distribution: dict[str, Any]
    mean_length: float | None
    reference: dict[str, Any]
    drift: dict[str, float | None]
    labelled_count: int
    accuracy: float | None
    macro_f1: float | None
    # Confidence-based performance estimation: the accuracy expected from the calibrated
    # probabilities before any rating arrives, its 95 % interval, and estimate minus the
    # realised accuracy once ratings have arrived.
    estimated_accuracy: float | None
    estimated_accuracy_interval: list[float] | None
    estimation_error: float | None
    slices: dict[str, list[dict[str, Any]]]
    worst_slice_gap: dict[str, Any] | None
    unknown_word_share: float | None
    safety: dict[str, Any]
    thresholds: dict[str, Any]
    # Written by the monitoring step.
    week: NotRequired[str]
    model_version: NotRequired[str]
    reference_model_version: NotRequired[str]
    breaches: NotRequired[list[dict[str, Any]]]
