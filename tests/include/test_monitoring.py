"""Weekly monitoring on real reviews: drift statistics against cases worked out by hand,
week metrics against counts made independently from the stdlib reading of the shipped
file, the gate's messages, the HTML report's escaping, and the empty week."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reviewops.data.parsing import clean_text
from reviewops.data.safety import scan_texts
from reviewops.data.schema import CLASSES
from reviewops.modeling.reference import tokenize, training_reference
from reviewops.monitoring.drift import jensen_shannon, population_stability_index, unknown_word_share
from reviewops.monitoring.metrics import week_metrics
from reviewops.monitoring.report import render_report_html
from reviewops.monitoring.thresholds import Breach, Thresholds, check_thresholds

from .samples import Record, shipped_records

NEG, NEU, POS = CLASSES
TRAIN_ROWS = 400  # the first 400 shipped reviews are "training", the rest arrive weekly
SECONDS = [1.0, 2.0, 3.0, 4.0]


@cache
def records() -> tuple[Record, ...]:
    return tuple(shipped_records())


@cache
def reference() -> dict[str, Any]:
    train = records()[:TRAIN_ROWS]
    return training_reference([clean_text(r["review"]) for r in train], [r["rating"] for r in train], None, CLASSES)


def vocabulary() -> set[str]:
    return {word for r in records()[:TRAIN_ROWS] for word in tokenize(clean_text(r["review"]))}


def week_frame(rows: Sequence[Record], predicted: Sequence[str], labels: Sequence[str | None]) -> pd.DataFrame:
    """Scored reviews as the weekly pipeline hands them over, built from real reviews."""
    texts = [clean_text(r["review"]) for r in rows]
    flags = scan_texts(texts)
    return pd.DataFrame(
        {
            "review_id": [r[""] for r in rows],
            "predicted_label": list(predicted),
            **{f"prob_{c}": [0.8 if p == c else 0.1 for p in predicted] for c in CLASSES},
            "label": pd.array(list(labels), dtype="string"),
            "product": [r["drugName"] for r in rows],
            "condition": [r["condition"] or None for r in rows],
            "text": texts,
            "safety_categories": [list(f.categories) for f in flags],
            "safety_score": [f.score for f in flags],
        }
    )


# --- distributions ---------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero_and_of_a_hand_case_matches() -> None:
    assert population_stability_index([0.27, 0.09, 0.64], [0.27, 0.09, 0.64]) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index([27, 9, 64], [0.27, 0.09, 0.64]) == pytest.approx(0.0, abs=1e-12)
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
    assert population_stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        0.25 * math.log(2) + 0.25 * math.log(1.5)
    )


def test_psi_of_a_sharply_shifted_class_mix_exceeds_the_default_threshold() -> None:
    shipped = [0.27, 0.09, 0.64]  # the shipped class balance
    mostly_negative = [0.70, 0.10, 0.20]

    assert population_stability_index(shipped, mostly_negative) > Thresholds().max_prediction_psi
    assert population_stability_index(shipped, [0.26, 0.10, 0.64]) < 0.01


def test_psi_is_finite_with_an_empty_bin_and_refuses_mismatched_bins() -> None:
    assert math.isfinite(population_stability_index([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="different bins"):
        population_stability_index([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="sum to"):
        population_stability_index([0.0, 0.0], [0.5, 0.5])


def test_jensen_shannon_is_zero_one_symmetric_and_bounded() -> None:
    assert jensen_shannon([0.2, 0.8], [0.2, 0.8]) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    # m = (0.75, 0.25): KL(p||m) = log2(4/3), KL(q||m) = 0.5 log2(2/3) + 0.5 log2(2)
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert jensen_shannon([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected)
    rng = np.random.default_rng(7)
    for _ in range(200):
        p, q = rng.dirichlet(np.ones(5) * 0.3), rng.dirichlet(np.ones(5) * 0.3)
        value = jensen_shannon(list(p), list(q))
        assert 0.0 <= value <= 1.0
        assert value == pytest.approx(jensen_shannon(list(q), list(p)))


# --- words ------------------------------------------------------------------------


def test_tokenize_lowercases_strips_punctuation_and_splits_like_keras() -> None:
    assert tokenize("Don't STOP!!  It's 10mg/day (q.d.)") == ["dont", "stop", "its", "10mgday", "qd"]
    # tf.strings.lower lowercases ASCII only, and the split is on ASCII whitespace only.
    assert tokenize("ÜBER naïve a\u00a0b") == ["Über", "naïve", "a\u00a0b"]
    assert tokenize("I couldn’t — really") == ["i", "couldn’t", "—", "really"]


def test_unknown_word_share_counts_every_occurrence() -> None:
    assert unknown_word_share(["The pill, the PILL!", "zzz pill"], {"the", "pill"}) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="no words"):
        unknown_word_share(["", "!!!"], {"the"})


# --- the training reference -------------------------------------------------------


def test_training_reference_of_real_reviews() -> None:
    ref = reference()
    train = records()[:TRAIN_ROWS]
    counts = Counter(r["rating"] for r in train)  # independent of the code under test
    shares = ref["length_distribution"]["shares"]

    json.dumps(ref, allow_nan=False)
    assert ref["rows"] == TRAIN_ROWS
    assert ref["predicted_class_distribution"] is None
    assert ref["label_distribution"] == {c: pytest.approx(counts[c] / TRAIN_ROWS, abs=1e-4) for c in CLASSES}
    assert len(shares) == len(ref["length_distribution"]["edges"]) + 1 == 10
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert all(0.05 <= s <= 0.15 for s in shares)  # decile bins hold about a tenth each


def test_training_reference_refuses_a_label_outside_the_classes() -> None:
    with pytest.raises(ValueError, match="outside the classes"):
        training_reference(["good", "bad"], [POS, "great"], None, CLASSES)


# --- one week ---------------------------------------------------------------------


@cache
def real_week() -> tuple[pd.DataFrame, list[str], list[str | None]]:
    """The 200 shipped reviews after training, with a known prediction rule: right on
    every third review, "positive" on the others; every seventh arrived unrated."""
    rows = records()[TRAIN_ROWS:]
    labels: list[str | None] = [None if i % 7 == 0 else r["rating"] for i, r in enumerate(rows)]
    predicted = [r["rating"] if i % 3 == 0 else POS for i, r in enumerate(rows)]
    return week_frame(rows, predicted, labels), predicted, labels


def test_week_metrics_accuracy_equals_a_hand_count() -> None:
    frame, predicted, labels = real_week()
    pairs = [(y, p) for y, p in zip(labels, predicted, strict=True) if y is not None]
    right = sum(y == p for y, p in pairs)

    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())

    json.dumps(metrics, allow_nan=False)
    assert metrics["review_count"] == 200
    assert metrics["labelled_count"] == len(pairs) == 171
    assert metrics["accuracy"] == pytest.approx(right / len(pairs), abs=5e-5)
    assert metrics["predicted_class_distribution"] == {c: pytest.approx(predicted.count(c) / 200) for c in CLASSES}
    assert metrics["throughput_rows_per_second"] == pytest.approx(200 / 10)
    assert metrics["batch_latency_seconds"] == {"p50": 2.5, "p95": pytest.approx(3.85), "max": 4.0, "batches": 4}
    assert metrics["safety"] == {
        "flagged_count": 0,
        "flagged_rate": 0.0,
        "by_category": {"email": 0, "phone": 0, "url": 0, "toxic": 0},
        "max_score": 0.0,
    }


def test_week_metrics_slices_match_hand_counts() -> None:
    frame, predicted, labels = real_week()
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())
    rows = records()[TRAIN_ROWS:]
    by_condition: dict[str, list[bool]] = {}
    for r, y, p in zip(rows, labels, predicted, strict=True):
        if y is not None and r["condition"]:
            by_condition.setdefault(r["condition"], []).append(y == p)
    expected = {name: sum(hits) / len(hits) for name, hits in by_condition.items() if len(hits) >= 5}

    slices = {s["name"]: s for s in metrics["slices"]["condition"]}
    assert set(slices) == set(expected) and "Birth Control" in slices
    for name, accuracy in expected.items():
        assert slices[name]["accuracy"] == pytest.approx(accuracy, abs=5e-5)
        assert slices[name]["count"] == len(by_condition[name])
    every = [s for rows_ in metrics["slices"].values() for s in rows_]
    worst = min(s["accuracy"] for s in every)
    assert metrics["worst_slice_gap"]["accuracy"] == worst
    assert metrics["worst_slice_gap"]["gap"] == pytest.approx(metrics["accuracy"] - worst, abs=1e-4)


def test_week_metrics_drift_uses_predicted_shares_of_the_reference_when_present() -> None:
    frame, _, _ = real_week()
    train = records()[:TRAIN_ROWS]
    texts = [clean_text(r["review"]) for r in train]
    with_predictions = training_reference(texts, [r["rating"] for r in train], [POS] * len(train), CLASSES)

    by_labels = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())["drift"]
    by_predictions = week_metrics(frame, with_predictions, vocabulary(), CLASSES, SECONDS, Thresholds())["drift"]

    assert by_labels["reference_source"] == "label" and by_predictions["reference_source"] == "predicted"
    assert by_labels["prediction_psi"] != by_predictions["prediction_psi"]
    assert by_labels["length_psi"] == by_predictions["length_psi"] < 0.25  # the same reviews' lengths
    assert 0.0 <= by_labels["prediction_js"] <= 1.0


def test_unknown_words_of_a_week_against_the_training_vocabulary() -> None:
    frame, _, _ = real_week()
    words = [w for text in frame["text"] for w in tokenize(text)]
    vocab = vocabulary()
    expected = sum(w not in vocab for w in words) / len(words)

    metrics = week_metrics(frame, reference(), vocab, CLASSES, SECONDS, Thresholds())

    assert metrics["unknown_word_share"] == pytest.approx(expected, abs=5e-5)
    assert 0.0 < metrics["unknown_word_share"] < 0.3


def test_safety_counts_of_a_week() -> None:
    rows = records()[TRAIN_ROWS : TRAIN_ROWS + 10]
    frame = week_frame(rows, [POS] * 10, [r["rating"] for r in rows])
    frame.loc[0, "text"] += " Call me on 555-123-4567, you idiot."
    flags = scan_texts(list(frame["text"]))
    frame["safety_categories"] = [np.array(f.categories) for f in flags]  # as Parquet gives lists back
    frame["safety_score"] = [f.score for f in flags]

    safety = week_metrics(frame, reference(), vocabulary(), CLASSES, [0.5], Thresholds())["safety"]

    assert safety["flagged_count"] == 1 and safety["flagged_rate"] == 0.1
    assert safety["by_category"] == {"email": 0, "phone": 1, "url": 0, "toxic": 1}
    assert safety["max_score"] == 1.0


def test_week_metrics_refuses_a_frame_it_cannot_read() -> None:
    frame, _, _ = real_week()
    with pytest.raises(ValueError, match="prob_neutral"):
        week_metrics(frame.drop(columns=["prob_neutral"]), reference(), set(), CLASSES, SECONDS, Thresholds())
    bad = frame.assign(predicted_label=["great"] * len(frame))
    with pytest.raises(ValueError, match="outside the classes"):
        week_metrics(bad, reference(), set(), CLASSES, SECONDS, Thresholds())


# --- the gate ---------------------------------------------------------------------


def test_a_sharp_shift_breaches_with_a_message_naming_metric_value_and_threshold() -> None:
    rows = records()[TRAIN_ROWS:]
    frame = week_frame(rows, [NEG] * len(rows), [r["rating"] for r in rows])
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())

    breaches = {b.metric: b for b in check_thresholds(metrics, Thresholds())}

    psi = metrics["drift"]["prediction_psi"]
    assert psi > 0.25
    assert breaches["prediction_psi"] == Breach(
        "prediction_psi",
        psi,
        0.25,
        f"prediction_psi {psi:.4g} > max 0.25: the predicted class mix drifted from training",
    )
    accuracy = metrics["accuracy"]
    assert accuracy < 0.4
    assert breaches["accuracy"].message.startswith(f"accuracy {accuracy:.4g} < min 0.4: ")
    assert set(breaches) == {"prediction_psi", "accuracy"}
    assert all("\n" not in b.message for b in breaches.values())


def test_a_small_week_reports_drift_but_is_not_gated_on_it() -> None:
    rows = records()[TRAIN_ROWS : TRAIN_ROWS + 20]
    frame = week_frame(rows, [NEG] * 20, [r["rating"] for r in rows])
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())

    assert metrics["drift"]["prediction_psi"] > 0.25
    assert check_thresholds(metrics, Thresholds()) == []  # 20 < min_drift_rows, 20 < min_labelled
    strict = Thresholds(min_drift_rows=1, min_labelled=1)
    # Gated anyway, 20 real reviews breach on length too: their length PSI is noise.
    assert {b.metric for b in check_thresholds(metrics, strict)} == {"prediction_psi", "length_psi", "accuracy"}


def test_a_high_safety_rate_breaches() -> None:
    rows = records()[TRAIN_ROWS : TRAIN_ROWS + 4]
    frame = week_frame(rows, [POS] * 4, [None] * 4)
    frame["safety_categories"] = [["toxic"], [], [], []]
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, [], Thresholds())

    (breach,) = check_thresholds(metrics, Thresholds())

    assert breach.metric == "safety_flagged_rate"
    assert breach.message.startswith("safety_flagged_rate 0.25 > max 0.2: ")


def test_a_week_the_model_mostly_did_not_answer_breaches_on_the_answered_rate() -> None:
    """A Vertex AI week whose answers were blocked or lost: the answered reviews alone
    look fine (accurate, no drift), the gate must still go red."""
    rows = records()[TRAIN_ROWS : TRAIN_ROWS + 40]
    labels = [r["rating"] for r in rows]
    frame = week_frame(rows, labels, labels)  # every answered review is right
    frame.loc[4:, "predicted_label"] = None  # 36 of 40 never classified
    for c in CLASSES:
        frame.loc[4:, f"prob_{c}"] = None
    thresholds = Thresholds(min_labelled=1)
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, thresholds)

    assert metrics["answered_count"] == 4 and metrics["answered_rate"] == 0.1
    assert metrics["accuracy"] == 1.0  # over the 4 answered reviews only
    breaches = {b.metric: b for b in check_thresholds(metrics, thresholds)}
    assert set(breaches) == {"answered_rate"}
    assert breaches["answered_rate"].message.startswith("answered_rate 0.1 < min 0.9: ")
    # Local scoring answers every review: the same week fully answered passes.
    full = week_metrics(week_frame(rows, labels, labels), reference(), vocabulary(), CLASSES, SECONDS, thresholds)
    assert full["answered_rate"] == 1.0 and check_thresholds(full, thresholds) == []


def test_thresholds_refuse_impossible_limits() -> None:
    with pytest.raises(ValueError, match="min_accuracy"):
        Thresholds(min_accuracy=1.5)
    with pytest.raises(ValueError, match="min_volume"):
        Thresholds(min_volume=-1)
    with pytest.raises(ValueError, match="min_answered_rate"):
        Thresholds(min_answered_rate=2)


# --- the empty week and the report ------------------------------------------------


def test_an_empty_week_yields_null_metrics_and_a_volume_breach() -> None:
    frame = week_frame([], [], [])
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, [], Thresholds())

    json.dumps(metrics, allow_nan=False)
    assert metrics["review_count"] == 0
    assert metrics["accuracy"] is None and metrics["labelled_count"] == 0
    assert metrics["throughput_rows_per_second"] is None
    assert metrics["predicted_class_distribution"] is None
    assert set(metrics["drift"].values()) == {None, "label"}
    assert metrics["unknown_word_share"] is None
    assert metrics["worst_slice_gap"] is None
    assert metrics["safety"]["flagged_rate"] is None
    (breach,) = check_thresholds(metrics, Thresholds())
    assert breach.message.startswith("review_count 0 < min 1: ")
    page = render_report_html("2017-12-11", metrics, [breach])
    assert "review_count 0 &lt; min 1" in page and "No data this week." in page


def test_the_report_escapes_text_from_data_and_loads_nothing() -> None:
    rows = records()[TRAIN_ROWS:]
    frame = week_frame(rows, [NEG] * len(rows), [r["rating"] for r in rows])
    frame.loc[:9, "product"] = "<script>alert(1)</script>"
    frame.loc[:9, "condition"] = 'Pain & "Fever" <b>'
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())
    breaches = check_thresholds(metrics, Thresholds())

    page = render_report_html("2017-12-<11>", metrics, breaches)

    assert "<script" not in page.lower() and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Pain &amp; &quot;Fever&quot; &lt;b&gt;" in page
    assert "2017-12-&lt;11&gt;" in page
    assert "src=" not in page and "href=" not in page and "<link" not in page
    assert page.count("<svg") == 5  # classes, lengths, latency, product and condition slices
    assert page.count('<tr class="breach">') == len(breaches) == 2
    assert all(html.escape(b.message) in page for b in breaches)


def test_a_runs_threshold_overrides_are_checked_by_name_and_range() -> None:
    assert Thresholds.from_overrides(None) == Thresholds()
    assert Thresholds.from_overrides({"max_prediction_psi": 0.3}).max_prediction_psi == 0.3
    with pytest.raises(ValueError, match=r"unknown threshold\(s\) max_psi; known: .*max_prediction_psi"):
        Thresholds.from_overrides({"max_psi": 0.3})
    with pytest.raises(ValueError, match="min_accuracy is a share"):
        Thresholds.from_overrides({"min_accuracy": 7})


# --- accuracy estimated before the ratings arrive (CBPE) ----------------------------


def test_estimated_accuracy_is_the_mean_top_probability_with_its_bernoulli_interval() -> None:
    frame, _, _ = real_week()  # every top probability is 0.8
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())
    half = 1.96 * math.sqrt(200 * 0.8 * 0.2) / 200
    assert metrics["estimated_accuracy"] == pytest.approx(0.8)
    assert metrics["estimated_accuracy_interval"] == [
        pytest.approx(0.8 - half, abs=1e-4),
        pytest.approx(0.8 + half, abs=1e-4),
    ]
    assert metrics["accuracy"] is not None
    assert metrics["estimation_error"] == pytest.approx(0.8 - metrics["accuracy"], abs=1e-4)


def test_with_calibrated_probabilities_the_estimate_meets_the_realised_accuracy() -> None:
    # Ratings drawn from the probabilities themselves (a perfectly calibrated model): the
    # realised accuracy falls inside the estimate's interval, the estimate within a few points.
    rows = records()[TRAIN_ROWS:]
    rng = np.random.default_rng(11)
    probabilities = rng.dirichlet((0.6, 0.6, 0.6), size=len(rows))
    predicted = [CLASSES[i] for i in probabilities.argmax(axis=1)]
    labels: list[str | None] = [CLASSES[rng.choice(3, p=p)] for p in probabilities]
    frame = week_frame(rows, predicted, labels)
    for i, name in enumerate(CLASSES):
        frame[f"prob_{name}"] = probabilities[:, i]
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())
    low, high = metrics["estimated_accuracy_interval"]
    assert metrics["estimated_accuracy"] == pytest.approx(float(probabilities.max(axis=1).mean()), abs=1e-4)
    assert low <= metrics["accuracy"] <= high
    assert abs(metrics["estimation_error"]) < 0.06


def test_a_low_estimated_accuracy_breaches_before_any_rating_arrives() -> None:
    rows = records()[TRAIN_ROWS : TRAIN_ROWS + 40]
    predicted = [POS] * len(rows)
    frame = week_frame(rows, predicted, [None] * len(rows))  # no rating yet
    for name, share in zip(CLASSES, (0.3, 0.3, 0.4), strict=True):
        frame[f"prob_{name}"] = share
    metrics = week_metrics(frame, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())
    assert metrics["accuracy"] is None and metrics["estimation_error"] is None
    breaches = check_thresholds(metrics, Thresholds())
    assert [b.metric for b in breaches if b.metric.endswith("accuracy")] == ["estimated_accuracy"]
    assert breaches[-1].message.startswith("estimated_accuracy 0.4 < min 0.5: the model is unsure")
    few = week_metrics(frame.iloc[:10], reference(), vocabulary(), CLASSES, SECONDS, Thresholds())
    assert "estimated_accuracy" not in [b.metric for b in check_thresholds(few, Thresholds())], "10 reviews: noise"


@pytest.mark.parametrize("where", ["local", "gs"])
def test_the_estimation_error_over_all_weeks_is_recorded(where: str, tmp_path: Any, request: Any) -> None:
    from reviewops.monitoring.step import estimation_over_weeks
    from reviewops.storage.io import read_json, write_json, write_text
    from reviewops.storage.paths import as_path

    if where == "gs":  # one listing of the weeks' files on Cloud Storage, not a request per week
        request.getfixturevalue("fake_gcs")
        tmp_path = as_path("gs://reviewops-test/estimation")
    assert estimation_over_weeks(str(tmp_path))["weeks_with_ratings"] == 0

    def week(folder: str, estimate: float, interval: list[float], accuracy: float | None, labelled: int) -> None:
        metrics = {
            "estimated_accuracy": estimate,
            "estimated_accuracy_interval": interval,
            "accuracy": accuracy,
            "labelled_count": labelled,
            "estimation_error": None if accuracy is None else round(estimate - accuracy, 4),
            "model_version": "m-aaaaaaaaaaaa",
        }
        write_json(metrics, tmp_path / "monitoring" / f"week={folder}" / "metrics.json")

    week("2017-01-02", 0.70, [0.6, 0.8], 0.75, 20)
    week("2017-01-09", 0.80, [0.7, 0.9], 0.60, 30)  # outside its interval
    week("2017-01-16", 0.75, [0.6, 0.9], None, 0)  # no ratings yet: nothing to compare
    write_text("{not json", tmp_path / "monitoring" / "week=2017-01-23" / "metrics.json")
    summary = estimation_over_weeks(str(tmp_path))
    assert summary == read_json(tmp_path / "monitoring" / "estimation.json")
    assert [w["week"] for w in summary["weeks"]] == ["2017-01-02", "2017-01-09"]
    assert summary["weeks_with_ratings"] == 2 and summary["labelled_reviews"] == 50
    assert summary["mean_absolute_error"] == pytest.approx((0.05 + 0.20) / 2)
    assert summary["pooled_accuracy"] == pytest.approx((0.75 * 20 + 0.60 * 30) / 50)
    assert summary["pooled_estimated_accuracy"] == pytest.approx((0.70 * 20 + 0.80 * 30) / 50)
    assert summary["interval_coverage"] == 0.5


def test_a_week_scored_by_gemini_has_no_estimate_from_its_one_hot_answers() -> None:
    frame, _, _ = real_week()
    vertex = frame.assign(response_status="ok", model_safety_categories=None, citation_count=0)
    metrics = week_metrics(vertex, reference(), vocabulary(), CLASSES, SECONDS, Thresholds())
    assert metrics["estimated_accuracy"] is None and metrics["estimated_accuracy_interval"] is None
    assert metrics["estimation_error"] is None and metrics["accuracy"] is not None
    assert "estimated_accuracy" not in [b.metric for b in check_thresholds(metrics, Thresholds())]
