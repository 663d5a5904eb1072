"""The Vertex AI tuning path against real files on a fake Cloud Storage: the training
DAG builds the Google provider's real ``GenAISupervisedFineTuningTrainOperator``, whose
arguments render from ``export_tuning_data``'s record, and which runs for real against a
fake ``google.genai`` client (tests/genaifake.py); ``record_tuned_model`` turns its XCom
into a registry candidate. Only the Google clients are replaced."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from reviewops.config import VERTEX_TUNING_POOL
from reviewops.data import datasets
from reviewops.gcp.prompts import load_template
from reviewops.storage.paths import as_path
from reviewops_airflow.operators import SnapshotDatasetOperator
from reviewops_airflow.provider import LazyProviderOperator
from reviewops_airflow.vertex_tuning import TUNING_OPERATOR, ExportTuningDataOperator, RecordTunedModelOperator
from tests import gcsfake, genaifake
from tests.conftest import ROOT
from tests.genaifake import ENDPOINT_NAME, TUNED_MODEL_NAME, FakeVertexTuning
from tests.include.test_datasets import curated_frame, write_curated
from tests.plugins.stubs import StubTaskInstance

DATA_ROOT = "gs://reviewops-test-bucket/reviewops"
vertex_tuning_fake = genaifake.vertex_tuning_fake


@pytest.fixture
def fake_gcs(tmp_path: Path) -> Iterator[Path]:
    with gcsfake.installed(tmp_path / "fake-gcs") as root:
        yield root


def run(operator: Any, xcoms: dict[str, Any] | None = None) -> tuple[Any, StubTaskInstance]:
    ti = StubTaskInstance(task_id=operator.task_id, xcoms=xcoms or {})
    return operator.execute({"ti": ti}), ti


def _plain_tfrecord(rows: list[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # TensorFlow is not needed here


@pytest.fixture
def snapshot(fake_gcs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The lineage record of a dataset version of 150 real reviews on the fake bucket."""
    write_curated(curated_frame(tmp_path, 150), as_path(DATA_ROOT))  # type: ignore[arg-type]
    monkeypatch.setattr(datasets, "_write_tfrecord", _plain_tfrecord)
    record, _ = run(SnapshotDatasetOperator(task_id="snapshot_dataset", data_root=DATA_ROOT))
    return dict(record)


@pytest.fixture(scope="module")
def training_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=str(ROOT / "dags" / "reviews_training.py"))
    assert dagbag.import_errors == {}
    return dagbag.dags["reviews_training"]


def _export(prompt: str = "review_sentiment@v1") -> ExportTuningDataOperator:
    return ExportTuningDataOperator(
        task_id="export_tuning_data", upstream={"dataset": "snapshot_dataset"}, data_root=DATA_ROOT, prompt=prompt
    )


def test_the_dag_builds_the_providers_tuning_operator_in_its_pool(training_dag: Any) -> None:
    from airflow.providers.google.cloud.operators.gen_ai import GenAISupervisedFineTuningTrainOperator

    tune = training_dag.get_task("tune_model")
    # Built when the task runs (parsing the DAG imports no Google client): the provider's own
    # operator, not a subclass.
    assert type(tune) is LazyProviderOperator and tune.operator == TUNING_OPERATOR
    assert type(tune.build()) is GenAISupervisedFineTuningTrainOperator
    assert tune.pool == VERTEX_TUNING_POOL == "vertex_tuning"
    assert tune.execution_timeout == dt.timedelta(hours=4)
    assert tune.retries == 0  # a retry would start (and bill) a second tuning job
    assert training_dag.render_template_as_native_obj
    assert [t.task_id for t in tune.upstream_list] == ["export_tuning_data"]
    assert [t.task_id for t in tune.downstream_list] == ["record_tuned_model"]
    assert [t.task_id for t in training_dag.get_task("vertex_eval_prepare_batch").upstream_list] == [
        "record_tuned_model"
    ]
    assert training_dag.get_task("gate").trigger_rule == "none_failed_min_one_success"
    # The champion's batch prediction hangs off its own branch, beside the tuning job.
    champion = training_dag.get_task("choose_champion_scoring")
    assert [t.task_id for t in champion.upstream_list] == ["export_tuning_data"]
    assert [t.task_id for t in champion.downstream_list] == ["vertex_champion_prepare_batch"]
    evaluate = training_dag.get_task("evaluate_tuned")
    assert evaluate.trigger_rule == "none_failed_min_one_success"
    assert {t.task_id for t in evaluate.upstream_list} == {"vertex_eval_collect_batch", "vertex_champion_collect_batch"}
    prepare = training_dag.get_task("vertex_eval_prepare_batch")
    assert prepare.model == "{{ ti.xcom_pull(task_ids='tune_model')['tuned_model_name'] }}"
    assert {"training_backend", "prompt"} <= set(training_dag.params)


