"""Prediction in bounded batches: the same probabilities whatever the batch size, so a whole
split can be predicted without holding its dense TF-IDF matrix at once."""

from __future__ import annotations

import numpy as np

from reviewops.modeling.training import TrainParams, build_model, predict_labels, predict_proba
from tests.conftest import shipped_records


def test_predictions_in_small_batches_equal_one_batch() -> None:
    import tensorflow as tf

    header, records = shipped_records()
    texts = [row[header.index("review")] for row in records[:50]]
    model = build_model(TrainParams(hidden_units=8, max_tokens=500), tf.data.Dataset.from_tensor_slices(texts))
    whole = predict_proba(model, texts, batch_size=len(texts))
    batched = predict_proba(model, texts, batch_size=7)  # 7 batches, the last one short
    assert whole.shape == batched.shape == (50, 3)
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)
    assert predict_labels(model, texts) == [["negative", "neutral", "positive"][i] for i in whole.argmax(axis=1)]
    assert predict_proba(model, []).shape == (0, 3)
