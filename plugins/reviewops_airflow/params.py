"""Params shared by the reviewops DAGs: the per-run overrides of the configured defaults.

Each function returns a new ``Param`` (a DAG owns its Params; none is shared between
DAGs). The DAGs render templates as native objects, so ``{{ params.x }}`` hands an
operator the Param's own type.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from reviewops.config import (
    DEFAULT_MAX_TRIALS,
    DEFAULT_SEARCH_SPACE,
    HYPERPARAMETER_RANGES,
    MAX_AXIS_VALUES,
    MAX_TRIALS,
)
from reviewops.contracts import DATASET_VERSION_PATTERN, MODEL_VERSION_MAX_LENGTH, MODEL_VERSION_PATTERN

DATE_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"
PROMPT_TEMPLATES = "include/reviewops/gcp/prompt_templates/"
PROMPT_PATTERN = r"^([a-z][a-z0-9_]*(@v?\d+)?)?$"
MAX_PROMPTS = 20  # templates one prompt evaluation compares: each is a paid batch job
DATASET_PATTERN = f"^({DATASET_VERSION_PATTERN})?$"

# TrainParams' fields that are not numbers (the numbers' ranges: HYPERPARAMETER_RANGES).
_OTHER_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "representation": {"type": "string", "enum": ["tfidf", "embedding"]},
    "class_weighting": {"type": "boolean"},
    "sublinear_tf": {"type": "boolean"},
}

# The monitoring thresholds a run may override, with the range of each: shares in
# [0, 1]; PSI from 0 (the week must match training exactly) to 100 (drift is never a
# breach); counts of reviews up to ten million (more than any week holds).
THRESHOLD_RANGES: dict[str, tuple[str, float]] = {
    "min_volume": ("integer", 10_000_000),
    "max_prediction_psi": ("number", 100.0),
    "max_length_psi": ("number", 100.0),
    "min_accuracy": ("number", 1.0),
    "min_estimated_accuracy": ("number", 1.0),
    "max_safety_rate": ("number", 1.0),
    "min_slice_size": ("integer", 10_000_000),
    "min_drift_rows": ("integer", 10_000_000),
    "min_labelled": ("integer", 10_000_000),
    "min_answered_rate": ("number", 1.0),
}


def source_param() -> Param:
    """Where the reviews are read from; empty means REVIEWOPS_SOURCE, else the shipped reviews."""
    return Param(
        "",
        type="string",
        title="Review source",
        description="File, folder or glob of CSV/TSV/JSONL/Parquet reviews (local or gs://), or a BigQuery table "
        "bigquery://project.dataset.table. Empty: $REVIEWOPS_SOURCE or the shipped reviews.",
    )


def data_root_param() -> Param:
    """The root of every artifact; empty means REVIEWOPS_DATA_ROOT, else ./artifacts."""
    return Param(
        "",
        type="string",
        title="Data root",
        description="Root of every artifact: a folder or gs://bucket/prefix. "
        "Empty: $REVIEWOPS_DATA_ROOT or ./artifacts in the project.",
    )


def date_param(description: str, title: str) -> Param:
    """A day as ``YYYY-MM-DD``, or empty."""
    return Param("", type="string", pattern=DATE_PATTERN, title=title, description=description)


def prompt_param(use: str) -> Param:
    """The prompt template of the Vertex AI path; ``use`` says what the DAG uses it for."""
    return Param(
        "",
        type="string",
        pattern=PROMPT_PATTERN,
        title="Prompt template (Vertex AI)",
        description=f"{use}: NAME or NAME@vN under {PROMPT_TEMPLATES}. "
        "Empty: $REVIEWOPS_VERTEX_PROMPT, else the latest review_sentiment.",
    )


def model_version_param(description: str) -> Param:
    """A registered model version (``m-…``), or empty; never a path."""
    return Param(
        "",
        type="string",
        pattern=f"^({MODEL_VERSION_PATTERN})?$",
        maxLength=MODEL_VERSION_MAX_LENGTH,
        title="Model version",
        description=description,
    )


def dataset_param(description: str) -> Param:
    """A dataset version (``ds-…``), or empty; never a path."""
    return Param(
        "", type="string", pattern=DATASET_PATTERN, maxLength=64, title="Dataset version", description=description
    )


def gate_margin_param(default: float, title: str) -> Param:
    """A margin of the promotion gate: a share in [0, 1] (a negative one would promote a
    worse challenger); ``GatePolicy`` refuses the same values."""
    return Param(default, type="number", minimum=0.0, maximum=1.0, title=title)


def max_trials_param() -> Param:
    return Param(DEFAULT_MAX_TRIALS, type="integer", minimum=1, maximum=MAX_TRIALS, title="Tuning budget (trials)")


def _hyperparameter_schema(name: str) -> dict[str, Any]:
    if name in _OTHER_HYPERPARAMETERS:
        return _OTHER_HYPERPARAMETERS[name]
    low, high = HYPERPARAMETER_RANGES[name]
    kind = "integer" if isinstance(low, int) and isinstance(high, int) else "number"
    return {"type": kind, "minimum": low, "maximum": high}


def _hyperparameter_names() -> list[str]:
    return [*_OTHER_HYPERPARAMETERS, *HYPERPARAMETER_RANGES]


def search_space_param() -> Param:
    """Hyperparameter -> the values to try; ``plan_trials`` refuses the same values and
    bounds the number of combinations before any grid is built."""
    axes = {
        name: {"type": "array", "minItems": 1, "maxItems": MAX_AXIS_VALUES, "items": _hyperparameter_schema(name)}
        for name in _hyperparameter_names()
    }
    return Param(
        DEFAULT_SEARCH_SPACE,
        type="object",
        properties=axes,
        additionalProperties=False,
        title="Search space",
        description="Hyperparameter -> list of values to try (fields of reviewops.modeling.training.TrainParams, "
        f"at most {MAX_AXIS_VALUES} values each, in the ranges of reviewops.config.HYPERPARAMETER_RANGES).",
    )


def hyperparameters_param() -> Param:
    """Hyperparameters fixed for every trial and the final model."""
    return Param(
        {},
        type="object",
        properties={name: _hyperparameter_schema(name) for name in _hyperparameter_names()},
        additionalProperties=False,
        title="Fixed hyperparameters",
        description='Applied to every trial and the final model, e.g. {"epochs": 5} for a quick run.',
    )


def thresholds_param() -> Param:
    """Overrides of the monitoring thresholds, each in its range."""
    properties = {
        name: {"type": kind, "minimum": 0, "maximum": high} for name, (kind, high) in THRESHOLD_RANGES.items()
    }
    return Param(
        {},
        type="object",
        properties=properties,
        additionalProperties=False,
        title="Monitoring thresholds",
        description='Overrides of reviewops.monitoring.thresholds.Thresholds, e.g. {"max_prediction_psi": 0.3}.',
    )