def test_tuning_arguments_render_from_the_export_record(
    training_dag: Any, snapshot: dict[str, Any], vertex_tuning_fake: FakeVertexTuning
) -> None:
    export, _ = run(_export(), {"snapshot_dataset": snapshot})
    lazy = copy.deepcopy(training_dag.get_task("tune_model"))
    lazy.render_template_fields({"ti": StubTaskInstance("tune_model", {"export_tuning_data": export})})
    tune = lazy.build()

    version = snapshot["subject"]
    folder = f"{DATA_ROOT}/vertex/tuning/{version}/review_sentiment@v1"
    assert tune.project_id == "reviewops-test" and tune.location == "us-central1"
    assert tune.source_model == "gemini-2.5-flash" and tune.gcp_conn_id == "google_cloud_default"
    assert tune.training_dataset == {"gcs_uri": f"{folder}/train.jsonl"}
    assert tune.tuning_job_config == {
        "tuned_model_display_name": f"reviewops-{version}-review_sentiment-v1",
        "epoch_count": 3,  # a number, rendered natively
        "validation_dataset": {"gcs_uri": f"{folder}/validation.jsonl"},
    }
    assert export["metrics"]["prompt_template"] == "review_sentiment@v1"
    assert export["metrics"]["prompt_sha256"] == load_template("review_sentiment@v1").sha256


def test_the_provider_operator_tunes_and_record_tuned_model_makes_a_candidate(
    training_dag: Any, snapshot: dict[str, Any], vertex_tuning_fake: FakeVertexTuning
) -> None:
    export, _ = run(_export(), {"snapshot_dataset": snapshot})
    tune = copy.deepcopy(training_dag.get_task("tune_model"))
    tune.render_template_fields({"ti": StubTaskInstance("tune_model", {"export_tuning_data": export})})

    tuned, tune_ti = run(tune)  # the provider's execute(), hook and polling, for real

    (request,) = vertex_tuning_fake.tunings.requests
    assert request["train_examples"] == export["metrics"]["train_examples"]
    assert request["validation_examples"] == export["metrics"]["validation_examples"]
    assert request["config"]["epoch_count"] == 3
    assert TUNED_MODEL_NAME.match(tuned["tuned_model_name"]) and ENDPOINT_NAME.match(tuned["tuned_model_endpoint_name"])
    assert tune_ti.pushed == {
        "tuned_model_name": tuned["tuned_model_name"],
        "tuned_model_endpoint_name": tuned["tuned_model_endpoint_name"],
    }

    record_op = RecordTunedModelOperator(
        task_id="record_tuned_model",
        upstream={"tuning_data": "export_tuning_data", "dataset": "snapshot_dataset"},
        tuned_model=tuned,  # what "{{ ti.xcom_pull(task_ids='tune_model') }}" renders to
        data_root=DATA_ROOT,
    )
    record, _ = run(record_op, {"export_tuning_data": export, "snapshot_dataset": snapshot})
    uris = [a["uri"] for a in record["outputs"]]
    assert [u.rsplit("/", 1)[-1] for u in uris] == ["vertex_model.json", "training.json"]
    assert all(u.startswith(f"{DATA_ROOT}/models/candidates/{record['subject']}.") for u in uris)
    model = json.loads(as_path(uris[0]).read_text())
    assert (model["tuned_model_name"], model["endpoint"]) == (
        tuned["tuned_model_name"],
        tuned["tuned_model_endpoint_name"],
    )
    assert model["prompt_ref"] == "review_sentiment@v1" and model["dataset_version"] == snapshot["subject"]
    # The chain is dataset -> candidate, as on the local path, with the tuning files beside.
    assert {a["kind"] for a in record["inputs"]} == {"tuning_data", "dataset"}
    assert set(record["parents"]) >= {export["record_id"], snapshot["record_id"]}
    assert record["metrics"]["vertex"]["tuned_model_name"] == tuned["tuned_model_name"]


