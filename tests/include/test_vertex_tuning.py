"""Vertex AI tuning, domain side: the tuning JSONL of a real dataset version, its
validation carve, the checks that fail loudly, the tuned model as a candidate and its
evaluation in the local evaluation's shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reviewops.config import VertexSettings
from reviewops.data import datasets
from reviewops.data.datasets import SnapshotParams, snapshot_dataset
from reviewops.data.schema import CLASSES
from reviewops.gcp.prompts import load_template
from reviewops.gcp.tuning import (
    MIN_TRAIN_EXAMPLES,
    TRAINING_FILE,
    VERTEX_MODEL_FILE,
    TunedModelParams,
    TuningDataParams,
    TuningError,
    evaluate_tuned_model,
    export_tuning_data,
    record_tuned_model,
    scored_metrics,
    split_for_tuning,
    validation_bucket,
)
from reviewops.storage.io import sha256_file
from reviewops.storage.paths import from_uri

from .test_datasets import curated_frame, write_curated

MODEL = "projects/reviewops-test/locations/us-central1/models/1231@1"
ENDPOINT = "projects/reviewops-test/locations/us-central1/endpoints/4561"


def _plain_tfrecord(rows: list[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # TensorFlow is not needed here


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset version of 150 real curated reviews (about 120 train, 30 eval)."""
    root = tmp_path_factory.mktemp("vertex-tuning")
    write_curated(curated_frame(root, 150), root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets, "_write_tfrecord", _plain_tfrecord)
        result, _ = snapshot_dataset(SnapshotParams(data_root=str(root / "data")))
    return root / "data" / "datasets" / result.subject


def _params(dataset_dir: Path, data_root: Path, **overrides: Any) -> TuningDataParams:
    values: dict[str, Any] = {
        "data_root": str(data_root),
        "dataset_dir": str(dataset_dir),
        "vertex": VertexSettings(project="reviewops-test", prompt="review_sentiment@v2", tuning_epochs=4),
        "require_cloud_storage": False,
    }
    values.update(overrides)
    return TuningDataParams(**values)


def _train_rows(dataset_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (dataset_dir / "train.jsonl").read_text().splitlines()]


