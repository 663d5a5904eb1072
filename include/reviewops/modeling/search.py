"""Hyperparameter search: a search space expanded into trials, each trained on the
train split minus a deterministic validation carve and scored on that carve."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from reviewops.config import (
    DEFAULT_MAX_TRIALS,
    DEFAULT_SEARCH_SPACE,
    HYPERPARAMETER_RANGES,
    MAX_AXIS_VALUES,
    MAX_SEARCH_SPACE,
    MAX_TRIALS,
)
from reviewops.contracts import MODEL_FILE, ArtifactKind
from reviewops.lineage.record import Artifact, StepResult
from reviewops.modeling.training import FitPlan, TrainParams, load_model, predict_labels, read_tfrecord, train_model
from reviewops.storage.io import local_copy, write_json
from reviewops.storage.paths import Layout, as_path

log = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.2
SELECTION_METRIC = "macro_f1"

_SHORT = {
    "representation": "",
    "ngrams": "ng",
    "hidden_units": "h",
    "dropout": "do",
    "class_weighting": "cw",
    "learning_rate": "lr",
    "epochs": "ep",
    "max_tokens": "tok",
    "embedding_dim": "emb",
}


class SearchSpaceError(ValueError):
    """A search space that names unknown hyperparameters, has empty or oversized axes or
    out-of-range values, or a budget outside its bounds."""


def plan_trials(search_space: dict[str, list[Any]], max_trials: int, seed: int = 42) -> list[dict[str, Any]]:
    """The trials to run: the grid's combinations in a seeded random order, at most
    ``max_trials``, each ``{"label": ..., "params": {...}}``.

    The space is checked first (known hyperparameters, at most ``MAX_AXIS_VALUES`` values
    an axis, each in ``HYPERPARAMETER_RANGES``, at most ``MAX_SEARCH_SPACE``
    combinations); only the combinations' indexes are shuffled, and only the chosen ones
    are built, so no grid is ever held in memory."""
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or not 1 <= max_trials <= MAX_TRIALS:
        raise SearchSpaceError(f"max_trials must be a whole number from 1 to {MAX_TRIALS}, got {max_trials!r}")
    names = sorted(search_space)
    axes = [_checked_axis(name, search_space[name]) for name in names]
    size = math.prod(len(values) for values in axes)
    if size > MAX_SEARCH_SPACE:
        shape = " x ".join(f"{len(values)} {name}" for name, values in zip(names, axes, strict=True))
        raise SearchSpaceError(
            f"the search space has {size:,} combinations ({shape}), more than the {MAX_SEARCH_SPACE:,} a search "
            "may draw from: fix some hyperparameters (Param hyperparameters) or give fewer values"
        )
    # Shuffling the indexes orders the combinations exactly as shuffling the grid would.
    order = list(range(size))
    random.Random(seed).shuffle(order)
    trials = []
    for index in order[:max_trials]:
        params = _combination(names, axes, index)
        TrainParams(**params)  # fails early on a bad value
        trials.append({"label": trial_label(params), "params": params})
    return trials


def check_hyperparameter(name: str, value: Any) -> None:
    """A :class:`SearchSpaceError` when ``value`` is outside ``HYPERPARAMETER_RANGES``."""
    if name not in HYPERPARAMETER_RANGES:
        return
    low, high = HYPERPARAMETER_RANGES[name]
    whole = isinstance(low, int) and isinstance(high, int)
    number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not number or (whole and value != int(value)) or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise SearchSpaceError(f"hyperparameter {name} must be {kind} from {low} to {high}, got {value!r}")


def _checked_axis(name: str, values: Any) -> list[Any]:
    known = {f.name for f in fields(TrainParams)}
    if name not in known:
        raise SearchSpaceError(f"unknown hyperparameter(s) {name}; known: {', '.join(sorted(known))}")
    if not isinstance(values, list):
        raise SearchSpaceError(f"axis {name} of the search space must be a list of values, got {values!r}")
    if not values:
        raise SearchSpaceError(f"empty axis {name} in the search space")
    if len(values) > MAX_AXIS_VALUES:
        raise SearchSpaceError(f"axis {name} has {len(values):,} values, more than the {MAX_AXIS_VALUES} allowed")
    for value in values:
        check_hyperparameter(name, value)
    return values


def _combination(names: list[str], axes: list[list[Any]], index: int) -> dict[str, Any]:
    """The ``index``-th combination in ``itertools.product`` order (the last axis fastest)."""
    params: dict[str, Any] = {}
    for name, values in zip(reversed(names), reversed(axes), strict=True):
        index, position = divmod(index, len(values))
        params[name] = values[position]
    return {name: params[name] for name in names}


def trial_label(params: dict[str, Any]) -> str:
    """A short readable name for the UI: ``tfidf ng2 h64 do0.2 cw``."""
    parts = []
    for name in sorted(params, key=lambda n: (n != "representation", n)):
        value = params[name]
        short = _SHORT.get(name, name)
        if isinstance(value, bool):
            if value:
                parts.append(short)
        elif name == "representation":
            parts.append(str(value))
        else:
            parts.append(f"{short}{value}")
    return " ".join(parts)


@dataclass(frozen=True)
class TrialParams:
    data_root: str
    dataset_dir: str
    trial: dict[str, Any]
    validation_fraction: float = VALIDATION_FRACTION


def run_trial(params: TrialParams) -> StepResult:
    """Train one trial on the fit part of the train split and score it on the
    validation carve; the report is written under ``models/trials/<dataset>/``."""
    import tempfile

    from reviewops.data.schema import CLASSES
    from reviewops.modeling.evaluation import classification_metrics

    dataset_dir = as_path(params.dataset_dir)
    train = TrainParams(**params.trial["params"])
    with (
        local_copy(dataset_dir / "train.tfrecord") as train_file,
        tempfile.TemporaryDirectory(prefix="reviewops-trial-") as tmp,
    ):
        summary = train_model(train, train_file, Path(tmp), FitPlan(validation_fraction=params.validation_fraction))
        model = load_model(Path(tmp) / MODEL_FILE)
        pairs = list(read_tfrecord(train_file, "validation", params.validation_fraction).as_numpy_iterator())
        texts = [t.decode() for t, _ in pairs]
        truth = [CLASSES[int(y)] for _, y in pairs]
        metrics = classification_metrics(truth, predict_labels(model, texts), CLASSES)
    trial_id = hashlib.sha256(json.dumps(params.trial["params"], sort_keys=True).encode()).hexdigest()[:12]
    report = {
        "label": params.trial["label"],
        "params": train.as_dict(),
        "dataset_version": dataset_dir.name,
        "validation_fraction": params.validation_fraction,
        "fit_rows": summary["train_rows"],
        "validation": metrics,
        "train_seconds": summary["train_seconds"],
    }
    path = write_json(report, Layout(params.data_root).trials(dataset_dir.name) / f"{trial_id}.json")
    log.info(
        "trial %s: validation accuracy %.4f macro-F1 %.4f",
        params.trial["label"],
        metrics["accuracy"],
        metrics["macro_f1"],
    )
    return StepResult(
        subject=params.trial["label"],
        outputs=(Artifact.of_file(path, ArtifactKind.TRIAL),),
        metrics={
            "label": params.trial["label"],
            "params": train.as_dict(),
            "validation_accuracy": metrics["accuracy"],
            "validation_macro_f1": metrics["macro_f1"],
            "validation_rows": metrics["rows"],
            "fit_rows": summary["train_rows"],
        },
    )


def rank_trials(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials best first: by validation macro-F1, then accuracy, then label (so a
    tie always resolves the same way)."""
    return sorted(trials, key=lambda t: (t["validation_macro_f1"], t["validation_accuracy"], t["label"]), reverse=True)


def select_best(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The first trial of :func:`rank_trials`."""
    if not trials:
        raise SearchSpaceError("no trial finished: nothing to choose from")
    return rank_trials(trials)[0]


__all__ = ["DEFAULT_MAX_TRIALS", "DEFAULT_SEARCH_SPACE", "plan_trials", "rank_trials", "run_trial", "select_best"]
