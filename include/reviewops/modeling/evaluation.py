"""Classification metrics, computed the same way for models and baselines."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from reviewops.contracts import ChampionScores, ClassScores, EvaluationReport, Scores

if TYPE_CHECKING:
    from reviewops.lineage.record import Artifact, StepResult
    from reviewops.storage.paths import StoragePath

log = logging.getLogger(__name__)


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> Scores:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix
    (rows: true class, columns: predicted class, in ``classes`` order)."""
    index = {name: i for i, name in enumerate(classes)}
    true = np.array([index[y] for y in y_true], dtype=np.int64)
    pred = np.array([index[y] for y in y_pred], dtype=np.int64)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    per_class: dict[str, ClassScores] = {}
    f1s = []
    for i, name in enumerate(classes):
        tp = int(confusion[i, i])
        predicted = int(confusion[:, i].sum())
        actual = int(confusion[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": actual,
        }
    total = int(confusion.sum())
    return {
        "rows": total,
        "accuracy": round(float(np.trace(confusion)) / total, 4) if total else 0.0,
        "macro_f1": round(float(np.mean(f1s)), 4) if total else 0.0,
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "classes": list(classes),
    }


def majority_baseline(train_labels: Sequence[str], eval_labels: Sequence[str], classes: Sequence[str]) -> Scores:
    """Metrics of always predicting the most common training class."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    majority = str(values[int(np.argmax(counts))])
    metrics = classification_metrics(eval_labels, [majority] * len(eval_labels), classes)
    metrics["predicts"] = majority
    return metrics


# The standard baseline's exact settings (recorded in evaluation.json and the model
# card): the configuration any text classifier here must not lose to.
STANDARD_BASELINE: dict[str, Any] = {
    "vectorizer": "sklearn.feature_extraction.text.TfidfVectorizer",
    "ngram_range": [1, 2],
    "min_df": 2,
    "sublinear_tf": True,
    "classifier": "sklearn.linear_model.LogisticRegression",
    "class_weight": "balanced",
    "C": 1.0,
    "max_iter": 2000,
}


def standard_baseline_predictions(
    train_texts: Sequence[str], train_labels: Sequence[str], texts: Sequence[str]
) -> list[str]:
    """The standard baseline (``STANDARD_BASELINE``) trained on the train texts, predicting
    ``texts``. With fewer than two texts per term no term passes ``min_df``, so a tiny
    train set falls back to ``min_df=1`` rather than failing."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    settings = STANDARD_BASELINE
    vectorizer = TfidfVectorizer(
        ngram_range=tuple(settings["ngram_range"]), min_df=settings["min_df"], sublinear_tf=settings["sublinear_tf"]
    )
    try:
        features = vectorizer.fit_transform(list(train_texts))
    except ValueError:  # "After pruning, no terms remain"
        vectorizer.set_params(min_df=1)
        features = vectorizer.fit_transform(list(train_texts))
    model = LogisticRegression(class_weight=settings["class_weight"], C=settings["C"], max_iter=settings["max_iter"])
    model.fit(features, list(train_labels))
    return [str(p) for p in model.predict(vectorizer.transform(list(texts)))]


def _baseline_scores(labels: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> Scores:
    metrics = classification_metrics(labels, predicted, classes)
    metrics["model"] = (
        "TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True) + LogisticRegression(class_weight='balanced')"
    )
    metrics["settings"] = dict(STANDARD_BASELINE)
    return metrics


class References(TypedDict):
    """What a challenger is compared with (the tail of ``evaluation.json``)."""

    baselines: dict[str, Scores]
    champion: ChampionScores | None
    predictions: dict[str, list[str]]  # each reference's predicted labels (not written)


def references(
    dataset_dir: StoragePath,
    texts: list[str],
    labels: list[str],
    champion: tuple[str, StoragePath] | None,
) -> References:
    """What a challenger is compared with on the eval split (``texts``, ``labels``):
    the majority and TF-IDF + LR baselines trained on the dataset's train split, and the
    Keras champion (version, model file) predicting the same texts, when there is one."""
    from reviewops.data.schema import CLASSES
    from reviewops.modeling.training import load_model, predict_labels
    from reviewops.storage.io import read_table

    train = read_table(dataset_dir / "train.parquet", columns=["text", "label"])
    train_texts = train.column("text").to_pylist()
    train_labels = train.column("label").to_pylist()
    majority = majority_baseline(train_labels, labels, CLASSES)
    standard = standard_baseline_predictions(train_texts, train_labels, texts)
    compared: References = {
        "baselines": {"majority": majority, "tfidf_logreg": _baseline_scores(labels, standard, CLASSES)},
        "champion": None,
        "predictions": {"majority": [majority["predicts"]] * len(labels), "tfidf_logreg": standard},
    }
    if champion is not None:
        version, path = champion
        predicted = predict_labels(load_model(path), texts)
        compared["champion"] = {"model_version": version, **classification_metrics(labels, predicted, CLASSES)}
        compared["predictions"]["champion"] = predicted
    return compared


def comparison(labels: Sequence[str], challenger: Sequence[str | None], compared: References) -> dict[str, Any]:
    """Bootstrap intervals of the challenger's, the champion's and the baselines' accuracy
    and macro-F1 on the eval rows, and the paired differences challenger minus each
    (:func:`reviewops.modeling.bootstrap.bootstrap_comparison`). A None prediction (a
    review a Vertex AI model left unanswered) is a miss."""
    from reviewops.data.schema import CLASSES
    from reviewops.modeling.bootstrap import bootstrap_comparison

    index: dict[str | None, int] = {name: i for i, name in enumerate(CLASSES)}
    index[None] = len(CLASSES)
    predictions: dict[str, Sequence[str | None]] = {"challenger": challenger, **compared["predictions"]}
    return bootstrap_comparison(
        [index[y] for y in labels],
        {name: [index[p] for p in values] for name, values in predictions.items()},
        "challenger",
        len(CLASSES),
    )


def calibration_on_eval(probabilities: Any, labels: Sequence[str], training: dict[str, Any]) -> dict[str, Any] | None:
    """Expected calibration error on the eval rows of the saved (calibrated) model and of
    the same model before its temperature (``softmax(T * log p)`` undoes ``1 / T``), with
    the temperature and offsets cross-validation chose; None for a model trained without."""
    from reviewops.data.schema import CLASSES
    from reviewops.modeling.calibration import expected_calibration_error, log_probabilities, softmax

    chosen = training.get("calibration")
    if not chosen:
        return None
    index = {name: i for i, name in enumerate(CLASSES)}
    truth = [index[y] for y in labels]
    uncalibrated = softmax(float(chosen["temperature"]) * log_probabilities(probabilities))
    out_of_fold = (training.get("cross_validation") or {}).get("calibration", {})
    return {
        **chosen,
        "ece_before": out_of_fold.get("ece_before"),
        "ece_after": out_of_fold.get("ece_after"),
        "eval_ece_before": expected_calibration_error(uncalibrated, truth),
        "eval_ece_after": expected_calibration_error(probabilities, truth),
    }


def evaluation_report(
    model_version: str, dataset_version: str, scores: Scores, compared: References
) -> EvaluationReport:
    """``evaluation.json``: the challenger's scores on the eval split, then what it is
    compared with on the same rows."""
    report: EvaluationReport = {
        "model_version": model_version,
        "dataset_version": dataset_version,
        "split": "eval",
        "rows": scores["rows"],
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "per_class": scores["per_class"],
        "confusion_matrix": scores["confusion_matrix"],
        "classes": scores["classes"],
        "baselines": compared["baselines"],
        "champion": compared["champion"],
    }
    if "unanswered" in scores:
        report["unanswered"] = scores["unanswered"]
    return report


def evaluate_candidate(
    model_file: StoragePath,
    dataset_dir: StoragePath,
    model_version: str,
    champion: tuple[str, StoragePath] | None = None,
) -> StepResult:
    """Score the eval split with the challenger, the champion (when there is one) and
    two baselines trained on the same train split; write ``evaluation.json`` beside the
    challenger."""
    from reviewops.contracts import TRAINING_FILE
    from reviewops.data.schema import CLASSES
    from reviewops.modeling.training import load_model, predict_proba
    from reviewops.storage.io import read_json, read_table

    evaluation = read_table(dataset_dir / "eval.parquet", columns=["text", "label"])
    texts = evaluation.column("text").to_pylist()
    labels = evaluation.column("label").to_pylist()
    probabilities = predict_proba(load_model(model_file), texts)
    predicted = [CLASSES[i] for i in probabilities.argmax(axis=1)] if texts else []
    metrics = classification_metrics(labels, predicted, CLASSES)
    compared = references(dataset_dir, texts, labels, champion)
    report = evaluation_report(model_version, dataset_dir.name, metrics, compared)
    training_file = model_file.parent / TRAINING_FILE
    training = read_json(training_file) if training_file.exists() else {}
    if labels:
        report["comparison"] = comparison(labels, predicted, compared)
        calibration = calibration_on_eval(probabilities, labels, training)
        if calibration is not None:
            report["calibration"] = calibration
    if training.get("cross_validation"):
        report["cross_validation"] = training["cross_validation"]
    return write_evaluation(report, model_file.parent)


def write_evaluation(report: EvaluationReport, candidate_dir: StoragePath) -> StepResult:
    """Write ``evaluation.json`` into the candidate's folder and log what it says; the
    evaluation step's result (the Keras and the Vertex AI path alike)."""
    from reviewops.contracts import EVALUATION_FILE, ArtifactKind
    from reviewops.lineage.record import Artifact, StepResult
    from reviewops.storage.io import write_json

    path = write_json(report, candidate_dir / EVALUATION_FILE)
    log.info(
        "eval of %s on %d rows: accuracy %.4f macro-F1 %.4f",
        report["model_version"],
        report["rows"],
        report["accuracy"],
        report["macro_f1"],
    )
    for name, baseline in report["baselines"].items():
        log.info("baseline %s: accuracy %.4f macro-F1 %.4f", name, baseline["accuracy"], baseline["macro_f1"])
    if report["champion"]:
        champion = report["champion"]
        log.info(
            "champion %s: accuracy %.4f macro-F1 %.4f",
            champion["model_version"],
            champion["accuracy"],
            champion["macro_f1"],
        )
    return StepResult(
        subject=report["model_version"],
        outputs=(Artifact.of_file(path, ArtifactKind.EVALUATION),),
        metrics=dict(report),
    )


class EvaluationError(RuntimeError):
    """A challenger that cannot be evaluated as asked; the message says what to do."""


def evaluate_against_champion(
    data_root: str, model_file: StoragePath, dataset_dir: StoragePath, model_version: str
) -> tuple[StepResult, list[Artifact]]:
    """:func:`evaluate_candidate` against the registry's champion, when there is one;
    returns the result and the champion's model file it read. A Vertex AI champion does
    not predict here, so a local challenger cannot be compared with it."""
    from reviewops.contracts import ArtifactKind
    from reviewops.lineage.record import Artifact
    from reviewops.registry.store import ModelFileError, Registry, RegistryError

    registry = Registry(data_root)
    champion = registry.champion()
    if champion is None:
        return evaluate_candidate(model_file, dataset_dir, model_version), []
    try:
        champion_file = registry.keras_model(champion)
    except ModelFileError:  # a damaged champion: its message says what to do
        raise
    except RegistryError as exc:
        raise EvaluationError(
            f"cannot compare with the champion on this eval split: {exc}. Train with "
            "training_backend=vertex, or roll back to a Keras champion ('reviewops models rollback')"
        ) from exc
    result = evaluate_candidate(model_file, dataset_dir, model_version, (champion, champion_file))
    return result, [Artifact.of_file(champion_file, ArtifactKind.MODEL)]
