"""The DAGs' Params as a trust boundary: every number a trigger may set has a minimum and
a maximum, versions and datasets are ids (never paths), and the forms refuse what the
domain refuses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import pytest
from airflow.sdk import Param
from airflow.sdk.exceptions import ParamValidationError

from reviewops.config import DEFAULT_SEARCH_SPACE, HYPERPARAMETER_RANGES, MAX_TRIALS
from reviewops.modeling.training import REPRESENTATIONS, TrainParams
from reviewops.monitoring.thresholds import Thresholds
from reviewops_airflow import params
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return dict(bag.dags)


def numbers(schema: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every numeric schema in ``schema``, nested ones (object properties, array items) too."""
    kinds = schema.get("type")
    if kinds in ("number", "integer"):
        yield where, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from numbers(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from numbers(schema["items"], f"{where}[]")


def test_every_number_a_trigger_may_set_has_a_minimum_and_a_maximum(dags: dict[str, Any]) -> None:
    found = []
    for dag_id, dag in dags.items():
        for name in dag.params:
            for where, schema in numbers(dag.params.get_param(name).schema, f"{dag_id}.{name}"):
                found.append(where)
                assert "minimum" in schema and "maximum" in schema, f"{where} is unbounded"
                assert schema["minimum"] <= schema["maximum"], where
    assert "reviews_training.min_macro_f1_gain" in found and "reviews_weekly.thresholds.min_accuracy" in found
    assert "reviews_training.search_space.epochs[]" in found and "reviews_training.hyperparameters.seed" in found


def test_an_object_param_accepts_only_the_names_it_knows(dags: dict[str, Any]) -> None:
    for dag in dags.values():
        for name in dag.params:
            schema = dag.params.get_param(name).schema
            if schema["type"] == "object":
                assert schema.get("additionalProperties") is False, f"{dag.dag_id}.{name}"


def test_the_forms_know_every_hyperparameter_and_threshold_of_the_domain() -> None:
    assert set(params.search_space_param().schema["properties"]) == {f.name for f in fields(TrainParams)}
    assert set(params.hyperparameters_param().schema["properties"]) == {f.name for f in fields(TrainParams)}
    assert params.search_space_param().schema["properties"]["representation"]["items"]["enum"] == list(REPRESENTATIONS)
    assert set(params.thresholds_param().schema["properties"]) == {f.name for f in fields(Thresholds)}
    booleans_and_names = {"representation", "class_weighting", "sublinear_tf"}
    assert set(HYPERPARAMETER_RANGES) | booleans_and_names == {f.name for f in fields(TrainParams)}
    # The defaults are inside the ranges.
    params.search_space_param().resolve(DEFAULT_SEARCH_SPACE)
    params.thresholds_param().resolve(Thresholds().as_dict())
    params.hyperparameters_param().resolve(dict(TrainParams().as_dict()))


def _refused(param: Param, value: Any) -> bool:
    try:
        param.resolve(value)
    except ParamValidationError:
        return True
    return False


@pytest.mark.parametrize(
    ("param", "value"),
    [
        (lambda: params.gate_margin_param(0.01, "gain"), -1),
        (lambda: params.gate_margin_param(0.01, "gain"), 1.5),
        (params.max_trials_param, 0),
        (params.max_trials_param, MAX_TRIALS + 1),
        (params.search_space_param, {"hidden_units": list(range(1000)), "epochs": [1], "dropout": [0.1, 0.2, 0.3]}),
        (params.search_space_param, {"epochs": [10**9]}),
        (params.search_space_param, {"epochs": []}),
        (params.search_space_param, {"epochs": 5}),
        (params.search_space_param, {"hiden_units": [1]}),
        (params.hyperparameters_param, {"epochs": -1}),
        (params.hyperparameters_param, {"dropout": 2.0}),
        (params.thresholds_param, {"min_accuracy": 1.5}),
        (params.thresholds_param, {"max_prediction_psi": -0.1}),
        (params.thresholds_param, {"min_volume": 10**12}),
        (params.thresholds_param, {"max_psi": 0.3}),
        (lambda: params.model_version_param("pin"), "../../elsewhere/m"),
        (lambda: params.model_version_param("pin"), "m-aaaa/../../x"),
        (lambda: params.dataset_param("dataset"), "../ds-1"),
        (lambda: params.prompt_param("use"), "../../etc/passwd"),
    ],
)
def test_the_form_refuses_what_the_domain_refuses(param: Any, value: Any) -> None:
    assert _refused(param(), value)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        (lambda: params.gate_margin_param(0.01, "gain"), 0),
        (params.search_space_param, {"hidden_units": list(range(100)), "epochs": [5]}),
        (params.hyperparameters_param, {"epochs": 5}),
        (params.thresholds_param, {"min_volume": 0, "max_safety_rate": 1.0, "min_accuracy": 0.0}),
        (lambda: params.model_version_param("pin"), "m-0123456789ab"),
        (lambda: params.model_version_param("pin"), ""),
        (lambda: params.dataset_param("dataset"), "ds-11fc158a5a84"),
        (lambda: params.prompt_param("use"), "review_sentiment@v2"),
    ],
)
def test_the_form_accepts_what_runs_use(param: Any, value: Any) -> None:
    assert not _refused(param(), value)
