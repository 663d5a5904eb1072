"""Stratified k-fold cross-validation on a dataset version's train split.

Every review of the train split is predicted once, by a model that never saw it (its
out-of-fold prediction); a trial is judged on all ~480 of them rather than on a 20 %
carve of ~100. The same out-of-fold predictions choose the decision rule and fit the
temperature (:mod:`reviewops.modeling.calibration`), and the standard baseline is
cross-validated on the very same folds, so the two are compared row for row.

Folds are assigned by a hash of ``review_id`` within each class, so a review stays in
its fold for every trial and every run on the same rows.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from reviewops.config import DEFAULT_FOLDS, MAX_FOLDS, MIN_FOLDS
from reviewops.data.schema import CLASSES
from reviewops.modeling.bootstrap import bootstrap_comparison
from reviewops.modeling.calibration import fit_calibration, log_probabilities, macro_f1
from reviewops.modeling.evaluation import STANDARD_BASELINE, classification_metrics, standard_baseline_predictions

if TYPE_CHECKING:
    from reviewops.modeling.training import TrainParams
    from reviewops.storage.paths import StoragePath

log = logging.getLogger(__name__)


class CrossValidationError(ValueError):
    """Folds that cannot be made from the rows given; the message says what to change."""


@dataclass(frozen=True)
class TrainRows:
    """A train split's rows, labels as ids in ``CLASSES`` order."""

    review_ids: list[str]
    texts: list[str]
    labels: list[int]

    @classmethod
    def read(cls, train_parquet: StoragePath) -> TrainRows:
        from reviewops.storage.io import read_table

        table = read_table(train_parquet, columns=["review_id", "text", "label"])
        index = {name: i for i, name in enumerate(CLASSES)}
        return cls(
            [str(v) for v in table.column("review_id").to_pylist()],
            [str(v) for v in table.column("text").to_pylist()],
            [index[v] for v in table.column("label").to_pylist()],
        )


def stratified_folds(review_ids: Sequence[str], labels: Sequence[int], k: int) -> Any:
    """The fold (0 .. k-1) of each row: within each class the rows in the order of
    ``sha256(review_id)``, dealt round the folds, continuing from where the previous class
    stopped so the folds differ in size by at most one row."""
    if isinstance(k, bool) or not isinstance(k, int) or not MIN_FOLDS <= k <= MAX_FOLDS:
        raise CrossValidationError(f"folds must be a whole number from {MIN_FOLDS} to {MAX_FOLDS}, got {k!r}")
    if len(review_ids) < k:
        raise CrossValidationError(f"{len(review_ids)} train rows cannot make {k} folds: lower folds")
    folds = np.empty(len(review_ids), dtype=np.int64)
    dealt = 0
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        members.sort(key=lambda i: hashlib.sha256(review_ids[i].encode()).hexdigest())
        for position, row in enumerate(members):
            folds[row] = (dealt + position) % k
        dealt += len(members)
    return folds


