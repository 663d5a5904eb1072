"""Prediction in bounded batches: the same probabilities whatever the batch size, so a whole
split can be predicted without holding its dense TF-IDF matrix at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reviewops.modeling.training import TrainParams, build_model, load_model, predict_labels, predict_proba
from reviewops.registry.store import ModelFileError
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


def test_a_truncated_model_file_is_one_clear_error_not_a_keras_traceback(tmp_path: Path) -> None:
    import tensorflow as tf

    texts = tf.data.Dataset.from_tensor_slices(["a b", "c"])
    model = build_model(TrainParams(hidden_units=0, max_tokens=50, min_df=1), texts)
    saved = tmp_path / "model.keras"
    model.save(saved)
    load_model(saved)
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])

    with pytest.raises(ModelFileError) as raised:
        load_model(saved)

    message = str(raised.value)
    assert message == (
        f"model file file://{saved} cannot be loaded (not a whole zip file): it is damaged or not a .keras model. "
        "Restore it from a backup, or train or pin another model"
    )
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
