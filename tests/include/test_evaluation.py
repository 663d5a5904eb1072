"""Classification metrics against a case worked out by hand, and the majority baseline."""

from __future__ import annotations

from collections import Counter

import pytest

from reviewops.data.schema import CLASSES
from reviewops.modeling.evaluation import classification_metrics, majority_baseline

from .samples import shipped_records

NEG, NEU, POS = CLASSES

# Six reviews. By hand, rows are the true class and columns the predicted one:
#             pred neg  neu  pos
#   true neg       1    1    1     recall 1/3
#   true neu       0    1    0     recall 1/1
#   true pos       0    0    2     recall 2/2
#   precision    1/1  1/2  2/3
# F1: neg 2*(1*1/3)/(4/3) = 1/2, neu 2*(1/2*1)/(3/2) = 2/3, pos 2*(2/3*1)/(5/3) = 4/5
# accuracy 4/6; macro-F1 (1/2 + 2/3 + 4/5) / 3 = 59/90.
Y_TRUE = [NEG, NEG, NEG, NEU, POS, POS]
Y_PRED = [NEG, NEU, POS, NEU, POS, POS]


def test_metrics_of_a_case_computed_by_hand() -> None:
    metrics = classification_metrics(Y_TRUE, Y_PRED, CLASSES)

    assert metrics["rows"] == 6
    assert metrics["accuracy"] == pytest.approx(4 / 6, abs=5e-5)
    assert metrics["macro_f1"] == pytest.approx(59 / 90, abs=5e-5)
    expected = {
        NEG: (1.0, 1 / 3, 1 / 2, 3),
        NEU: (1 / 2, 1.0, 2 / 3, 1),
        POS: (2 / 3, 1.0, 4 / 5, 2),
    }
    for name, (precision, recall, f1, support) in expected.items():
        got = metrics["per_class"][name]
        assert got["precision"] == pytest.approx(precision, abs=5e-5), name
        assert got["recall"] == pytest.approx(recall, abs=5e-5), name
        assert got["f1"] == pytest.approx(f1, abs=5e-5), name
        assert got["support"] == support, name
    assert metrics["classes"] == list(CLASSES)


def test_confusion_matrix_rows_are_true_classes_and_columns_predictions() -> None:
    matrix = classification_metrics(Y_TRUE, Y_PRED, CLASSES)["confusion_matrix"]

    assert matrix == [[1, 1, 1], [0, 1, 0], [0, 0, 2]]
    # A negative review predicted positive is counted at [negative][positive] only.
    assert matrix[0][2] == 1 and matrix[2][0] == 0


def test_confusion_matrix_follows_the_order_of_the_classes_given() -> None:
    reordered = (POS, NEU, NEG)

    matrix = classification_metrics(Y_TRUE, Y_PRED, reordered)["confusion_matrix"]

    assert matrix == [[2, 0, 0], [0, 1, 0], [1, 1, 1]]


def test_a_class_never_seen_nor_predicted_scores_zero_without_dividing_by_zero() -> None:
    metrics = classification_metrics([POS, NEG], [POS, NEG], CLASSES)

    assert metrics["accuracy"] == 1.0
    assert metrics["per_class"][NEU] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # The unseen class still counts in the macro average: (1 + 0 + 1) / 3.
    assert metrics["macro_f1"] == pytest.approx(2 / 3, abs=5e-5)


def test_perfect_predictions_of_the_real_labels_score_one() -> None:
    labels = [r["rating"] for r in shipped_records()]

    metrics = classification_metrics(labels, labels, CLASSES)

    assert metrics["accuracy"] == metrics["macro_f1"] == 1.0
    assert [metrics["per_class"][c]["support"] for c in CLASSES] == [Counter(labels)[c] for c in CLASSES]
    assert sum(map(sum, metrics["confusion_matrix"])) == len(labels)


def test_no_rows_score_zero() -> None:
    metrics = classification_metrics([], [], CLASSES)

    assert (metrics["rows"], metrics["accuracy"], metrics["macro_f1"]) == (0, 0.0, 0.0)


def test_majority_baseline_predicts_the_commonest_training_class() -> None:
    metrics = majority_baseline([POS, POS, NEG], [POS, NEG, NEU, POS], CLASSES)

    assert metrics["predicts"] == POS
    assert metrics["accuracy"] == 0.5
    assert metrics["confusion_matrix"] == [[0, 0, 1], [0, 0, 1], [0, 0, 2]]
    # Recall 1 on the majority class, 0 elsewhere: F1 of positive is 2*(1/2*1)/(3/2) = 2/3.
    assert metrics["macro_f1"] == pytest.approx((2 / 3) / 3, abs=5e-5)


def test_majority_baseline_on_the_shipped_labels() -> None:
    labels = [r["rating"] for r in shipped_records()]
    train, evaluation = labels[:480], labels[480:]
    commonest, _ = Counter(train).most_common(1)[0]

    metrics = majority_baseline(train, evaluation, CLASSES)

    assert metrics["predicts"] == commonest
    assert metrics["accuracy"] == pytest.approx(evaluation.count(commonest) / len(evaluation), abs=5e-5)
    assert metrics["per_class"][commonest]["recall"] == 1.0
