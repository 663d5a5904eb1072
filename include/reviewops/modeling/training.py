"""Training a Keras text classifier that takes raw review text and returns class
probabilities; the vectoriser is a layer of the saved model, so it scores raw strings.

TensorFlow is imported inside the functions: importing this module is cheap, which
keeps it off DAG parsing and off tasks that do not train.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reviewops.contracts import MODEL_FILE, REFERENCE_FILE, TRAINING_FILE, VOCABULARY_FILE, ArtifactKind
from reviewops.data.schema import CLASSES
from reviewops.lineage.record import Artifact, StepResult, code_version
from reviewops.modeling.calibration import Calibration
from reviewops.storage.io import local_copy
from reviewops.storage.paths import StoragePath, as_path, to_uri
from reviewops.storage.publish import publish_dir, staging_dir

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)

REPRESENTATIONS = ("tfidf", "embedding")
_BUCKETS = 10_000


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of the text classifier.

    ``representation`` is ``tfidf`` (a bag of 1 to ``ngrams``-word terms found in at
    least ``min_df`` training texts, weighted by TF-IDF, sublinear in the term count with
    ``sublinear_tf``), beside character 2- to ``char_ngrams``-grams weighted alike when
    ``char_ngrams`` is set (they catch misspellings, word forms and drug names split
    differently), or ``embedding`` (learned word embeddings, averaged over the review). The defaults are the strong linear configuration: TF-IDF of 1-2-grams with
    ``min_df=2`` into a softmax with L2 (``l2=1e-3`` is scikit-learn's ``C=1`` on about 480
    reviews) and class weighting, as the standard baseline is.
    """

    representation: str = "tfidf"
    max_tokens: int = 20_000
    ngrams: int = 2
    char_ngrams: int = 0
    min_df: int = 2
    sublinear_tf: bool = True
    hidden_units: int = 0
    dropout: float = 0.0
    learning_rate: float = 0.01
    epochs: int = 10
    batch_size: int = 32
    l2: float = 1e-3
    class_weighting: bool = True
    embedding_dim: int = 64
    sequence_length: int = 256
    seed: int = 42

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation {self.representation!r}: use one of {', '.join(REPRESENTATIONS)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_example(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    import tensorflow as tf

    spec = {
        "review_id": tf.io.FixedLenFeature([], tf.string),
        "text": tf.io.FixedLenFeature([], tf.string),
        "label_id": tf.io.FixedLenFeature([], tf.int64),
    }
    parsed = tf.io.parse_single_example(record, spec)
    return parsed["review_id"], parsed["text"], parsed["label_id"]


def read_tfrecord(path: Path, part: str = "all", validation_fraction: float = 0.0) -> tf.data.Dataset:
    """(text, label_id) pairs from a dataset version's TFRecord split (a local file:
    TensorFlow reads no object store here; see :func:`reviewops.storage.io.local_copy`).

    ``part`` carves a validation set out of the split deterministically by a hash of
    review_id: ``fit`` is the rest, ``validation`` the carved part, ``all`` both.
    """
    import tensorflow as tf

    pairs = tf.data.TFRecordDataset([str(path)]).map(_parse_example)
    if part != "all":
        cut = int(validation_fraction * _BUCKETS)

        def in_validation(review_id: tf.Tensor, text: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
            return tf.strings.to_hash_bucket_fast(review_id, _BUCKETS) < cut

        if part == "validation":
            pairs = pairs.filter(in_validation)
        else:
            pairs = pairs.filter(lambda i, t, y: tf.logical_not(in_validation(i, t, y)))
    return pairs.map(lambda review_id, text, label: (text, label))


def _strings(texts: tf.data.Dataset | Sequence[str]) -> list[str]:
    if isinstance(texts, Sequence):
        return [str(t) for t in texts]
    return [t.decode() if isinstance(t, bytes) else str(t) for t in texts.as_numpy_iterator()]


def build_model(params: TrainParams, texts: tf.data.Dataset | Sequence[str]) -> keras.Model:
    """The classifier for ``params``, its vectoriser fitted to ``texts``; the last layer,
    ``probabilities``, is a softmax (see :func:`bake_calibration`)."""
    import keras
    import tensorflow as tf

    from reviewops.modeling.features import FEATURES_NAME, tfidf_vectorizer

    strings = _strings(texts)
    regularizer = keras.regularizers.l2(params.l2)
    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    if params.representation == "tfidf":
        counts, weights = tfidf_vectorizer(
            strings, params.ngrams, params.min_df, params.max_tokens, params.sublinear_tf
        )
        x = weights(counts(inputs))
        if params.char_ngrams:
            char_counts, char_weights = tfidf_vectorizer(
                strings, params.char_ngrams, params.min_df, params.max_tokens, params.sublinear_tf, characters=True
            )
            x = keras.layers.Concatenate(name=FEATURES_NAME)([x, char_weights(char_counts(inputs))])
    else:
        vectorizer = keras.layers.TextVectorization(
            max_tokens=params.max_tokens,
            output_mode="int",
            output_sequence_length=params.sequence_length,
            name="vectorizer",
        )
        vectorizer.adapt(tf.data.Dataset.from_tensor_slices(strings).batch(256))
        x = vectorizer(inputs)
        x = keras.layers.Embedding(params.max_tokens, params.embedding_dim, mask_zero=True, name="embedding")(x)
        x = keras.layers.GlobalAveragePooling1D(name="pooling")(x)
    if params.dropout:
        x = keras.layers.Dropout(params.dropout, seed=params.seed)(x)
    if params.hidden_units:
        x = keras.layers.Dense(params.hidden_units, activation="relu", kernel_regularizer=regularizer)(x)
        if params.dropout:
            x = keras.layers.Dropout(params.dropout, seed=params.seed)(x)
    outputs = keras.layers.Dense(
        len(CLASSES), activation="softmax", kernel_regularizer=regularizer, name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name="review_classifier")


def _split_at_features(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """For a model with a TF-IDF layer: the part up to it (no trainable weights) and the
    part after it, sharing the model's own layers. Fitting the second on the first's
    output trains the same weights as fitting the whole model, without vectorising the
    texts again in every epoch (the training run's largest cost before)."""
    import keras

    from reviewops.modeling.features import FEATURES_NAME, LAYER_NAME, tfidf_layer

    names = [layer.name for layer in model.layers]
    split = FEATURES_NAME if FEATURES_NAME in names else LAYER_NAME
    if split not in names:
        return None
    width = sum(layer.terms for layer in model.layers if isinstance(layer, tfidf_layer()))
    features = keras.Model(model.inputs, model.get_layer(split).output)
    head_input = keras.Input(shape=(width,), name="features_input")
    x = head_input
    for layer in model.layers[names.index(split) + 1 :]:
        x = layer(x)
    return features, keras.Model(head_input, x)


FEATURE_BUDGET_BYTES = 512 * 2**20
"""Largest dense feature matrix (rows x terms float32) fitting precomputes once: 480
reviews x 40,000 terms is 77 MB; 80,000 reviews x 20,000 terms would be 6.4 GB, so a large
train split is vectorised batch by batch in every epoch instead, as the whole model."""


def _text_batches(texts: Sequence[str]) -> Iterator[tf.Tensor]:
    import numpy as np
    import tensorflow as tf

    for start in range(0, len(texts), PREDICT_BATCH):
        yield tf.constant(np.asarray(texts[start : start + PREDICT_BATCH], dtype=object).reshape(-1, 1))


def fit_texts(
    params: TrainParams, texts: Sequence[str], labels: Sequence[int], init_model: keras.Model | None = None
) -> tuple[keras.Model, dict[str, list[float]]]:
    """A classifier fitted on ``texts`` (label ids in ``CLASSES`` order), seeded and
    deterministic; ``init_model`` is fine-tuned instead of building a new one. Returns the
    model and its Keras history."""
    import keras
    import numpy as np
    import tensorflow as tf

    if len(labels) == 0:
        raise ValueError("nothing to train on")
    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    y = np.asarray(labels, dtype=np.int64)
    model = init_model if init_model is not None else build_model(params, texts)
    split = _split_at_features(model)
    if split is not None and len(texts) * split[1].inputs[0].shape[-1] * 4 <= FEATURE_BUDGET_BYTES:
        features, trained = split
        x: Any = np.concatenate([np.asarray(features(batch)) for batch in _text_batches(texts)])
    else:  # the texts go through the whole model in every epoch, a batch at a time
        trained, x = model, np.asarray(texts, dtype=object).reshape(-1, 1)
    trained.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    class_weight = None
    if params.class_weighting:
        counts = np.bincount(y, minlength=len(CLASSES))
        class_weight = {i: float(len(y) / (len(CLASSES) * c)) if c else 0.0 for i, c in enumerate(counts)}
    batches = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=params.seed, reshuffle_each_iteration=True)
        .batch(params.batch_size)
    )
    history = trained.fit(
        batches,
        epochs=params.epochs,
        class_weight=class_weight,
        shuffle=False,  # tf.data shuffles, seeded
        verbose=0,
        callbacks=[_EpochLog(params.epochs)],
    )
    return model, {k: [float(v) for v in values] for k, values in history.history.items()}


def bake_calibration(model: keras.Model, calibration: Calibration) -> None:
    """Fold per-class offsets and a temperature into the ``probabilities`` layer: its
    softmax of ``(Wx + b + offsets) / T`` is a softmax of ``(W / T) x + (b + offsets) / T``,
    so the saved model returns the calibrated probabilities with no extra layer."""
    import numpy as np

    layer = model.get_layer("probabilities")
    kernel, bias = layer.get_weights()
    offsets = np.asarray(calibration.offsets, dtype=bias.dtype)
    layer.set_weights([kernel / calibration.temperature, (bias + offsets) / calibration.temperature])


@dataclass(frozen=True)
class FitPlan:
    """Which rows to fit on, from which weights to start, and the calibration (chosen by
    cross-validation) to bake into the saved model."""

    validation_fraction: float = 0.0
    init_model: StoragePath | None = None
    calibration: Calibration | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def train_model(
    params: TrainParams, train_tfrecord: StoragePath, out_dir: Path, plan: FitPlan | None = None
) -> dict[str, Any]:
    """Train on a TFRecord split (minus the validation carve, when planned) and save
    ``model.keras`` into the local folder ``out_dir``. With ``plan.init_model`` the saved
    model is fine-tuned (its vectoriser and weights are kept) instead of built from scratch."""
    with local_copy(train_tfrecord) as local:
        return _train_model(params, local, out_dir, plan)


def _train_model(params: TrainParams, train_tfrecord: Path, out_dir: Path, plan: FitPlan | None) -> dict[str, Any]:
    plan = plan or FitPlan()
    part = "fit" if plan.validation_fraction else "all"
    pairs = list(read_tfrecord(train_tfrecord, part, plan.validation_fraction).as_numpy_iterator())
    if not pairs:
        raise ValueError(f"{train_tfrecord}: nothing to train on")
    texts = [t.decode() for t, _ in pairs]
    labels = [int(y) for _, y in pairs]
    init = None
    if plan.init_model is not None:
        init = load_model(plan.init_model)
        log.info("fine-tuning from %s", plan.init_model)
    started = time.monotonic()
    model, history = fit_texts(params, texts, labels, init)
    if plan.calibration is not None:
        bake_calibration(model, plan.calibration)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_FILE)
    summary = {
        "params": params.as_dict(),
        "train_rows": len(labels),
        "classes": list(CLASSES),
        "final_loss": round(history["loss"][-1], 4),
        "final_train_accuracy": round(history["accuracy"][-1], 4),
        "train_seconds": round(time.monotonic() - started, 1),
        "vocabulary_size": int(model.get_layer("vectorizer").vocabulary_size()),
        "warm_start_from": str(plan.init_model) if plan.init_model else None,
        "calibration": plan.calibration.as_dict() if plan.calibration else None,
        **plan.extra,
    }
    (out_dir / TRAINING_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def load_model(path: StoragePath) -> keras.Model:
    """Load a saved classifier in Keras safe mode (no arbitrary code from the file); one
    on an object store is downloaded to a temporary file first. A file Keras cannot load
    (truncated, overwritten) is a ``ModelFileError`` naming it, in one line: it does not
    get better by retrying."""
    import keras

    from reviewops.modeling.features import tfidf_layer
    from reviewops.registry.store import ModelFileError

    tfidf_layer()  # registers the TF-IDF layer, the one class of ours a model file names
    with local_copy(path) as local:
        try:
            return keras.models.load_model(local, safe_mode=True, compile=False)
        except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
            # Keras says "File not found" of a file that is there but not a whole zip.
            complete = local.exists() and zipfile.is_zipfile(local)
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0] if complete else "not a whole zip file"
            raise ModelFileError(
                f"model file {to_uri(path)} cannot be loaded ({detail}): it is damaged or not a .keras model. "
                "Restore it from a backup, or train or pin another model"
            ) from None


PREDICT_BATCH = 1024
# write_reference runs in the training task right after the fit, whose memory TensorFlow's
# allocator keeps: a smaller batch keeps its TF-IDF activations (rows x vocabulary floats)
# within that peak (bench/bench_training.py measures the step against the fit's own peak).
REFERENCE_BATCH = 256
"""Texts a model predicts at once: the TF-IDF layer's output is dense (rows x vocabulary
floats), so a whole split at once costs gigabytes (100k reviews x 10k terms = 4 GB)."""


def predict_proba(model: keras.Model, texts: list[str], batch_size: int = PREDICT_BATCH) -> Any:
    """Class probabilities, one row per text, columns in ``CLASSES`` order, predicted
    ``batch_size`` texts at a time, so memory stays flat however long ``texts`` is.

    Runs through one traced function per model with a fixed input signature, so batches
    of any size reuse the same graph instead of retracing.
    """
    import numpy as np
    import tensorflow as tf

    if not texts:
        return np.zeros((0, len(CLASSES)), dtype=np.float32)
    predict = getattr(model, "_reviewops_predict", None)
    if predict is None:
        predict = tf.function(
            lambda batch: model(batch, training=False),
            input_signature=[tf.TensorSpec(shape=(None, 1), dtype=tf.string)],
        )
        model._reviewops_predict = predict
    out = np.empty((len(texts), len(CLASSES)), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        batch = tf.constant(np.asarray(chunk, dtype=object).reshape(-1, 1))
        out[start : start + len(chunk)] = np.asarray(predict(batch), dtype=np.float32)
    return out


def predict_labels(model: keras.Model, texts: list[str], batch_size: int = PREDICT_BATCH) -> list[str]:
    probabilities = predict_proba(model, texts, batch_size)
    return [CLASSES[i] for i in probabilities.argmax(axis=1)] if len(texts) else []


class _EpochLog:
    """Keras callback that logs progress every few epochs (long work shows progress)."""

    def __new__(cls, epochs: int) -> Any:
        import keras

        every = max(1, epochs // 5)

        class EpochLog(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                if (epoch + 1) % every == 0 or epoch + 1 == epochs:
                    logs = logs or {}
                    log.info(
                        "epoch %d/%d loss=%.4f accuracy=%.4f",
                        epoch + 1,
                        epochs,
                        logs.get("loss", float("nan")),
                        logs.get("accuracy", float("nan")),
                    )

        return EpochLog()


def write_reference(model_dir: Path, dataset_dir: StoragePath) -> None:
    """What weekly monitoring compares each week with: the training data's class mix (of
    labels and of the model's predictions), text lengths, and the model's vocabulary."""
    from reviewops.modeling.reference import training_reference
    from reviewops.storage.io import read_table, write_json

    train = read_table(dataset_dir / "train.parquet", columns=["text", "label"])
    texts = train.column("text").to_pylist()
    model = load_model(model_dir / MODEL_FILE)
    reference = training_reference(texts, train.column("label").to_pylist(), predict_labels(model, texts, REFERENCE_BATCH), CLASSES)
    write_json(reference, model_dir / REFERENCE_FILE)
    vocabulary = [str(t) for t in model.get_layer("vectorizer").get_vocabulary()]
    (model_dir / VOCABULARY_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class TrainStepParams:
    data_root: str
    dataset_dir: str
    train: TrainParams
    warm_start_from: str | None = None
    calibration: Calibration | None = None
    cross_validation: dict[str, Any] | None = None  # the selection's comparison, kept in training.json


def train_candidate(params: TrainStepParams) -> StepResult:
    """Train a candidate on a dataset version's whole train split into the candidates
    folder; with ``warm_start_from`` (a registered version) fine-tune that model. The
    candidate is written to a local staging folder and published whole."""
    from reviewops.data.datasets import read_manifest
    from reviewops.registry.store import Registry, model_version_id

    registry = Registry(params.data_root)
    dataset_dir = as_path(params.dataset_dir)
    dataset_version = read_manifest(dataset_dir)["version"]
    spec: dict[str, Any] = {**params.train.as_dict(), "warm_start_from": params.warm_start_from}
    if params.calibration is not None:  # a different output layer: a different model
        spec["calibration"] = params.calibration.as_dict()
    version = model_version_id(dataset_version, spec, code_version())
    out_dir = registry.candidates() / f"{version}.{uuid.uuid4().hex[:8]}"
    init = registry.keras_model(params.warm_start_from) if params.warm_start_from else None  # verified
    log.info("training %s on %s with %s", version, dataset_version, spec)
    extra = {
        "warm_start_from": params.warm_start_from,
        "code_version": code_version(),
        "cross_validation": params.cross_validation,
    }
    plan = FitPlan(init_model=init, calibration=params.calibration, extra=extra)
    staging = staging_dir(out_dir.parent, out_dir.name)
    summary = train_model(params.train, dataset_dir / "train.tfrecord", staging, plan)
    write_reference(staging, dataset_dir)
    publish_dir(staging, out_dir)
    return StepResult(
        subject=version,
        outputs=(
            Artifact.of_file(out_dir / MODEL_FILE, ArtifactKind.MODEL_CANDIDATE),
            Artifact.of_file(out_dir / TRAINING_FILE, ArtifactKind.MODEL_CANDIDATE),
        ),
        metrics={"model_version": version, "dataset_version": dataset_version, **summary},
    )


@dataclass(frozen=True)
class CandidateParams:
    """The training DAG's final fit: the best trial's hyperparameters (``chosen``) with
    the run's fixed ones over them (``overrides``); with ``warm_start`` the champion, if
    there is one, is fine-tuned instead of training from scratch."""

    data_root: str
    dataset_dir: str
    chosen: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    warm_start: bool = False
    cross_validation: dict[str, Any] | None = None  # the selection's: its calibration is baked in


def train_chosen_candidate(params: CandidateParams) -> tuple[StepResult, list[Artifact]]:
    """Train the candidate :class:`CandidateParams` describes; returns its result and the
    champion's model file it started from (the input beside the dataset), if any."""
    from reviewops.registry.store import Registry

    warm_from = None
    inputs: list[Artifact] = []
    if params.warm_start:
        registry = Registry(params.data_root)
        warm_from = registry.champion()
        if warm_from is None:
            log.warning("warm_start requested but there is no champion yet: training from scratch")
        else:
            inputs.append(Artifact.of_file(registry.keras_model(warm_from), ArtifactKind.MODEL))
    train = TrainParams(**{**params.chosen, **params.overrides})
    calibration = None
    if params.cross_validation and warm_from is None:
        calibration = Calibration.from_dict(params.cross_validation["calibration"])
    elif params.cross_validation:
        # The champion's output layer already holds its own offsets and temperature;
        # fine-tuning moves them, and offsets chosen for a model trained from scratch
        # do not fit it.
        log.warning("warm start: the cross-validated decision rule and temperature are not applied")
    step = TrainStepParams(
        params.data_root,
        params.dataset_dir,
        train,
        warm_start_from=warm_from,
        calibration=calibration,
        cross_validation=params.cross_validation,
    )
    return train_candidate(step), inputs
