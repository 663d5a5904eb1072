"""Bad data on the DAG path: the initial load's and the weekly run's operators against real
local files, with the records they hand to XCom and what they log."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from reviewops_airflow.operators import IngestReviewsOperator, TransformReviewsOperator, ValidateReviewsOperator
from tests.conftest import shipped_records, write_shipped_slice
from tests.plugins.stubs import StubTaskInstance


def run(operator: Any, xcoms: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    ti = StubTaskInstance(task_id=operator.task_id, xcoms=xcoms or {})
    result: dict[str, Any] = operator.execute({"ti": ti, **context})
    return result


def initial_load(source: Path, data_root: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """reviews_initial_load's three tasks, wired as the DAG wires them."""
    common = {"source": str(source), "data_root": str(data_root)}
    raw = run(IngestReviewsOperator(task_id="ingest", whole_source=True, **common))
    checked = run(ValidateReviewsOperator(task_id="validate", upstream={"raw": "ingest"}, **common), {"ingest": raw})
    curated = run(
        TransformReviewsOperator(task_id="transform", upstream={"validated": "validate"}, **common),
        {"validate": checked},
    )
    return raw, checked, curated


@pytest.mark.parametrize(
    ("odd_date", "reason"), [("January 1, 1900", "too_old_date"), ("March 3, 2099", "future_date")]
)
def test_the_initial_load_quarantines_an_implausible_date_and_writes_one_week(
    odd_date: str, reason: str, tmp_path: Path, data_root: Path
) -> None:
    header, records = shipped_records()
    real = records[0]
    odd = [*real[:5], odd_date, real[6]]
    odd[0] = "900001"
    source = write_shipped_slice(tmp_path / "reviews.tsv", [real, odd], header)

    raw, checked, curated = initial_load(source, data_root)

    assert raw["metrics"]["rows_read"] == 2
    assert checked["metrics"]["reasons"] == {reason: 1}
    assert checked["metrics"]["rows_valid"] == 1
    assert curated["metrics"]["weeks_written"] == 1
    assert len(list((data_root / "curated").glob("week=*/reviews.parquet"))) == 1
    assert len(json.dumps(curated)) < 5_000  # the record in XCom: one week's, not thousands


def test_ingest_puts_no_content_of_a_rejected_private_file_in_its_record_or_log(
    tmp_path: Path, data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    header, records = shipped_records()
    drop = tmp_path / "drop"
    drop.mkdir()
    write_shipped_slice(drop / "reviews.tsv", records[:20], header)
    key = drop / "id_ed25519.csv"
    key.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    os.chmod(key, 0o600)
    ingest = IngestReviewsOperator(task_id="ingest", whole_source=True, source=str(drop), data_root=str(data_root))

    with caplog.at_level(logging.DEBUG):
        record = run(ingest)

    (rejected,) = record["metrics"]["files_rejected"]
    assert rejected["file"] == str(key)
    (copy,) = (data_root / "quarantine").rglob("files/id_ed25519.csv")
    assert oct(copy.stat().st_mode & 0o777) == oct(0o600)
    for secret in ("OPENSSH", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU"):
        assert secret not in json.dumps(record)
        assert secret not in caplog.text
