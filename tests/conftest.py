"""Test-wide set-up: a private Airflow home and data root for the whole session.

The environment is set here, at import, before anything imports Airflow: Airflow reads
its configuration once, when it is first imported.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "include" / "reviewops" / "data" / "reviews.tsv"

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="reviewops-tests-"))
_AIRFLOW_HOME = _SESSION_DIR / "airflow"
_AIRFLOW_HOME.mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "REVIEWOPS_DATA_ROOT": str(_SESSION_DIR / "default-data-root"),
        # Runs in the tests use temporary folders and the fake object store's buckets as
        # their source and data root (tests/include/test_allowed_roots.py sets its own).
        "REVIEWOPS_ALLOWED_ROOTS": f"{tempfile.gettempdir()}:{SHIPPED}:gs://:bigquery://",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
)
os.environ.pop("REVIEWOPS_SOURCE", None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB (about 6 s, once per session)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        capture_output=True,
    )
    return _AIRFLOW_HOME


def shipped_records() -> tuple[list[str], list[list[str]]]:
    """Header and records of the shipped file (review texts may span lines)."""
    with open(SHIPPED, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    return rows[0], rows[1:]


def write_shipped_slice(path: Path, records: list[list[str]], header: list[str] | None = None) -> Path:
    """Write records in the shipped format (tab-separated, triple-quoted text)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header or shipped_records()[0])
        writer.writerows(records)
    return path


@pytest.fixture
def data_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "data-root"
    root.mkdir()
    yield root