def test_every_train_review_becomes_one_documented_tuning_line(dataset_dir: Path, tmp_path: Path) -> None:
    result = export_tuning_data(_params(dataset_dir, tmp_path))
    template = load_template("review_sentiment@v2")
    train_file, validation_file = (from_uri(a.uri) for a in result.outputs)
    assert train_file == tmp_path / "vertex" / "tuning" / dataset_dir.name / "review_sentiment@v2" / "train.jsonl"
    assert validation_file.name == "validation.jsonl" and validation_file.parent == train_file.parent

    rows = {r["review_id"]: r for r in _train_rows(dataset_dir)}
    lines = [json.loads(line) for f in (train_file, validation_file) for line in f.read_text().splitlines()]
    assert len(lines) == len(rows)  # every train review once, in one of the two files
    texts = {template.render(r): r["label"] for r in rows.values()}
    for line in lines:
        assert set(line) == {"systemInstruction", "contents"}
        assert line["systemInstruction"] == {"role": "system", "parts": [{"text": template.system_instruction}]}
        user, model = line["contents"]
        assert user["role"] == "user" and model["role"] == "model"
        assert model["parts"] == [{"text": texts[user["parts"][0]["text"]]}]  # the review's own label
    # No eval review leaks into tuning: the eval split is the gate's.
    eval_ids = {json.loads(line)["review_id"] for line in (dataset_dir / "eval.jsonl").read_text().splitlines()}
    assert not eval_ids & set(rows)

    metrics = result.metrics
    assert metrics["prompt_template"] == "review_sentiment@v2"
    assert metrics["prompt_sha256"] == template.sha256 == sha256_file(Path(template.path))
    assert metrics["train_examples"] + metrics["validation_examples"] == len(rows)
    assert sum(metrics["train_class_counts"].values()) == metrics["train_examples"]
    assert result.outputs[0].rows == metrics["train_examples"] and result.outputs[0].kind == "tuning_data"
    assert result.subject == metrics["dataset_version"] == dataset_dir.name
    # The cost estimate: every example's text once per epoch, about 4 characters a token.
    train_lines = [json.loads(line) for line in train_file.read_text().splitlines()]
    chars = sum(len(part["text"]) for line in train_lines for part in _parts(line))
    assert metrics["estimated_training_tokens"] == -(-chars // 4) * 4  # 4 epochs in _params


def _parts(line: dict[str, Any]) -> list[dict[str, str]]:
    return [*line["systemInstruction"]["parts"], *(p for c in line["contents"] for p in c["parts"])]


def test_the_tuning_request_names_the_files_and_the_settings(dataset_dir: Path, tmp_path: Path) -> None:
    metrics = export_tuning_data(_params(dataset_dir, tmp_path)).metrics
    assert metrics["tuning"] == {
        "project_id": "reviewops-test",
        "location": "us-central1",
        "gcp_conn_id": "google_cloud_default",
        "source_model": "gemini-2.5-flash",
        "training_dataset": {"gcs_uri": metrics["train_uri"]},
        "tuning_job_config": {
            "tuned_model_display_name": f"reviewops-{dataset_dir.name}-review_sentiment-v2",
            "epoch_count": 4,
            "validation_dataset": {"gcs_uri": metrics["validation_uri"]},
        },
    }


def test_the_validation_carve_is_stable_and_capped(dataset_dir: Path, tmp_path: Path) -> None:
    rows = _train_rows(dataset_dir)
    train, validation = split_for_tuning(rows, 0.2, 5000)
    assert {r["review_id"] for r in validation} == {
        r["review_id"] for r in rows if validation_bucket(r["review_id"]) < 0.2
    }
    assert 0.1 * len(rows) < len(validation) < 0.3 * len(rows)
    again_train, again_validation = split_for_tuning(list(reversed(rows)), 0.2, 5000)
    assert (again_train, again_validation) == (train, validation)
    # A cap keeps the rows with the lowest buckets; the rest go back to training.
    capped_train, capped = split_for_tuning(rows, 0.2, 3)
    assert [r["review_id"] for r in capped] == sorted(
        r["review_id"] for r in sorted(validation, key=lambda r: validation_bucket(r["review_id"]))[:3]
    )
    assert len(capped_train) == len(rows) - 3
    # Same bytes when exported twice.
    first = export_tuning_data(_params(dataset_dir, tmp_path))
    second = export_tuning_data(_params(dataset_dir, tmp_path))
    assert [a.sha256 for a in first.outputs] == [a.sha256 for a in second.outputs]


def test_too_few_examples_fail_with_what_to_do(dataset_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TuningError, match=r"at least 500 training examples .*Curate more weeks.*eval_fraction"):
        export_tuning_data(_params(dataset_dir, tmp_path, min_train_examples=500))
    with pytest.raises(TuningError, match="at least 1 validation example"):
        export_tuning_data(_params(dataset_dir, tmp_path, validation_fraction=0.0))
    assert MIN_TRAIN_EXAMPLES == 16  # Vertex AI's documented minimum
    assert not (tmp_path / "vertex").exists()  # nothing written


def test_a_local_data_root_is_refused_for_vertex(dataset_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TuningError, match=r"reads tuning data from Cloud Storage.*gs://BUCKET/PREFIX"):
        export_tuning_data(_params(dataset_dir, tmp_path, require_cloud_storage=True))


def test_an_unknown_prompt_fails_before_anything_is_written(dataset_dir: Path, tmp_path: Path) -> None:
    from reviewops.gcp.prompts import PromptError

    with pytest.raises(PromptError, match="no version 9"):
        export_tuning_data(_params(dataset_dir, tmp_path, vertex=VertexSettings(prompt="review_sentiment@v9")))


def _candidate(dataset_dir: Path, data_root: Path, model: str = MODEL, endpoint: str = ENDPOINT) -> Any:
    export = export_tuning_data(_params(dataset_dir, data_root))
    return record_tuned_model(TunedModelParams(str(data_root), model, endpoint, export.metrics, 1234.56))


def test_the_tuned_model_becomes_a_candidate_folder(dataset_dir: Path, tmp_path: Path) -> None:
    result = _candidate(dataset_dir, tmp_path)
    model_file, training_file = (from_uri(a.uri) for a in result.outputs)
    assert model_file.name == VERTEX_MODEL_FILE and training_file.name == TRAINING_FILE
    assert model_file.parent.parent == tmp_path / "models" / "candidates"
    assert model_file.parent.name.startswith(result.subject + ".")
    model = json.loads(model_file.read_text())
    template = load_template("review_sentiment@v2")
    assert model["tuned_model_name"] == MODEL and model["endpoint"] == ENDPOINT
    assert model["source_model"] == "gemini-2.5-flash" and model["dataset_version"] == dataset_dir.name
    assert (model["prompt_ref"], model["prompt_sha256"]) == (template.ref, template.sha256)
    assert model["tuning_job_config"]["epoch_count"] == 4 and model["kind"] == "vertex"
    assert (model["project_id"], model["location"]) == ("reviewops-test", "us-central1")
    training = json.loads(training_file.read_text())
    # What the registry and the model card read from a candidate's training.json.
    assert {"params", "classes", "train_seconds", "code_version", "kind", "vertex"} <= set(training)
    assert training["vertex"] == {
        "tuned_model_name": MODEL,
        "endpoint": ENDPOINT,
        "source_model": "gemini-2.5-flash",
        "prompt_ref": template.ref,
        "prompt_sha256": template.sha256,
    }
    assert training["train_seconds"] == 1234.6 and training["classes"] == list(CLASSES)
    assert all(a.kind == "model_candidate" for a in result.outputs)


def test_the_version_follows_the_tuned_model(dataset_dir: Path, tmp_path: Path) -> None:
    first = _candidate(dataset_dir, tmp_path).subject
    assert _candidate(dataset_dir, tmp_path).subject == first
    other = _candidate(dataset_dir, tmp_path, model=MODEL.replace("1231@1", "1232@1")).subject
    assert other != first and other.startswith("m-")


@pytest.mark.parametrize(
    ("model", "endpoint", "message"),
    [
        ("", ENDPOINT, "no usable tuned model name"),
        ("models/1231", ENDPOINT, "no usable tuned model name"),
        (MODEL, None, "no usable endpoint"),
    ],
)
def test_a_job_without_a_tuned_model_fails_loudly(
    dataset_dir: Path, tmp_path: Path, model: str, endpoint: str | None, message: str
) -> None:
    export = export_tuning_data(_params(dataset_dir, tmp_path))
    with pytest.raises(TuningError, match=message):
        record_tuned_model(TunedModelParams(str(tmp_path), model, endpoint or "", export.metrics))


def test_unanswered_reviews_count_as_misses() -> None:
    labels = ["positive", "positive", "negative", "neutral"]
    metrics = scored_metrics(labels, ["positive", None, "negative", "positive"])
    assert metrics["rows"] == 4 and metrics["accuracy"] == 0.5
    assert metrics["per_class"]["positive"]["recall"] == 0.5  # the unanswered one is a miss
    assert metrics["unanswered"] == {"negative": 0, "neutral": 0, "positive": 1}
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert set(metrics["per_class"]) == set(CLASSES) and metrics["classes"] == list(CLASSES)


def test_the_evaluation_has_the_local_evaluations_shape(dataset_dir: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    candidate = _candidate(dataset_dir, tmp_path)
    folder = from_uri(candidate.outputs[0].uri).parent
    evaluation = pq.read_table(dataset_dir / "eval.parquet").to_pylist()
    # A model that answers every eval review with its label, but one.
    predicted: dict[str, str | None] = {r["review_id"]: r["label"] for r in evaluation}
    predicted[evaluation[0]["review_id"]] = None
    result = evaluate_tuned_model(folder, dataset_dir, candidate.subject, predicted)
    report = json.loads((folder / "evaluation.json").read_text())
    assert result.metrics == report and result.outputs[0].kind == "evaluation"
    # The keys the gate, the registry and the model card read, as evaluate_candidate writes them.
    assert {
        "model_version",
        "dataset_version",
        "split",
        "rows",
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "classes",
        "baselines",
        "champion",
    } <= set(report)
    assert report["rows"] == len(evaluation) and report["answered"] == len(evaluation) - 1
    assert report["accuracy"] == round((len(evaluation) - 1) / len(evaluation), 4)
    assert set(report["baselines"]) == {"majority", "tfidf_logreg"} and report["champion"] is None
    assert report["dataset_version"] == dataset_dir.name and report["kind"] == "vertex"

    with pytest.raises(TuningError, match=r"none of the .* eval reviews"):
        evaluate_tuned_model(folder, dataset_dir, candidate.subject, {"no-such-review": "positive"})
