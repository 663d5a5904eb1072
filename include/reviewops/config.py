"""Defaults in one frozen dataclass; the environment and per-run Params override them.

The trust boundary: what a DAG trigger may set is checked against what the deployment
allows before anything is read or written (:meth:`Settings.for_run`); the ``reviewops``
command, run by a person on their own machine, reads and writes what it is given
(:meth:`Settings.from_env`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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
ENV_ALLOWED_ROOTS = "REVIEWOPS_ALLOWED_ROOTS"

LOCAL = Backend.LOCAL  # TensorFlow on the Airflow workers
VERTEX = Backend.VERTEX  # a Gemini model on Vertex AI (needs a gs:// data root)
BACKENDS: tuple[str, ...] = tuple(Backend)

# Reviews dated before this are quarantined as too_old_date (and no week before it is
# written): online product reviews began in 1995 (Amazon's customer reviews), so an
# earlier date is a typo or an export's placeholder (1900-01-01, 1970-01-01).
EARLIEST_REVIEW_DATE = dt.date(1995, 1, 1)

# Airflow pool of the Vertex AI tuning task: it holds a worker slot while it polls.
VERTEX_TUNING_POOL = "vertex_tuning"


@dataclass(frozen=True)
class Settings:
    """Where data comes from, where artifacts go, and the validation limits."""

    source: str = str(SHIPPED_REVIEWS)
    data_root: str = str(_project_root() / "artifacts")
    max_text_chars: int = 10_000
    earliest_review_date: dt.date = EARLIEST_REVIEW_DATE
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

    @classmethod
    def for_run(cls, *, source: str = "", data_root: str = "", **overrides: Any) -> Settings:
        """:meth:`from_env` with a DAG run's overrides, once the run's ``source`` and
        ``data_root`` are found inside :func:`allowed_roots`; a :class:`LocationNotAllowed`
        naming the location and the allowed roots otherwise (an empty value means the
        configured one, which the deployment chose)."""
        allowed = allowed_roots(cls.from_env())
        for name, location in (("source", source), ("data_root", data_root)):
            if location:
                check_allowed(name, location, allowed)
        return cls.from_env(source=source, data_root=data_root, **overrides)


class LocationNotAllowed(ValueError):
    """A run's source or data root outside the roots the deployment allows."""


def allowed_roots(configured: Settings) -> tuple[str, ...]:
    """The prefixes a run's source and data root must resolve inside: the configured data
    root and source (the environment's, else the defaults), and ``REVIEWOPS_ALLOWED_ROOTS``
    (colon-separated local paths, ``gs://`` and ``bigquery://`` prefixes), else the
    shipped reviews."""
    extra = split_roots(os.environ.get(ENV_ALLOWED_ROOTS, "")) or [str(SHIPPED_REVIEWS)]
    return tuple(dict.fromkeys([configured.data_root, configured.source, *extra]))


def split_roots(text: str) -> list[str]:
    """``a:gs://b/c:bigquery://p.d`` -> its entries (a colon before ``//`` is a scheme's)."""
    return [entry.strip() for entry in re.split(r":(?!//)", text) if entry.strip()]


_GLOB = re.compile(r"[*?\[]")


def check_allowed(name: str, location: str, allowed: Sequence[str]) -> None:
    """Refuse ``location`` unless it resolves inside one of ``allowed``: local paths with
    ``..`` and symbolic links resolved (a glob by the folder its pattern starts in, with
    no ``..`` after it), ``gs://`` paths with ``..`` collapsed, by whole path segments;
    ``bigquery://`` tables by project, dataset or table."""
    where = _resolved(location)
    if where is None:
        raise LocationNotAllowed(
            f"{name} {location!r} is not a location a run may set: a glob may not contain '..' after its "
            f"first wildcard, and only local paths, gs:// and bigquery:// are allowed"
        )
    roots = [root for root in (_resolved(r) for r in allowed) if root is not None]
    if any(_inside(where, root) for root in roots):
        return
    shown = where[1] if where[0] == "file" else f"{where[0]}://{where[1].lstrip('/')}"
    raise LocationNotAllowed(
        f"{name} {location!r} (resolved: {shown}) is outside the roots this deployment allows a run to use "
        f"({':'.join(allowed)}): use a location under one of them, or add its prefix to {ENV_ALLOWED_ROOTS}"
    )


