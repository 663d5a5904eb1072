"""``reviews_training`` with ``training_backend=vertex`` end to end through ``dag.test()``
on a ``gs://`` data root, beside a local training run on the same data.

Google is replaced at the client boundaries only: Cloud Storage by the fake object store
(tests/gcsfake.py), Vertex AI tuning by a fake ``google.genai`` client behind the provider's
real hook (tests/genaifake.py), Vertex AI batch prediction at
``aiplatform.BatchPredictionJob.submit`` (tests/vertexfake.py). The provider's operators,
the branch, the gate and the registry run for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import gcsfake, genaifake
from tests.conftest import ROOT, shipped_records, write_shipped_slice
from tests.vertexfake import FakeVertex

pytestmark = pytest.mark.integration

GS_ROOT = "gs://reviewops-test/vertex-training"
PROMPT = "review_sentiment@v2"
# The search space's known-good corner, one trial: the local model becomes the champion
# the tuned model is compared with.
LOCAL = {
    "search_space": {"representation": ["tfidf"], "ngrams": [1], "hidden_units": [64], "class_weighting": [True]},
    "max_trials": 1,
}
LOCAL_TASKS = {"plan_trials", "train_trial", "select_best", "train_model", "evaluate_model"}
CHAMPION_TASKS = {"vertex_champion_prepare_batch", "vertex_champion_batch_predict", "vertex_champion_collect_batch"}
VERTEX_TASKS = {
    "export_tuning_data",
    "choose_champion_scoring",
    "tune_model",
    "record_tuned_model",
    "vertex_eval_prepare_batch",
    "vertex_eval_batch_predict",
    "vertex_eval_collect_batch",
    "evaluate_tuned",
}


@pytest.fixture(scope="module")
def runs(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from reviewops.gcp.prompts import load_template
    from reviewops.registry.store import Registry

    base = tmp_path_factory.mktemp("vertex-training")
    header, records = shipped_records()
    source = write_shipped_slice(base / "reviews.tsv", records, header)
    dagbag = DagBag(dag_folder=str(ROOT / "dags"))
    assert dagbag.import_errors == {}
    training = dagbag.dags["reviews_training"]
    with gcsfake.installed(base / "fake-gcs"), pytest.MonkeyPatch.context() as patch:
        batch = FakeVertex().patch(patch)
        tuning = genaifake.install(patch, load_template(PROMPT), project=genaifake.PROJECT)
        patch.setenv("REVIEWOPS_VERTEX_PROJECT", genaifake.PROJECT)
        patch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", genaifake.CONNECTION)
        load = dagbag.dags["reviews_initial_load"].test(run_conf={"source": str(source), "data_root": GS_ROOT})
        local = training.test(run_conf={"data_root": GS_ROOT, **LOCAL})
        vertex_conf = {"data_root": GS_ROOT, "training_backend": "vertex", "prompt": PROMPT}
        vertex = training.test(run_conf=vertex_conf)
        # The tuned model made champion by hand: the next tuned model is compared with it,
        # from the champion's own batch predictions of the same eval split.
        tuned_version = _record(vertex, "register_model")["subject"]
        Registry(GS_ROOT).promote(tuned_version, "test: a tuned champion", "test_vertex_training")
        again = training.test(run_conf=vertex_conf)
        yield {"load": load, "local": local, "vertex": vertex, "again": again, "tuning": tuning, "batch": batch}


def _record(dag_run: Any, task_id: str) -> dict[str, Any]:
    value: dict[str, Any] = dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)
    return value


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_each_backend_runs_its_own_path_and_skips_the_other(runs: dict[str, Any]) -> None:
    assert str(runs["load"].state) == "success"
    for name, ran, skipped in (("local", LOCAL_TASKS, VERTEX_TASKS), ("vertex", VERTEX_TASKS, LOCAL_TASKS)):
        run = runs[name]
        states = _states(run)
        assert str(run.state) == "success", (name, states)
        assert {t for t in ran if states[t] != "success"} == set(), (name, states)
        assert {t for t in skipped | CHAMPION_TASKS if states[t] != "skipped"} == set(), (name, states)
        assert states["gate"] == states["register_model"] == "success", (name, states)
    again = _states(runs["again"])
    assert str(runs["again"].state) == "success", again
    assert {t for t in VERTEX_TASKS | CHAMPION_TASKS if again[t] != "success"} == set(), again


def test_the_tuning_job_got_the_exported_files_and_config(runs: dict[str, Any]) -> None:
    from reviewops.gcp.prompts import load_template

    request, _ = runs["tuning"].tunings.requests  # every line was checked by the fake
    export = _record(runs["vertex"], "export_tuning_data")["metrics"]
    dataset = _record(runs["vertex"], "snapshot_dataset")
    assert request["base_model"] == "gemini-2.5-flash"
    folder = f"{GS_ROOT}/vertex/tuning/{dataset['subject']}/{PROMPT}"
    assert request["training_dataset"] == {"gcs_uri": f"{folder}/train.jsonl"}
    assert request["config"] == {
        "tuned_model_display_name": f"reviewops-{dataset['subject']}-review_sentiment-v2",
        "epoch_count": 3,
        "validation_dataset": {"gcs_uri": f"{folder}/validation.jsonl"},
    }
    assert request["train_examples"] + request["validation_examples"] == dataset["metrics"]["train_rows"]
    assert export["prompt_sha256"] == load_template(PROMPT).sha256
    # The eval split was scored once, by the tuned model, with the same prompt.
    job = runs["batch"].jobs[0]
    tuned = _record(runs["vertex"], "tune_model")
    assert job["model_name"] == tuned["tuned_model_name"]
    collect = _record(runs["vertex"], "vertex_eval_collect_batch")["metrics"]
    assert collect["prompt_template"] == PROMPT and collect["rows_scored"] == dataset["metrics"]["eval_rows"]


def test_the_registry_holds_a_vertex_version_gated_like_a_local_one(runs: dict[str, Any]) -> None:
    from reviewops.registry.store import Registry

    tuned = _record(runs["vertex"], "tune_model")
    assert genaifake.TUNED_MODEL_NAME.match(tuned["tuned_model_name"])
    assert genaifake.ENDPOINT_NAME.match(tuned["tuned_model_endpoint_name"])
    register = _record(runs["vertex"], "register_model")
    candidate = _record(runs["vertex"], "record_tuned_model")
    gate = _record(runs["vertex"], "gate")["metrics"]
    assert register["subject"] == candidate["subject"] == gate["challenger"]
    registry = Registry(GS_ROOT)
    meta = registry.metadata(register["subject"])
    assert meta["kind"] == "vertex"
    assert meta["vertex"] == {
        "tuned_model_name": tuned["tuned_model_name"],
        "endpoint": tuned["tuned_model_endpoint_name"],
        "source_model": "gemini-2.5-flash",
        "prompt_ref": PROMPT,
        "prompt_sha256": _record(runs["vertex"], "export_tuning_data")["metrics"]["prompt_sha256"],
    }
    # The gate decided against the local champion, as for any challenger.
    champion_before = _record(runs["local"], "register_model")["subject"]
    assert gate["verdict"] in ("promote", "reject") and gate["champion"] == champion_before
    assert meta["gate"]["verdict"] == gate["verdict"]
    assert register["metrics"]["promoted"] == (gate["verdict"] == "promote")
    names = {p.name for p in registry.path(register["subject"]).iterdir()}
    assert {"vertex_model.json", "training.json", "evaluation.json", "metadata.json", "model_card.md"} <= names
    card = (registry.path(register["subject"]) / "model_card.md").read_text()
    assert "tuned on Vertex AI" in card and tuned["tuned_model_name"] in card and PROMPT in card


def test_the_tuning_task_ran_in_its_pool_which_dag_test_does_not_need(runs: dict[str, Any]) -> None:
    from airflow.models.pool import Pool

    assert runs["vertex"].get_task_instance("tune_model").pool == "vertex_tuning"
    # dag.test() runs tasks whatever their pool; the scheduler leaves a task of a pool
    # that does not exist unscheduled, so a deployment creates it (README).
    assert Pool.get_pool("vertex_tuning") is None


def test_the_tuned_model_is_evaluated_like_the_local_one(runs: dict[str, Any]) -> None:
    local = _record(runs["local"], "evaluate_model")["metrics"]
    tuned = _record(runs["vertex"], "evaluate_tuned")["metrics"]
    # The same report, plus the unanswered counts; a Keras model's own training adds the
    # cross-validation it was chosen by and the calibration baked into it.
    assert set(local) - {"cross_validation", "calibration"} <= set(tuned)
    assert set(tuned["comparison"]["differences"]) == {"majority", "tfidf_logreg", "champion"}
    assert tuned["rows"] == local["rows"] and tuned["dataset_version"] == local["dataset_version"]
    assert tuned["baselines"] == local["baselines"]  # same train and eval split
    assert tuned["champion"]["model_version"] == _record(runs["local"], "register_model")["subject"]
    assert {k: v for k, v in tuned["champion"].items() if k != "model_version"} == {
        k: v for k, v in local.items() if k in tuned["champion"] and k != "model_version"
    }
    # The fake model leaves some reviews unanswered: they are counted, as misses.
    assert tuned["answered"] + sum(tuned["unanswered"].values()) == tuned["rows"]
    assert 0 < tuned["answered"] < tuned["rows"]


def test_a_tuned_champion_is_compared_from_its_own_batch_predictions(runs: dict[str, Any]) -> None:
    first = _record(runs["vertex"], "evaluate_tuned")["metrics"]
    second = _record(runs["again"], "evaluate_tuned")["metrics"]
    champion = second["champion"]
    assert champion["model_version"] == _record(runs["vertex"], "register_model")["subject"]
    # The champion's predictions of the same eval split score exactly as it did as a challenger.
    assert {k: v for k, v in champion.items() if k != "model_version"} == {
        k: first[k] for k in champion if k != "model_version"
    }
    collect = _record(runs["again"], "vertex_champion_collect_batch")["metrics"]
    assert collect["registry_version"] == champion["model_version"] and collect["prompt_template"] == PROMPT
    jobs = runs["batch"].jobs
    assert len(jobs) == 3 and {j["model_name"] for j in jobs[1:]} == {
        _record(runs["again"], "tune_model")["tuned_model_name"],
        _record(runs["vertex"], "tune_model")["tuned_model_name"],
    }
    gate = _record(runs["again"], "gate")["metrics"]
    assert gate["champion"] == champion["model_version"] and gate["verdict"] == "reject"  # no gain: same answers


def _main_chain(data_root: str, record_id: str) -> list[tuple[str, str]]:
    """From a record, up the main line of its lineage: at each hop the input of the
    highest-ranked kind that has a producer (tuning files are a side branch)."""
    from reviewops.lineage.store import LineageStore

    rank = ["model_candidate", "dataset", "curated", "validated", "raw"]
    index = LineageStore(data_root).index()
    record = index.by_id[record_id]
    chain = [(record.dag_id, record.task_id)]
    while True:
        inputs = sorted((a for a in record.inputs if a.kind in rank), key=lambda a: rank.index(a.kind))
        producers = [(a.kind, index.producer(a, before=record.started_at)) for a in inputs]
        found = [(kind, p) for kind, p in producers if p is not None]
        if not found:
            return chain
        kind, record = found[0]
        chain.append((kind, record.task_id))


def test_the_lineage_chain_has_the_local_paths_shape(runs: dict[str, Any]) -> None:
    local = _main_chain(GS_ROOT, _record(runs["local"], "register_model")["record_id"])
    vertex = _main_chain(GS_ROOT, _record(runs["vertex"], "register_model")["record_id"])
    assert [kind for kind, _ in local] == [kind for kind, _ in vertex]
    assert [task for _, task in local] == [
        "register_model",
        "train_model",
        "snapshot_dataset",
        "transform",
        "validate",
        "ingest",
    ]
    assert [task for _, task in vertex] == ["register_model", "record_tuned_model", *[t for _, t in local[2:]]]
    # model <- candidate <- dataset <- curated weeks <- validated <- raw, on both paths.
    assert [kind for kind, _ in vertex][1:] == ["model_candidate", "dataset", "curated", "validated", "raw"]
    # The tuning files hang off the same dataset version.
    from reviewops.lineage.store import LineageStore

    index = LineageStore(GS_ROOT).index()
    record = index.by_id[_record(runs["vertex"], "record_tuned_model")["record_id"]]
    upstream = {r.task_id for r in index.upstream([record])}
    assert {"export_tuning_data", "snapshot_dataset"} <= upstream
