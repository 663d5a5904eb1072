"""Lookups of a step's outputs by kind and by file name, instead of by position."""

from __future__ import annotations

import pytest

from reviewops.contracts import MANIFEST_FILE, MODEL_FILE, VERTEX_MODEL_FILE, ArtifactKind
from reviewops.lineage.record import Artifact, LineageError, LineageRecord, StepResult

OUTPUTS = (
    Artifact("file:///d/ds-1/manifest.json", ArtifactKind.DATASET, "a" * 64),
    Artifact("file:///d/ds-1/train.tfrecord", ArtifactKind.DATASET, "b" * 64),
    Artifact("file:///m/c1/vertex_model.json", ArtifactKind.MODEL_CANDIDATE, "c" * 64),
)


def record() -> LineageRecord:
    return LineageRecord(
        "r1", "dag", "run", "task", 1, "s", "git:x", {}, (), OUTPUTS, (), {}, "2017-01-01", "2017-01-01"
    )


def test_an_output_is_found_by_file_name_the_first_name_that_exists_wins() -> None:
    assert record().output_named(MANIFEST_FILE) is OUTPUTS[0]
    # A candidate of either kind: model.keras, else vertex_model.json.
    assert record().output_named(MODEL_FILE, VERTEX_MODEL_FILE) is OUTPUTS[2]
    assert StepResult("s", OUTPUTS).output_named("train.tfrecord") is OUTPUTS[1]


def test_a_missing_or_ambiguous_output_names_the_record_and_what_was_asked() -> None:
    with pytest.raises(LineageError, match=r"record r1 of task task has no output named model.keras"):
        record().output_named(MODEL_FILE)
    with pytest.raises(LineageError, match="has 2 outputs of kind 'dataset', expected one"):
        record().output(ArtifactKind.DATASET)
    assert record().output(ArtifactKind.MODEL_CANDIDATE) is OUTPUTS[2]
