"""Parsing a DAG file must stay cheap: every task process parses its DAG file again, so a
heavy import at parse time is paid by every task of every run. In a fresh interpreter
(after ``import airflow``, which every parse has anyway), parsing each file in dags/ must
import no module of the Google Cloud client libraries, TensorFlow, scikit-learn, ray or
litellm (the Google provider's operators are built when their tasks run:
reviewops_airflow.provider.LazyProviderOperator)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("google.cloud", "google.genai", "vertexai", "tensorflow", "keras", "sklearn", "ray", "litellm", "numba", "llvmlite")

PROBE = """
import json, sys
import airflow  # noqa: F401  (paid by every parse; not what this measures)
from airflow.dag_processing.dagbag import DagBag

before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1])
heavy = tuple(sys.argv[2].split(","))
loaded = sorted(m for m in set(sys.modules) - before if m.startswith(heavy))
print(json.dumps({"errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids), "heavy": loaded}))
"""


def _parse(path: str, heavy: tuple[str, ...], tmp_path: os.PathLike[str]) -> dict[str, object]:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, path, ",".join(heavy)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("path", sorted((ROOT / "dags").glob("*.py")), ids=lambda p: p.stem)
def test_parsing_a_dag_file_imports_no_heavy_module(path: os.PathLike[str], tmp_path: os.PathLike[str]) -> None:
    result = _parse(str(path), HEAVY, tmp_path)
    assert result["errors"] == {} and result["dags"]
    assert result["heavy"] == [], f"parsing {path} imported {result['heavy'][:10]}"


def test_the_probe_sees_a_heavy_import(tmp_path: os.PathLike[str]) -> None:
    # The same probe on a DAG file that imports a provider operator at parse time.
    dag_file = ROOT / "tests" / "dags" / "heavy_dag_sample.txt"
    copy = os.path.join(str(tmp_path), "heavy_dag.py")
    with open(dag_file, encoding="utf-8") as src, open(copy, "w", encoding="utf-8") as dst:
        dst.write(src.read())
    result = _parse(copy, HEAVY, tmp_path)
    assert any(str(m).startswith("google.cloud") for m in result["heavy"])  # type: ignore[attr-defined]