def out_of_fold(params: TrainParams, rows: TrainRows, folds: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Each row's log-probabilities from the model trained on the other folds, and each
    fold's scores (arg-max, no decision rule)."""
    from reviewops.modeling.training import fit_texts, predict_proba

    labels = np.asarray(rows.labels, dtype=np.int64)
    scores = np.zeros((len(labels), len(CLASSES)), dtype=np.float64)
    per_fold = []
    for fold in range(int(folds.max()) + 1):
        held = np.flatnonzero(folds == fold)
        kept = np.flatnonzero(folds != fold)
        model, _ = fit_texts(params, [rows.texts[i] for i in kept], labels[kept].tolist())
        scores[held] = log_probabilities(predict_proba(model, [rows.texts[i] for i in held]))
        predicted = scores[held].argmax(axis=1)
        per_fold.append(
            {
                "fold": fold,
                "rows": len(held),
                "accuracy": round(float((predicted == labels[held]).mean()), 4),
                "macro_f1": round(macro_f1(labels[held], predicted, len(CLASSES)), 4),
            }
        )
        log.info("fold %d/%d: %s", fold + 1, int(folds.max()) + 1, per_fold[-1])
    return scores, per_fold


def _named(ids: Any) -> list[str]:
    return [CLASSES[int(i)] for i in ids]


def cross_validate(params: TrainParams, rows: TrainRows, k: int) -> dict[str, Any]:
    """One trial's k-fold cross-validation: per-fold scores, the out-of-fold scores with
    the plain arg-max and with the decision rule and temperature chosen on them, the
    calibration error before and after, and the out-of-fold predictions."""
    folds = stratified_folds(rows.review_ids, rows.labels, k)
    scores, per_fold = out_of_fold(params, rows, folds)
    reference = int(np.bincount(rows.labels, minlength=len(CLASSES)).argmax())
    calibration, ece = fit_calibration(scores, rows.labels, reference)
    calibrated = calibration.apply(scores)
    truth = _named(rows.labels)
    plain = classification_metrics(truth, _named(scores.argmax(axis=1)), CLASSES)
    ruled = classification_metrics(truth, _named(calibrated.argmax(axis=1)), CLASSES)
    fold_f1 = [f["macro_f1"] for f in per_fold]
    return {
        "folds": k,
        "rows": len(rows.labels),
        "per_fold": per_fold,
        "fold_macro_f1_mean": round(float(np.mean(fold_f1)), 4),
        "fold_macro_f1_std": round(float(np.std(fold_f1)), 4),
        "argmax": plain,
        "decision_rule": ruled,
        "calibration": calibration.as_dict() | ece,
        "out_of_fold": {
            "review_ids": rows.review_ids,
            "fold": folds.tolist(),
            "probabilities": np.round(calibrated, 5).tolist(),
        },
    }


def baseline_out_of_fold(rows: TrainRows, folds: Any) -> list[int]:
    """The standard baseline's out-of-fold predictions on the same folds (label ids)."""
    index = {name: i for i, name in enumerate(CLASSES)}
    predicted = np.zeros(len(rows.labels), dtype=np.int64)
    for fold in range(int(folds.max()) + 1):
        held = np.flatnonzero(folds == fold)
        kept = np.flatnonzero(folds != fold)
        guesses = standard_baseline_predictions(
            [rows.texts[i] for i in kept], _named(np.asarray(rows.labels)[kept]), [rows.texts[i] for i in held]
        )
        predicted[held] = [index[g] for g in guesses]
    return predicted.tolist()


def compare_with_baseline(rows: TrainRows, trial_report: dict[str, Any]) -> dict[str, Any]:
    """The chosen trial's out-of-fold predictions (decision rule applied) against the
    standard baseline's and the majority class's on the same folds and rows: scores,
    bootstrap intervals and paired differences (chosen minus each)."""
    cv = trial_report["cross_validation"]
    oof = cv["out_of_fold"]
    if oof["review_ids"] != rows.review_ids:
        raise CrossValidationError("the trial's out-of-fold rows are not this train split's: re-run the trials")
    folds = np.asarray(oof["fold"], dtype=np.int64)
    chosen = np.asarray(oof["probabilities"]).argmax(axis=1).tolist()
    majority = int(np.bincount(rows.labels, minlength=len(CLASSES)).argmax())
    comparison = bootstrap_comparison(
        rows.labels,
        {
            "chosen": chosen,
            "tfidf_logreg": baseline_out_of_fold(rows, folds),
            "majority": [majority] * len(rows.labels),
        },
        "chosen",
        len(CLASSES),
    )
    return {
        "folds": cv["folds"],
        "trial": trial_report["label"],
        "baseline": STANDARD_BASELINE,
        "calibration": cv["calibration"],
        **comparison,
    }


__all__ = ["DEFAULT_FOLDS", "CrossValidationError", "TrainRows", "compare_with_baseline", "cross_validate"]
