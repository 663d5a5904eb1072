"""Hyperparameter search: a search space expanded into trials, each cross-validated on
the train split (:mod:`reviewops.modeling.crossval`); the best out-of-fold macro-F1 wins
and is compared with the standard baseline on the same folds."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, fields
from typing import Any

from reviewops.config import (
    DEFAULT_MAX_TRIALS,
    DEFAULT_SEARCH_SPACE,
    HYPERPARAMETER_RANGES,
    MAX_AXIS_VALUES,
    MAX_SEARCH_SPACE,
    MAX_TRIALS,
)
from reviewops.contracts import ArtifactKind
from reviewops.lineage.record import Artifact, StepResult
from reviewops.modeling.crossval import DEFAULT_FOLDS
from reviewops.modeling.training import TrainParams
from reviewops.storage.io import write_json
from reviewops.storage.paths import Layout, StoragePath, as_path

log = logging.getLogger(__name__)

SELECTION_METRIC = "balanced"  # mean of accuracy and macro-F1, out of fold (calibration.balanced_score)

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
    "min_df": "df",
    "char_ngrams": "ch",
    "sublinear_tf": "sub",
    "l2": "l2=",
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
    folds: int = DEFAULT_FOLDS


def trial_id(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def run_trial(params: TrialParams) -> StepResult:
    """Cross-validate one trial on the train split (``folds`` stratified folds): each
    review predicted by the model trained on the other folds; the decision rule and the
    temperature chosen on those out-of-fold predictions. The report, with the
    out-of-fold predictions, is written under ``models/trials/<dataset>/``."""
    from reviewops.modeling.crossval import TrainRows, cross_validate

    dataset_dir = as_path(params.dataset_dir)
    train = TrainParams(**params.trial["params"])
    started = time.monotonic()
    cv = cross_validate(train, TrainRows.read(dataset_dir / "train.parquet"), params.folds)
    seconds = round(time.monotonic() - started, 1)
    report = {
        "label": params.trial["label"],
        "params": train.as_dict(),
        "dataset_version": dataset_dir.name,
        "cross_validation": cv,
        "train_seconds": seconds,
    }
    path = write_json(
        report, Layout(params.data_root).trials(dataset_dir.name) / f"{trial_id(params.trial['params'])}.json"
    )
    ruled = cv["decision_rule"]
    log.info(
        "trial %s: %d-fold out-of-fold accuracy %.4f macro-F1 %.4f (arg-max %.4f; folds %.4f +- %.4f), "
        "offsets %s, temperature %s, in %.1f s",
        params.trial["label"],
        params.folds,
        ruled["accuracy"],
        ruled["macro_f1"],
        cv["argmax"]["macro_f1"],
        cv["fold_macro_f1_mean"],
        cv["fold_macro_f1_std"],
        cv["calibration"]["offsets"],
        cv["calibration"]["temperature"],
        seconds,
    )
    return StepResult(
        subject=params.trial["label"],
        outputs=(Artifact.of_file(path, ArtifactKind.TRIAL),),
        metrics={
            "label": params.trial["label"],
            "params": train.as_dict(),
            "folds": params.folds,
            "rows": cv["rows"],
            "cv_accuracy": ruled["accuracy"],
            "cv_macro_f1": ruled["macro_f1"],
            "cv_balanced": round((ruled["accuracy"] + ruled["macro_f1"]) / 2, 4),
            "cv_argmax_macro_f1": cv["argmax"]["macro_f1"],
            "fold_macro_f1_mean": cv["fold_macro_f1_mean"],
            "fold_macro_f1_std": cv["fold_macro_f1_std"],
            "calibration": cv["calibration"],
            "train_seconds": seconds,
        },
    )


def rank_trials(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials best first: by the out-of-fold mean of accuracy and macro-F1 (with the
    trial's decision rule), then macro-F1, then label (so a tie always resolves the same
    way)."""
    return sorted(trials, key=lambda t: (t["cv_balanced"], t["cv_macro_f1"], t["label"]), reverse=True)


def select_best(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The first trial of :func:`rank_trials`."""
    if not trials:
        raise SearchSpaceError("no trial finished: nothing to choose from")
    return rank_trials(trials)[0]


def selection_report(
    data_root: str, dataset_dir: StoragePath, trials: list[dict[str, Any]], report: StoragePath
) -> StepResult:
    """Choose the best trial and compare it, on the same folds and rows, with the standard
    baseline cross-validated on the train split (intervals and paired differences); the
    comparison goes to ``models/trials/<dataset>/selection.json`` and into the record,
    from where the final training writes it into ``training.json``.

    ``report`` is the best trial's report file (its out-of-fold predictions)."""
    from reviewops.modeling.crossval import TrainRows, compare_with_baseline
    from reviewops.storage.io import read_json

    best = select_best(trials)
    trial_report = read_json(report)
    if trial_report["label"] != best["label"]:
        raise SearchSpaceError(f"report {report} is of trial {trial_report['label']!r}, not of {best['label']!r}")
    compared = compare_with_baseline(TrainRows.read(dataset_dir / "train.parquet"), trial_report)
    ranking = rank_trials(trials)
    path = write_json(
        {"best": best, "ranking": [t["label"] for t in ranking], "cross_validation": compared},
        Layout(data_root).trials(as_path(dataset_dir).name) / "selection.json",
    )
    scores, differences = compared["scores"], compared["differences"]["tfidf_logreg"]
    log.info(
        "cross-validated on %d rows: chosen %s macro-F1 %.4f %s, standard baseline %.4f %s; difference %+.4f %s",
        compared["rows"],
        best["label"],
        scores["chosen"]["macro_f1"],
        compared["intervals"]["chosen"]["macro_f1"],
        scores["tfidf_logreg"]["macro_f1"],
        compared["intervals"]["tfidf_logreg"]["macro_f1"],
        differences["macro_f1"]["estimate"],
        differences["macro_f1"]["interval"],
    )
    return StepResult(
        subject=best["label"],
        outputs=(Artifact.of_file(path, ArtifactKind.TRIAL),),
        metrics={
            "best": best,
            "trials": len(trials),
            "ranking": [t["label"] for t in ranking],
            "cross_validation": compared,
        },
    )


__all__ = ["DEFAULT_MAX_TRIALS", "DEFAULT_SEARCH_SPACE", "plan_trials", "rank_trials", "run_trial", "select_best"]
