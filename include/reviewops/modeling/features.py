"""TF-IDF as scikit-learn's ``TfidfVectorizer(min_df=..., sublinear_tf=True)`` computes it,
built from Keras layers so it is part of the saved model.

The vocabulary (terms in at least ``min_df`` training texts, most frequent first) and the
smoothed inverse document frequencies are computed here in Python, from the same words
Keras' ``TextVectorization`` sees (:func:`reviewops.modeling.reference.tokenize`, n-grams
joined by a space), and handed to a ``TextVectorization(output_mode="count")``; the
:func:`tfidf_layer` after it turns counts into ``(1 + log tf) * idf``, normalised to unit
length. Keras' own ``output_mode="tf_idf"`` has neither a minimum document frequency nor
sublinear term frequency, and on the shipped reviews the two are worth about 0.03 of
cross-validated macro-F1.

Keras is imported inside the functions: this module is imported by code that never
trains, and the layer class is defined (and registered for safe-mode loading) on first use.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from reviewops.modeling.reference import PUNCTUATION, tokenize

LAYER_NAME = "tfidf"  # the word TF-IDF layer; the character one is CHARS_LAYER_NAME
CHARS_LAYER_NAME = "tfidf_chars"
FEATURES_NAME = "features"  # words and characters side by side, when both are used
MIN_CHAR_NGRAM = 2

# Keras' "lower_and_strip_punctuation" before a character split: ASCII letters lowercased
# (tf.strings.lower), punctuation deleted, whitespace kept as it is (a newline is a
# character of its n-grams).
_CHARS = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", PUNCTUATION)


def terms(text: str, ngrams: int, characters: bool = False) -> list[str]:
    """The terms of a text as TextVectorization forms them, its n-grams joined by a space:
    1 to ``ngrams`` words, or with ``characters`` 2 to ``ngrams`` characters (spaces
    included, across word boundaries)."""
    if characters:
        chars = list(text.translate(_CHARS))
        return [
            " ".join(chars[i : i + n]) for n in range(MIN_CHAR_NGRAM, ngrams + 1) for i in range(len(chars) - n + 1)
        ]
    words = tokenize(text)
    out = list(words)
    for n in range(2, ngrams + 1):
        out += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return out


def document_frequencies(texts: Iterable[str], ngrams: int, characters: bool = False) -> tuple[Counter[str], int]:
    frequencies: Counter[str] = Counter()
    documents = 0
    for text in texts:
        frequencies.update(set(terms(text, ngrams, characters)))
        documents += 1
    return frequencies, documents


def vocabulary(
    texts: Sequence[str], ngrams: int, min_df: int, max_terms: int, characters: bool = False
) -> tuple[list[str], list[float]]:
    """The terms of at least ``min_df`` texts, most frequent first (ties alphabetical), at
    most ``max_terms``, and their smoothed idf ``ln((1 + n) / (1 + df)) + 1``."""
    frequencies, documents = document_frequencies(texts, ngrams, characters)
    kept = sorted((t for t, df in frequencies.items() if df >= min_df), key=lambda t: (-frequencies[t], t))[:max_terms]
    if not kept:
        raise ValueError(
            f"no term occurs in {min_df} or more of the {documents} training texts: lower min_df or train on more reviews"
        )
    idf = [math.log((1 + documents) / (1 + frequencies[t])) + 1.0 for t in kept]
    return kept, idf


@functools.cache
def tfidf_layer() -> Any:
    """The ``TfIdf`` layer class: counts (OOV first, as ``TextVectorization`` outputs them)
    to unit-length ``(1 + log tf) * idf`` (or ``tf * idf`` without ``sublinear``); out-of-
    vocabulary counts weigh 0, as scikit-learn ignores unknown terms. Registered with Keras,
    so the registry's safe-mode loader rebuilds it without running code from the file."""
    import keras

    @keras.saving.register_keras_serializable(package="reviewops")
    class TfIdf(keras.layers.Layer):  # type: ignore[misc]
        def __init__(self, terms: int, sublinear: bool = True, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.terms = terms
            self.sublinear = sublinear
            self.idf = self.add_weight(shape=(terms,), initializer="zeros", trainable=False, name="idf")

        def call(self, counts: Any) -> Any:
            ops = keras.ops
            counts = ops.cast(counts, self.compute_dtype)
            tf = ops.where(counts > 0, 1.0 + ops.log(ops.maximum(counts, 1.0)), 0.0) if self.sublinear else counts
            weighted = tf * self.idf
            norm = ops.sqrt(ops.sum(ops.square(weighted), axis=-1, keepdims=True))
            return weighted / ops.maximum(norm, 1e-12)

        def compute_output_shape(self, input_shape: Any) -> Any:
            # TextVectorization's symbolic count output of a (batch, 1) string input
            # claims (batch, 1, terms); the tensor it returns is (batch, terms).
            return (input_shape[0], self.terms)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "terms": self.terms, "sublinear": self.sublinear}

    return TfIdf


def tfidf_vectorizer(
    texts: Sequence[str], ngrams: int, min_df: int, max_tokens: int, sublinear: bool, characters: bool = False
) -> tuple[Any, Any]:
    """The ``TextVectorization`` (counts over the vocabulary) and ``TfIdf`` layers for
    ``texts``, of words or, with ``characters``, of character n-grams; call them in this
    order."""
    import keras
    import numpy as np

    terms_kept, idf = vocabulary(texts, ngrams, min_df, max_tokens - 1, characters)  # one slot is the OOV token
    if characters:
        counts = keras.layers.TextVectorization(
            split="character",
            ngrams=tuple(range(MIN_CHAR_NGRAM, ngrams + 1)),
            output_mode="count",
            vocabulary=terms_kept,
            name="vectorizer_chars",
        )
    else:
        counts = keras.layers.TextVectorization(
            ngrams=ngrams if ngrams > 1 else None, output_mode="count", vocabulary=terms_kept, name="vectorizer"
        )
    name = CHARS_LAYER_NAME if characters else LAYER_NAME
    weights = tfidf_layer()(len(terms_kept) + 1, sublinear=sublinear, name=name)
    weights.idf.assign(np.asarray([0.0, *idf], dtype=np.float32))
    return counts, weights