def _resolved(location: str) -> tuple[str, str] | None:
    """(scheme, normalised location) to compare by prefix; None for what is never allowed."""
    scheme, sep, rest = location.partition("://")
    if sep and scheme == "bigquery":
        table = rest.strip().strip(".")
        return ("bigquery", table) if ".." not in table and "/" not in table else None
    if sep and scheme in ("gs", "gcs"):
        base = _glob_base(rest)
        return None if base is None else ("gs", posixpath.normpath("/" + base))
    if sep and scheme != "file":
        return None
    base = _glob_base(unquote(rest) if sep else location)
    return None if base is None else ("file", os.path.realpath(base or "."))


def _glob_base(path: str) -> str | None:
    """The path before its first wildcard segment; None when a later segment is ``..``."""
    parts = path.split("/")
    for index, part in enumerate(parts):
        if _GLOB.search(part):
            return None if ".." in parts[index:] else "/".join(parts[:index]) or ("/" if path.startswith("/") else "")
    return path


def _inside(where: tuple[str, str], root: tuple[str, str]) -> bool:
    (scheme, path), (root_scheme, prefix) = where, root
    if scheme != root_scheme:
        return False
    separator = "." if scheme == "bigquery" else "/"
    if path == prefix or not prefix.strip(separator):  # bigquery:// or gs:// alone: the whole scheme
        return True
    return path.startswith(prefix.rstrip(separator) + separator)


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
# Every combination is a linear softmax over TF-IDF (terms in at least 2 reviews,
# sublinear tf, L2 1e-3: scikit-learn's C=1 at ~480 reviews), the family that beat every
# deeper model tried on the shipped reviews; the axes are what moved its 5-fold
# cross-validated scores there: word unigrams or 1-2-grams, character 2-5-grams beside
# them or not (+0.02 to +0.06 macro-F1), and class weighting or not (the decision rule's
# offsets make up for it). The standard baseline's configuration is one of the eight.
DEFAULT_SEARCH_SPACE: dict[str, list[Any]] = {
    "representation": ["tfidf"],
    "ngrams": [1, 2],
    "char_ngrams": [0, 5],
    "min_df": [2],
    "hidden_units": [0],
    "class_weighting": [False, True],
    "l2": [0.001],
    "epochs": [10],
}
DEFAULT_MAX_TRIALS = 8

# The bounds of a search a run may ask for, checked by plan_trials before any grid is
# built (and by the training DAG's Params): a trial is a model trained for minutes, so 64
# is a long night on two cores; an axis of more than 100 values is a typo or a script.
MAX_TRIALS = 64
MAX_AXIS_VALUES = 100
MAX_SEARCH_SPACE = 100_000  # combinations; only their indexes are shuffled, never the grid
# Cross-validation folds of each trial: 5 is the usual bias/variance compromise; each fold
# is a model trained, so the budget is folds x trials fits.
DEFAULT_FOLDS = 5
MIN_FOLDS, MAX_FOLDS = 2, 10

# The range of each numeric hyperparameter a run may set (TrainParams' fields): wide
# around what trains in minutes here, narrow enough that no value exhausts a worker
# (a billion epochs, a billion hidden units).
HYPERPARAMETER_RANGES: dict[str, tuple[int, int] | tuple[float, float]] = {
    "max_tokens": (100, 200_000),
    "ngrams": (1, 3),
    "char_ngrams": (0, 6),
    "min_df": (1, 1000),
    "hidden_units": (0, 1024),
    "dropout": (0.0, 0.9),
    "learning_rate": (1e-5, 1.0),
    "epochs": (1, 200),
    "batch_size": (1, 4096),
    "l2": (0.0, 1.0),
    "embedding_dim": (2, 1024),
    "sequence_length": (8, 4096),
    "seed": (0, 2**31 - 1),
}
