"""The training reference written beside every model: the class mix, the text length
histogram (bins at the training deciles) and the vocabulary, the way Keras' text
vectorisation sees words. Monitoring measures each week's drift against it."""

from __future__ import annotations

import logging
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


# Text length bins: edges at these quantiles of the training texts' lengths.
LENGTH_QUANTILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


DIGITS = 4


# Keras TextVectorization's "lower_and_strip_punctuation" runs tf.strings.lower, which
# lowercases ASCII letters only, and removes these characters; its whitespace split
# splits on ASCII whitespace only (a no-break space stays inside a word).
PUNCTUATION = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'"


ASCII_WHITESPACE = "\t\n\v\f\r"


# One pass: ASCII letters lowercased, punctuation deleted, ASCII whitespace made spaces.
_STANDARDIZE = str.maketrans(
    string.ascii_uppercase + ASCII_WHITESPACE, string.ascii_lowercase + " " * len(ASCII_WHITESPACE), PUNCTUATION
)


def share_by_class(counts: Mapping[str, int], classes: Sequence[str]) -> dict[str, float]:
    total = sum(counts[name] for name in classes)
    return {name: round(counts[name] / total, DIGITS) for name in classes}


def checked_labels(values: Iterable[Any], classes: Sequence[str], what: str) -> list[str]:
    items = list(values)
    unknown = sorted({repr(v) for v in items if v not in classes})
    if unknown:
        raise ValueError(f"{what} outside the classes {list(classes)}: {', '.join(unknown[:5])}")
    return items


def length_edges(lengths: Sequence[int]) -> list[int]:
    """Bin edges at the training deciles of text length (characters), deduplicated."""
    if len(lengths) == 0:
        raise ValueError("no texts: length bins come from the training texts' lengths")
    quantiles = np.quantile(np.asarray(lengths, dtype=np.float64), LENGTH_QUANTILES)
    return sorted({round(float(q)) for q in quantiles})


def length_shares(lengths: Sequence[int], edges: Sequence[int]) -> list[float]:
    """Shares of texts per bin: below the first edge, ``[edge_i, edge_i+1)``, from the
    last edge up."""
    if len(lengths) == 0:
        raise ValueError("no texts: the length histogram of nothing is undefined")
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), np.asarray(lengths), side="right"), minlength=len(edges) + 1
    )
    return [round(float(c) / len(lengths), DIGITS) for c in counts]


def training_reference(
    texts: Sequence[str], labels: Sequence[str], predicted: Sequence[str] | None, classes: Sequence[str]
) -> dict[str, Any]:
    """What drift is measured against: the training data's class shares (of labels, and
    of the model's predictions on it when given) and its text length histogram."""
    if len(texts) != len(labels) or (predicted is not None and len(predicted) != len(texts)):
        raise ValueError(
            f"texts, labels and predictions differ in length: {len(texts)}, {len(labels)}, "
            f"{None if predicted is None else len(predicted)}"
        )
    lengths = [len(text) for text in texts]
    edges = length_edges(lengths)
    label_counts = Counter(checked_labels(labels, classes, "training labels"))
    reference: dict[str, Any] = {
        "rows": len(texts),
        "classes": list(classes),
        "label_distribution": share_by_class(label_counts, classes),
        "predicted_class_distribution": None,
        "length_distribution": {"edges": edges, "shares": length_shares(lengths, edges)},
        "mean_length": round(float(np.mean(lengths)), 1),
    }
    if predicted is not None:
        predicted_counts = Counter(checked_labels(predicted, classes, "training predictions"))
        reference["predicted_class_distribution"] = share_by_class(predicted_counts, classes)
    return reference


def tokenize(text: str) -> list[str]:
    """Words as Keras ``TextVectorization(standardize="lower_and_strip_punctuation",
    split="whitespace")`` sees them: ASCII letters lowercased, punctuation removed, split
    on ASCII whitespace. Checked token for token against Keras 3 on the shipped reviews."""
    return [word for word in text.translate(_STANDARDIZE).split(" ") if word]
