"""Strict DAG integrity: every DAG file imports cleanly and declaratively."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.conftest import ROOT

DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
EXPECTED = {"reviews_initial_load", "reviews_training", "reviews_weekly", "reviews_prompt_evaluation"}
# DAGs that read curated data or datasets only, never the review source.
NO_SOURCE = {"reviews_training", "reviews_prompt_evaluation"}


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook, Variable

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"DAG parsing must not read Connections or Variables: {args}")

    with (
        mock.patch.object(BaseHook, "get_connection", side_effect=forbidden),
        mock.patch.object(Variable, "get", side_effect=forbidden),
    ):
        return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_file_imports_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_is_declared_on_purpose(dagbag: Any, path: Path) -> None:
    dag = dagbag.dags[path.stem]  # dag_id equals the file's stem
    assert dag.doc_md and dag.doc_md.strip().startswith(f"### {dag.dag_id}")
    assert "reviewops" in dag.tags and len(dag.tags) >= 2
    assert dag.catchup is False
    assert dag.start_date is not None and dag.start_date.utcoffset().total_seconds() == 0
    for task in dag.tasks:
        # A paid cloud job (Vertex AI tuning) may opt out of retries, never out of a timeout.
        paid_job = type(task).__module__.startswith("airflow.providers.google") and task.execution_timeout
        assert task.retries >= 1 or paid_job, f"{dag.dag_id}.{task.task_id} has no retries"
        assert task.owner == "reviewops"
    assert "data_root" in dag.params
    assert ("source" in dag.params) == (dag.dag_id not in NO_SOURCE)


def test_weekly_window_is_a_real_week(dagbag: Any) -> None:
    """A bare cron string gives a zero-length data interval in Airflow 3."""
    import datetime as dt

    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags["reviews_weekly"]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    from airflow.serialization.encoders import coerce_to_core_timetable

    core = coerce_to_core_timetable(dag.timetable)
    interval = core.infer_manual_data_interval(run_after=dt.datetime(2017, 12, 4, tzinfo=dt.UTC))
    assert interval.start == dt.datetime(2017, 11, 27, tzinfo=dt.UTC)
    assert interval.end - interval.start == dt.timedelta(days=7)


def test_dag_files_only_wire() -> None:
    """No function or class definitions in DAG files: logic lives in include/ and plugins/."""
    import ast

    for path in DAG_FILES:
        tree = ast.parse(path.read_text())
        defined = [
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        ]
        assert defined == [], f"{path.name} defines {defined}"


def test_parsing_imports_neither_tensorflow_nor_pandas_heavy_work() -> None:
    """TensorFlow costs ~10 s per import: it must never be imported while parsing DAGs."""
    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r})\n"
        "print(json.dumps({'errors': len(bag.import_errors), 'tf': 'tensorflow' in sys.modules,"
        " 'keras': 'keras' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"errors": 0, "tf": False, "keras": False}


def test_weekly_scoring_branches_to_the_providers_batch_job_templated_from_prepare(dagbag: Any) -> None:
    from airflow.providers.google.cloud.operators.vertex_ai.batch_prediction_job import (
        CreateBatchPredictionJobOperator,
    )

    weekly = dagbag.dags["reviews_weekly"]
    assert set(weekly.get_task("choose_scoring_backend").downstream_task_ids) == {"score", "prepare_batch"}
    task = weekly.get_task("batch_predict")
    assert type(task) is CreateBatchPredictionJobOperator
    for name in ("region", "project_id", "model_name", "gcs_source", "gcs_destination_prefix", "gcp_conn_id"):
        assert "xcom_pull(task_ids='prepare_batch'" in getattr(task, name), name
    assert task.execution_timeout is not None and task.retries == 0  # a retry would bill a second job
    monitor = weekly.get_task("monitor")
    assert monitor.trigger_rule == "none_failed_min_one_success"
    assert monitor.upstream_task_ids == {"score", "collect_batch"}
    assert {"scoring_backend", "prompt"} <= set(weekly.params)


def test_prompt_evaluation_maps_one_batch_job_per_template(dagbag: Any) -> None:
    dag = dagbag.dags["reviews_prompt_evaluation"]
    assert dag.schedule is None or dag.timetable.summary in ("None", "")
    group = dag.task_group_dict["evaluate_prompt"]
    assert sorted(t.split(".")[-1] for t in group.children) == [
        "batch_predict",
        "collect_batch",
        "prepare_batch",
        "score_prompt",
    ]
    assert dag.get_task("select_prompt").upstream_task_ids == {"evaluate_prompt.score_prompt"}
    assert {"dataset", "prompts", "model", "data_root"} == set(dag.params)
