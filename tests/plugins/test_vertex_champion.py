"""The local training path with a Vertex AI champion: evaluate_model cannot predict with
it here, so it fails without retry and says what to do, instead of crashing on a missing
model.keras or comparing with nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from reviewops.lineage.record import Artifact
from reviewops_airflow.operators import EvaluateModelOperator
from tests.plugins.test_operators import run


def _record(task_id: str, *files: Path) -> dict[str, Any]:
    outputs = [Artifact.of_file(f, "x").__dict__ for f in files]
    return {
        "record_id": task_id,
        "dag_id": "reviews_training",
        "run_id": "r",
        "task_id": task_id,
        "try_number": 1,
        "subject": "m-candidate",
        "code_version": "test",
        "params": {},
        "inputs": [],
        "outputs": outputs,
        "parents": [],
        "metrics": {},
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:00:00+00:00",
    }


def test_evaluate_model_refuses_a_vertex_champion(data_root: Path, tmp_path: Path) -> None:
    from reviewops.registry.store import Registry
    from reviewops.storage.io import write_json

    version = data_root / "models" / "m-vertex"
    write_json(
        {
            "version": "m-vertex",
            "kind": "vertex",
            "vertex": {"tuned_model_name": "projects/p/locations/l/models/1@1"},
            "registered_at": "x",
        },
        version / "metadata.json",
    )
    write_json({"version": "m-vertex"}, data_root / "models" / "champion.json")
    assert Registry(str(data_root)).champion() == "m-vertex"
    (tmp_path / "model.keras").write_bytes(b"weights")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["fine"], "label": ["positive"]}), tmp_path / "eval.parquet")
    operator = EvaluateModelOperator(
        task_id="evaluate_model",
        upstream={"candidate": "train_model", "dataset": "snapshot_dataset"},
        data_root=str(data_root),
    )
    xcoms = {
        "train_model": _record("train_model", tmp_path / "model.keras"),
        "snapshot_dataset": _record("snapshot_dataset", tmp_path / "eval.parquet"),
    }
    with pytest.raises(AirflowFailException, match=r"cannot compare with the champion.*training_backend=vertex"):
        run(operator, xcoms)
