"""Strict DAG integrity: every DAG file imports cleanly and declaratively, and every
task a task reads from (by role, task-id argument or ``xcom_pull`` template) is upstream
of it."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from airflow.sdk import DAG, task_group
from airflow.sdk.definitions.mappedoperator import MappedOperator

from reviewops_airflow.base import ReviewOpsOperator
from reviewops_airflow.dag_defaults import START_DATE
from reviewops_airflow.provider import LazyProviderOperator
from tests.conftest import ROOT

DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
EXPECTED = {
    "reviews_initial_load",
    "reviews_training",
    "reviews_weekly",
    "reviews_prompt_evaluation",
    "reviews_rollout",
    "reviews_vertex_endpoint",
}
# DAGs that never read the review source (curated data, datasets, the request log).
NO_SOURCE = {"reviews_training", "reviews_prompt_evaluation", "reviews_rollout", "reviews_vertex_endpoint"}


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
    assert dag.start_date == START_DATE and dag.start_date.utcoffset().total_seconds() == 0
    # One rendering mode everywhere: a templated argument is the type its Param declares.
    assert dag.render_template_as_native_obj is True
    for task in dag.tasks:
        # A paid cloud job (Vertex AI tuning) may opt out of retries, never out of a timeout.
        paid_job = (
            isinstance(task, LazyProviderOperator)
            and task.operator.startswith("airflow.providers.google.")
            and task.execution_timeout
        )
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
    assert type(task) is LazyProviderOperator
    assert task.operator == f"{CreateBatchPredictionJobOperator.__module__}.{CreateBatchPredictionJobOperator.__name__}"
    for name in ("region", "project_id", "model_name", "gcs_source", "gcs_destination_prefix", "gcp_conn_id"):
        assert "xcom_pull(task_ids='prepare_batch'" in task.arguments[name], name
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


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_files_import_only_operators_params_and_the_shared_defaults(path: Path) -> None:
    """Cheap to parse: the SDK, operators (ours or a provider's), Params, assets and
    the shared defaults; never the domain's heavy modules."""
    allowed = ("__future__", "datetime", "airflow.sdk", "reviewops_airflow", "reviewops.config")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                provider_operator = name.startswith("airflow.providers.") and ".operators." in name
                assert provider_operator or name.split(".")[0] in allowed or name.startswith(allowed), (
                    f"{path.name} imports {name}"
                )


# ---------------------------------------------------------------------------------------
# Every edge a task reads along is a DAG edge. A role (``upstream={"raw": "ingest"}``)
# names the task whose record is read; the DAG's ``>>`` says when to run. The two are
# written apart on purpose (a role may name a far ancestor across a branch, which a direct
# edge would break), so this proves they agree.

TASK_IDS_IN_TEMPLATE = re.compile(r"""task_ids\s*=\s*['"]([^'"]+)['"]""")
TASK_ID_ARGUMENT = re.compile(r"_task(_id)?$")  # job_task_id, champion_predictions_task, ...


def _arguments(task: Any) -> dict[str, Any]:
    """The arguments a task was built with (a mapped operator's ``partial()`` arguments)."""
    return dict(task.partial_kwargs) if isinstance(task, MappedOperator) else vars(task)


def _operator_class(task: Any) -> type:
    return task.operator_class if isinstance(task, MappedOperator) else type(task)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def reads(task: Any) -> Iterator[tuple[str, str, bool]]:
    """``(how, task_id, one_record)`` for every task whose output ``task`` reads: its
    roles (every alternative of a tuple), its task-id arguments, and the ``task_ids`` of
    ``xcom_pull`` in its templates. ``one_record``: read as a single lineage record."""
    arguments = _arguments(task)
    if issubclass(_operator_class(task), ReviewOpsOperator):
        for role, task_ids in (arguments.get("upstream") or {}).items():
            for task_id in (task_ids,) if isinstance(task_ids, str) else task_ids:
                yield f"upstream role {role!r}", task_id, True
        for role, task_id in (arguments.get("upstream_many") or {}).items():
            yield f"upstream_many role {role!r}", task_id, False
    for name, value in arguments.items():
        if TASK_ID_ARGUMENT.search(name) and isinstance(value, str) and value:
            yield f"argument {name}", value, False
    for name in task.template_fields:
        for text in _strings(arguments.get(name)):
            for task_id in TASK_IDS_IN_TEMPLATE.findall(text):
                yield f"template {name}", task_id, False


def _ancestors(dag: DAG, task: Any) -> set[str]:
    seen: set[str] = set()
    todo = list(task.upstream_task_ids)
    while todo:
        task_id = todo.pop()
        if task_id not in seen:
            seen.add(task_id)
            todo.extend(dag.task_dict[task_id].upstream_task_ids)
    return seen


def _is_mapped(task: Any) -> bool:
    return isinstance(task, MappedOperator) or task.get_closest_mapped_task_group() is not None


def _reads_its_own_map_index(reader: Any, producer: Any) -> bool:
    """A single record of a mapped producer is only right for a reader in the same mapped
    task group that pulls its own map index (``MapIndexAwareOperator``); anything else
    pulls every map index at once."""
    group = producer.get_closest_mapped_task_group()
    return (
        group is not None
        and not isinstance(producer, MappedOperator)
        and reader.get_closest_mapped_task_group() is group
        and _operator_class(reader).pull_upstream is not ReviewOpsOperator.pull_upstream
    )


def reads_not_upstream(dag: DAG) -> list[str]:
    """What is wrong with the reads of every task of ``dag``: empty when each task it
    reads from exists and is upstream of it, and a single record is never read from a
    mapped task except by map index inside the same mapped task group."""
    problems = []
    for task in dag.tasks:
        upstream = _ancestors(dag, task)
        for how, task_id, one_record in reads(task):
            where = f"{dag.dag_id}.{task.task_id}: {how} names {task_id!r}"
            producer = dag.task_dict.get(task_id)
            if producer is None:
                problems.append(f"{where}, which is no task of this DAG")
            elif task_id not in upstream:
                problems.append(f"{where}, which is not upstream of it: add the edge")
            elif one_record and _is_mapped(producer) and not _reads_its_own_map_index(task, producer):
                problems.append(
                    f"{where}, a mapped task: read all its records with upstream_many, or read one "
                    "from inside its mapped task group with a map-index-aware operator"
                )
    return problems


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_every_task_a_task_reads_from_is_upstream_of_it(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert reads_not_upstream(dag) == []
    # The check sees every role (a vacuous pass would prove nothing).
    roles = [r for t in dag.tasks for r in reads(t) if r[0].startswith("upstream")]
    assert roles, dag_id


def test_the_read_check_covers_branches_mapping_and_templates(dagbag: Any) -> None:
    """The shapes the real DAGs use reach the check: alternatives of a branch, a mapped
    operator's partial arguments, a mapped task group reading by map index, templates."""
    found = {
        (d.dag_id, t.task_id, how, task_id)
        for d in dagbag.dags.values()
        for t in d.tasks
        for how, task_id, _ in reads(t)
    }
    training, prompts = "reviews_training", "reviews_prompt_evaluation"
    assert {
        (training, "gate", "upstream role 'evaluation'", "evaluate_tuned"),  # a branch alternative
        (training, "train_trial", "upstream role 'dataset'", "snapshot_dataset"),  # partial() of a mapped task
        (training, "record_tuned_model", "template tuned_model", "tune_model"),
        (training, "evaluate_tuned", "argument champion_predictions_task", "vertex_champion_collect_batch"),
        (prompts, "evaluate_prompt.score_prompt", "upstream role 'predictions'", "evaluate_prompt.collect_batch"),
        (prompts, "select_prompt", "upstream_many role 'scores'", "evaluate_prompt.score_prompt"),
    } <= found


def _role_without_edge() -> DAG:
    from reviewops_airflow.operators import IngestReviewsOperator, ValidateReviewsOperator

    with DAG("role_without_edge", schedule=None, start_date=START_DATE) as dag:
        IngestReviewsOperator(task_id="ingest")
        ValidateReviewsOperator(task_id="validate", upstream={"raw": "ingest"})
    return dag


def _edge_the_wrong_way() -> DAG:
    from reviewops_airflow.operators import IngestReviewsOperator, ValidateReviewsOperator

    with DAG("edge_the_wrong_way", schedule=None, start_date=START_DATE) as dag:
        ingest = IngestReviewsOperator(task_id="ingest")
        validate = ValidateReviewsOperator(task_id="validate", upstream={"raw": "ingest"})
        validate >> ingest
    return dag


def _misspelt_role() -> DAG:
    from reviewops_airflow.operators import IngestReviewsOperator, ValidateReviewsOperator

    with DAG("misspelt_role", schedule=None, start_date=START_DATE) as dag:
        ingest = IngestReviewsOperator(task_id="ingest")
        validate = ValidateReviewsOperator(task_id="validate", upstream={"raw": "injest"})
        ingest >> validate
    return dag


def _one_branch_not_upstream() -> DAG:
    from reviewops_airflow.operators import GateModelOperator, SnapshotDatasetOperator

    with DAG("one_branch_not_upstream", schedule=None, start_date=START_DATE) as dag:
        evaluate_model = SnapshotDatasetOperator(task_id="evaluate_model")
        SnapshotDatasetOperator(task_id="evaluate_tuned")
        gate = GateModelOperator(task_id="gate", upstream={"evaluation": ("evaluate_model", "evaluate_tuned")})
        evaluate_model >> gate  # evaluate_tuned >> gate forgotten
    return dag


def _mapped_operator_role() -> DAG:
    from reviewops_airflow.operators import PlanTrialsOperator, SnapshotDatasetOperator, TrainTrialOperator

    with DAG("mapped_operator_role", schedule=None, start_date=START_DATE) as dag:
        SnapshotDatasetOperator(task_id="snapshot_dataset")
        plan_trials = PlanTrialsOperator(task_id="plan_trials")  # not after snapshot_dataset
        TrainTrialOperator.partial(task_id="train_trial", upstream={"dataset": "snapshot_dataset"}).expand(
            trial=plan_trials.output
        )
    return dag


def _template_reads_downstream() -> DAG:
    from reviewops_airflow.operators import SnapshotDatasetOperator
    from reviewops_airflow.vertex_tuning import RecordTunedModelOperator

    with DAG("template_reads_downstream", schedule=None, start_date=START_DATE) as dag:
        record = RecordTunedModelOperator(
            task_id="record_tuned_model", tuned_model="{{ ti.xcom_pull(task_ids='tune_model') }}"
        )
        record >> SnapshotDatasetOperator(task_id="tune_model")
    return dag


def _one_record_from_a_mapped_task() -> DAG:
    from reviewops_airflow.operators import PlanTrialsOperator, TrainModelOperator, TrainTrialOperator

    with DAG("one_record_from_a_mapped_task", schedule=None, start_date=START_DATE) as dag:
        plan_trials = PlanTrialsOperator(task_id="plan_trials")
        train_trial = TrainTrialOperator.partial(task_id="train_trial").expand(trial=plan_trials.output)
        train_trial >> TrainModelOperator(task_id="train_model", upstream={"best": "train_trial"})
    return dag


def _mapped_group_read_without_map_index() -> DAG:
    from reviewops_airflow.operators import IngestReviewsOperator, ValidateReviewsOperator

    @task_group(group_id="per_week")
    def per_week(week: str) -> None:
        ingest = IngestReviewsOperator(task_id="ingest", week=week)
        # ValidateReviewsOperator pulls every map index: it is not map-index aware.
        ingest >> ValidateReviewsOperator(task_id="validate", upstream={"raw": "per_week.ingest"})

    with DAG("mapped_group_read_without_map_index", schedule=None, start_date=START_DATE) as dag:
        per_week.expand(week=["2017-11-20", "2017-11-27"])
    return dag


BROKEN: dict[str, tuple[Callable[[], DAG], str]] = {
    "role without edge": (
        _role_without_edge,
        "role_without_edge.validate: upstream role 'raw' names 'ingest', which is not upstream of it",
    ),
    "edge the wrong way": (
        _edge_the_wrong_way,
        "edge_the_wrong_way.validate: upstream role 'raw' names 'ingest', which is not upstream of it",
    ),
    "misspelt role": (
        _misspelt_role,
        "misspelt_role.validate: upstream role 'raw' names 'injest', which is no task of this DAG",
    ),
    "one branch not upstream": (
        _one_branch_not_upstream,
        "one_branch_not_upstream.gate: upstream role 'evaluation' names 'evaluate_tuned', which is not upstream",
    ),
    "mapped operator role": (
        _mapped_operator_role,
        "mapped_operator_role.train_trial: upstream role 'dataset' names 'snapshot_dataset', which is not upstream",
    ),
    "template reads downstream": (
        _template_reads_downstream,
        "template_reads_downstream.record_tuned_model: template tuned_model names 'tune_model', which is not upstream",
    ),
    "one record from a mapped task": (
        _one_record_from_a_mapped_task,
        "one_record_from_a_mapped_task.train_model: upstream role 'best' names 'train_trial', a mapped task",
    ),
    "mapped group read without map index": (
        _mapped_group_read_without_map_index,
        "mapped_group_read_without_map_index.per_week.validate: upstream role 'raw' names 'per_week.ingest', "
        "a mapped task",
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_the_read_check_fails_when_a_read_task_is_not_upstream(case: str) -> None:
    build, expected = BROKEN[case]
    problems = reads_not_upstream(build())
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_a_map_index_aware_reader_inside_the_mapped_group_passes() -> None:
    from reviewops_airflow.operators import IngestReviewsOperator
    from reviewops_airflow.prompt_evaluation import ScorePromptOperator

    @task_group(group_id="per_week")
    def per_week(week: str) -> None:
        ingest = IngestReviewsOperator(task_id="ingest", week=week)
        ingest >> ScorePromptOperator(task_id="score_prompt", upstream={"predictions": "per_week.ingest"})

    with DAG("map_index_aware", schedule=None, start_date=START_DATE) as dag:
        per_week.expand(week=["2017-11-20", "2017-11-27"])
    assert reads_not_upstream(dag) == []


# ---------------------------------------------------------------------------------------
# Native rendering: each ``{{ params.x }}`` argument arrives as the type its Param declares.

PARAM_TEMPLATE = re.compile(r"^\{\{\s*params\.(\w+)\s*\}\}$")
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
    "object": dict,
    "array": list,
}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_params_render_as_their_declared_types(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    env = dag.get_template_env()
    defaults = {name: dag.params[name] for name in dag.params}
    rendered = 0
    for task in dag.tasks:
        arguments = _arguments(task)
        for field in task.template_fields:
            template = arguments.get(field)
            match = PARAM_TEMPLATE.match(template) if isinstance(template, str) else None
            if not match:
                continue
            name = match.group(1)
            assert name in dag.params, f"{dag_id}.{task.task_id}.{field} renders undeclared Param {name}"
            value = env.from_string(template).render(params=defaults)
            declared = dag.params.get_param(name).schema["type"]
            assert isinstance(value, JSON_TYPES[declared]) and isinstance(value, bool) == (declared == "boolean"), (
                f"{dag_id}.{task.task_id}.{field}: {value!r} is not a {declared}"
            )
            rendered += 1
    assert rendered, dag_id


# Native rendering hands a string to ast.literal_eval: a value that reads as a Python
# literal would change type. The shapes our string Params take do not.
STRING_PARAM_VALUES = [
    "2017-11-27",  # week, window_start, window_end
    "2017-01-02",
    "/tmp/reviewops 2017/data-root",  # data_root, source
    "gs://reviewops-bucket/prod",
    "bigquery://my-project.reviews.drugs_com",
    "data/*.tsv",
    "m-0123456789ab",  # model_version
    "ds-20240101a",  # dataset
    "review_sentiment@v2",  # prompt
    "projects/123/locations/us-central1/models/456@1",  # model
    "vertex",  # scoring_backend, training_backend
]


@pytest.mark.parametrize("value", STRING_PARAM_VALUES)
def test_string_params_stay_strings_when_rendered_natively(dagbag: Any, value: str) -> None:
    env = dagbag.dags["reviews_weekly"].get_template_env()
    assert env.from_string("{{ params.x }}").render(params={"x": value}) == value
