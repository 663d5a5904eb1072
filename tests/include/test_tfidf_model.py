"""The Keras TF-IDF model: the same numbers as scikit-learn's TfidfVectorizer with
min_df and sublinear tf, the calibration baked into the output layer, and a model file
the registry's safe-mode loader reads back (about 5 s: small vocabularies, 2 epochs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reviewops.data.parsing import clean_text
from reviewops.modeling.calibration import Calibration, log_probabilities
from reviewops.modeling.features import vocabulary
from reviewops.modeling.training import TrainParams, bake_calibration, fit_texts, load_model, predict_proba
from tests.conftest import shipped_records


def _texts(n: int) -> list[str]:
    header, records = shipped_records()
    return [clean_text(row[header.index("review")]) for row in records[:n]]


def test_the_tfidf_layer_computes_what_scikit_learn_computes() -> None:
    import keras
    from sklearn.feature_extraction.text import TfidfVectorizer

    from reviewops.modeling.features import tfidf_vectorizer

    texts = _texts(80)
    counts, weights = tfidf_vectorizer(texts, ngrams=2, min_df=2, max_tokens=100_000, sublinear=True)
    inputs = keras.Input(shape=(1,), dtype="string")
    features = keras.Model(inputs, weights(counts(inputs)))
    ours = np.asarray(features(np.asarray(texts, dtype=object).reshape(-1, 1)))
    terms = counts.get_vocabulary()[1:]  # index 0: out of vocabulary, weighted 0
    assert np.all(ours[:, 0] == 0)
    # scikit-learn with Keras' words: the same analyzer, so any difference is the weighting.
    from reviewops.modeling.features import terms as keras_terms

    reference = TfidfVectorizer(analyzer=lambda t: keras_terms(t, 2), min_df=2, sublinear_tf=True)
    matrix = reference.fit_transform(texts).toarray()
    assert sorted(terms) == sorted(reference.get_feature_names_out())
    order = [reference.vocabulary_[t] for t in terms]
    np.testing.assert_allclose(ours[:, 1:], matrix[:, order], rtol=1e-5, atol=1e-6)


def test_min_df_keeps_terms_of_enough_texts_and_an_empty_vocabulary_says_what_to_do() -> None:
    kept, idf = vocabulary(["good pill", "good doctor", "bad pill"], ngrams=1, min_df=2, max_terms=100)
    assert kept == ["good", "pill"] and len(idf) == 2
    with pytest.raises(ValueError, match="no term occurs in 2 or more of the 2 training texts: lower min_df"):
        vocabulary(["a b", "c"], ngrams=1, min_df=2, max_terms=100)


def test_the_calibration_is_baked_into_the_saved_model_and_loads_in_safe_mode(tmp_path: Path) -> None:
    texts = _texts(60)
    labels = [i % 3 for i in range(60)]
    model, _ = fit_texts(TrainParams(epochs=2, max_tokens=2000), texts, labels)
    raw = predict_proba(model, texts)
    calibration = Calibration((0.0, 0.75, 0.0), 0.5)
    bake_calibration(model, calibration)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")  # safe_mode=True, as the registry loads
    np.testing.assert_allclose(predict_proba(loaded, texts), calibration.apply(log_probabilities(raw)), atol=1e-5)


def test_character_ngrams_are_counted_as_keras_counts_them() -> None:
    from collections import Counter

    from reviewops.modeling.features import terms, tfidf_vectorizer

    texts = [*_texts(20), "Great pill!  It's ok, really.\nNot bad"]
    counts, _ = tfidf_vectorizer(texts, ngrams=5, min_df=1, max_tokens=1_000_000, sublinear=True, characters=True)
    vocabulary_ = counts.get_vocabulary()
    for text in texts[-3:]:
        row = np.asarray(counts(np.asarray([[text]], dtype=object)))[0]
        assert {vocabulary_[i]: int(c) for i, c in enumerate(row) if c and i} == dict(Counter(terms(text, 5, True)))


def test_a_split_too_large_to_vectorise_once_trains_the_same_model_batch_by_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reviewops.modeling import training

    texts = _texts(60)
    labels = [i % 3 for i in range(60)]
    params = TrainParams(epochs=2, max_tokens=2000, char_ngrams=3)
    once, _ = fit_texts(params, texts, labels)
    monkeypatch.setattr(training, "FEATURE_BUDGET_BYTES", 0)
    streamed, _ = fit_texts(params, texts, labels)
    np.testing.assert_allclose(predict_proba(streamed, texts), predict_proba(once, texts), atol=1e-4)
