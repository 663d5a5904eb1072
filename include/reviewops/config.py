"""Defaults in one frozen dataclass; the environment and per-run Params override them."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_REVIEWS = PACKAGE_DIR / "data" / "reviews.tsv"


def _project_root() -> Path:
    # include/reviewops/config.py -> project root (two levels above the package).
    return PACKAGE_DIR.parent.parent


ENV_SOURCE = "REVIEWOPS_SOURCE"
ENV_DATA_ROOT = "REVIEWOPS_DATA_ROOT"


@dataclass(frozen=True)
class Settings:
    """Where data comes from, where artifacts go, and the validation limits."""

    source: str = str(SHIPPED_REVIEWS)
    data_root: str = str(_project_root() / "artifacts")
    max_text_chars: int = 10_000

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
