"""Defaults in one frozen dataclass; the environment and per-run Params override them."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reviewops.contracts import Backend

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_REVIEWS = PACKAGE_DIR / "data" / "reviews.tsv"


def _project_root() -> Path:
    # include/reviewops/config.py -> project root (two levels above the package).
    return PACKAGE_DIR.parent.parent


ENV_SOURCE = "REVIEWOPS_SOURCE"
ENV_DATA_ROOT = "REVIEWOPS_DATA_ROOT"
ENV_SCORING_BACKEND = "REVIEWOPS_SCORING_BACKEND"
ENV_TRAINING_BACKEND = "REVIEWOPS_TRAINING_BACKEND"

LOCAL = Backend.LOCAL  # TensorFlow on the Airflow workers
VERTEX = Backend.VERTEX  # a Gemini model on Vertex AI (needs a gs:// data root)
BACKENDS: tuple[str, ...] = tuple(Backend)

# Airflow pool of the Vertex AI tuning task: it holds a worker slot while it polls.
VERTEX_TUNING_POOL = "vertex_tuning"


@dataclass(frozen=True)
class Settings:
    """Where data comes from, where artifacts go, and the validation limits."""

    source: str = str(SHIPPED_REVIEWS)
    data_root: str = str(_project_root() / "artifacts")
    max_text_chars: int = 10_000
    scoring_backend: str = LOCAL
    training_backend: str = LOCAL

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then ``REVIEWOPS_*`` environment variables, then non-empty overrides.

        Called at run time only (never while a DAG file is parsed).
        """
        values: dict[str, Any] = {}
        if os.environ.get(ENV_SOURCE):
            values["source"] = os.environ[ENV_SOURCE]
        if os.environ.get(ENV_DATA_ROOT):
            values["data_root"] = os.environ[ENV_DATA_ROOT]
        for name, env in (("scoring_backend", ENV_SCORING_BACKEND), ("training_backend", ENV_TRAINING_BACKEND)):
            if os.environ.get(env):
                values[name] = os.environ[env].strip().lower()
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        settings = dataclasses.replace(cls(), **values)
        for name in ("scoring_backend", "training_backend"):
            if getattr(settings, name) not in BACKENDS:
                raise ValueError(f"{name} {getattr(settings, name)!r} is not one of {', '.join(BACKENDS)}")
        return settings


@dataclass(frozen=True)
class VertexSettings:
    """Where and with what the Vertex AI backends run. Credentials and the default
    project come from the Airflow Connection ``gcp_conn_id``; the environment
    (``REVIEWOPS_VERTEX_*``, read at run time) and per-run Params override these."""

    project: str = ""  # empty: the Connection's project
    location: str = "us-central1"
    model: str = "publishers/google/models/gemini-2.5-flash"  # batch prediction with no tuned champion
    tuning_source_model: str = "gemini-2.5-flash"
    prompt: str = "review_sentiment"  # NAME or NAME@vN under include/reviewops/gcp/prompt_templates/
    gcp_conn_id: str = "google_cloud_default"
    tuning_epochs: int = 3

    @classmethod
    def from_env(cls, **overrides: Any) -> VertexSettings:
        values: dict[str, Any] = {}
        for name in ("project", "location", "model", "tuning_source_model", "prompt", "gcp_conn_id"):
            env = f"REVIEWOPS_VERTEX_{name.upper()}"
            if os.environ.get(env):
                values[name] = os.environ[env].strip()
        if os.environ.get("REVIEWOPS_VERTEX_TUNING_EPOCHS"):
            values["tuning_epochs"] = int(os.environ["REVIEWOPS_VERTEX_TUNING_EPOCHS"])
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        return dataclasses.replace(cls(), **values)


# Hyperparameter search defaults (the training DAG's Params start from these). Each value
# list is one axis of the grid; the default budget finishes in a few minutes on two cores.
DEFAULT_SEARCH_SPACE: dict[str, list[Any]] = {
    "representation": ["tfidf", "embedding"],
    "ngrams": [1],
    "hidden_units": [0, 64],
    "class_weighting": [False, True],
    "dropout": [0.2],
    "learning_rate": [0.005],
    "epochs": [20],
}
DEFAULT_MAX_TRIALS = 8