def test_a_failed_tuning_job_fails_the_task(
    training_dag: Any, snapshot: dict[str, Any], vertex_tuning_fake: FakeVertexTuning
) -> None:
    vertex_tuning_fake.tunings.fail_with = "quota exceeded"
    export, _ = run(_export(), {"snapshot_dataset": snapshot})
    tune = copy.deepcopy(training_dag.get_task("tune_model"))
    tune.render_template_fields({"ti": StubTaskInstance("tune_model", {"export_tuning_data": export})})
    # The provider's operator reads tuned_model of a failed job, which is None.
    with pytest.raises(AttributeError):
        run(tune)
    record_op = RecordTunedModelOperator(
        task_id="record_tuned_model",
        upstream={"tuning_data": "export_tuning_data", "dataset": "snapshot_dataset"},
        tuned_model=None,
        data_root=DATA_ROOT,
    )
    with pytest.raises(AirflowFailException, match="no usable tuned model name"):
        run(record_op, {"export_tuning_data": export, "snapshot_dataset": snapshot})
    # A DAG rendering strings (no render_template_as_native_obj) would hand over the dict's text.
    record_op.tuned_model = str({"tuned_model_name": "projects/p/locations/l/models/1@1"})
    with pytest.raises(AirflowFailException, match="native objects"):
        run(record_op, {"export_tuning_data": export, "snapshot_dataset": snapshot})


def test_export_refuses_a_local_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data-root"
    write_curated(curated_frame(tmp_path, 60), root)
    monkeypatch.setattr(datasets, "_write_tfrecord", _plain_tfrecord)
    snapshot, _ = run(SnapshotDatasetOperator(task_id="snapshot_dataset", data_root=str(root)))
    export = ExportTuningDataOperator(
        task_id="export_tuning_data", upstream={"dataset": "snapshot_dataset"}, data_root=str(root)
    )
    with pytest.raises(AirflowFailException, match="reads tuning data from Cloud Storage"):
        run(export, {"snapshot_dataset": snapshot})


@pytest.fixture
def no_vertex_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("REVIEWOPS_VERTEX_PROMPT", "REVIEWOPS_VERTEX_TUNING_EPOCHS"):
        monkeypatch.delenv(name, raising=False)
    yield


def test_an_unknown_prompt_fails_without_retry(snapshot: dict[str, Any], no_vertex_env: None) -> None:
    with pytest.raises(AirflowFailException, match="no version 9"):
        run(_export("review_sentiment@v9"), {"snapshot_dataset": snapshot})


def test_the_champion_branch_refuses_a_data_root_outside_the_allowed_roots(
    training_dag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # choose_champion_scoring reads the registry under the run's data root: the same
    # trust boundary as every reviewops task, before anything is read.
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("REVIEWOPS_ALLOWED_ROOTS", str(tmp_path / "allowed"))
    choose = copy.deepcopy(training_dag.get_task("choose_champion_scoring"))
    choose.data_root = "/etc"
    with pytest.raises(AirflowFailException, match="is outside the roots this deployment allows"):
        choose.choose_branch({"ti": StubTaskInstance("choose_champion_scoring")})
