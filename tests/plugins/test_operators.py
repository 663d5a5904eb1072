"""Operators against real local files. The Airflow runtime context is replaced by a
small stand-in holding the upstream XComs; nothing else is faked."""

from __future__ import annotations

import datetime as dt
import errno
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException

from reviewops.contracts import MODEL_FILE
from reviewops.registry.store import Registry
from reviewops_airflow.operators import (
    IngestReviewsOperator,
    ScoreReviewsOperator,
    TransformReviewsOperator,
    ValidateReviewsOperator,
)
from tests.conftest import SHIPPED
from tests.plugins.stubs import StubTaskInstance

UTC = dt.UTC


def run(operator: Any, xcoms: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    ti = StubTaskInstance(task_id=operator.task_id, xcoms=xcoms or {})
    result: dict[str, Any] = operator.execute({"ti": ti, **context})
    return result


def weekly_ops(data_root: Path, week: str | None = "2017-11-27", source: Path = SHIPPED) -> tuple[Any, Any, Any]:
    common = {"source": str(source), "data_root": str(data_root)}
    return (
        IngestReviewsOperator(task_id="ingest", week=week, **common),
        ValidateReviewsOperator(task_id="validate", upstream={"raw": "ingest"}, **common),
        TransformReviewsOperator(task_id="transform", upstream={"validated": "validate"}, **common),
    )


def test_chain_hands_records_through_xcom_and_links_parents(data_root: Path) -> None:
    ingest, validate, transform = weekly_ops(data_root)
    raw = run(ingest)
    checked = run(validate, {"ingest": raw})
    curated = run(transform, {"validate": checked})

    assert raw["subject"] == checked["subject"] == curated["subject"] == "week=2017-11-27"
    assert checked["parents"] == [raw["record_id"]] and curated["parents"] == [checked["record_id"]]
    assert [a["kind"] for a in raw["inputs"]] == ["source"]
    assert raw["inputs"][0]["rows"] == 600
    (partition,) = [a for a in curated["outputs"] if a["kind"] == "curated"]
    days = pq.read_table(partition["uri"].removeprefix("file://"), columns=["review_date"]).column("review_date")
    assert partition["rows"] == len(days) > 0
    assert all(dt.date(2017, 11, 27) <= d < dt.date(2017, 12, 4) for d in days.to_pylist())
    assert checked["metrics"]["rows_read"] == raw["metrics"]["rows_read"]


def test_week_comes_from_the_data_interval_of_a_scheduled_run(data_root: Path) -> None:
    ingest, _, _ = weekly_ops(data_root, week="")
    record = run(
        ingest,
        data_interval_start=dt.datetime(2017, 11, 27, tzinfo=UTC),
        data_interval_end=dt.datetime(2017, 12, 4, tzinfo=UTC),
    )
    assert record["subject"] == "week=2017-11-27"


def test_zero_length_interval_fails_without_retry(data_root: Path) -> None:
    ingest, _, _ = weekly_ops(data_root, week="")
    moment = dt.datetime(2017, 12, 4, tzinfo=UTC)
    with pytest.raises(AirflowFailException, match="zero-length data interval"):
        run(ingest, data_interval_start=moment, data_interval_end=moment)


def test_changed_input_fails_the_consumer_naming_the_artifact(data_root: Path) -> None:
    ingest, validate, _ = weekly_ops(data_root)
    raw = run(ingest)
    raw_path = Path(raw["outputs"][0]["uri"].removeprefix("file://"))
    shutil.copy(SHIPPED, raw_path)  # someone overwrote the raw batch between the tasks
    with pytest.raises(AirflowFailException, match=r"raw.*changed since it was recorded: expected sha256"):
        run(validate, {"ingest": raw})


def test_scoring_without_a_champion_says_what_to_run(data_root: Path) -> None:
    ingest, validate, transform = weekly_ops(data_root)
    curated = run(transform, {"validate": run(validate, {"ingest": run(ingest)})})
    score = ScoreReviewsOperator(
        task_id="score", upstream={"curated": "transform"}, data_root=str(data_root), source=""
    )
    with pytest.raises(AirflowFailException, match="run the reviews_training DAG first"):
        run(score, {"transform": curated})


def test_missing_upstream_record_is_a_clear_failure(data_root: Path) -> None:
    _, validate, _ = weekly_ops(data_root)
    with pytest.raises(AirflowFailException, match="no lineage record from upstream task 'ingest'"):
        run(validate, {})


def test_a_run_may_not_point_its_source_or_data_root_outside_the_allowed_roots(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVIEWOPS_ALLOWED_ROOTS", f"{data_root}:{SHIPPED}")
    elsewhere = tmp_path / "elsewhere"
    private = tmp_path / "private"
    private.mkdir()
    (private / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----")
    for arguments in ({"data_root": str(elsewhere)}, {"data_root": "/etc"}, {"source": str(private)}):
        ingest = IngestReviewsOperator(
            task_id="ingest", week="2017-11-27", **{"source": str(SHIPPED), "data_root": str(data_root), **arguments}
        )
        with pytest.raises(AirflowFailException, match=r"is outside the roots this deployment allows") as raised:
            run(ingest)
        assert "\n" not in str(raised.value)
    assert not elsewhere.exists() and not (Path("/etc") / "raw").exists()
    assert list(data_root.iterdir()) == [], "refused before anything was read or written"


def test_a_damaged_lineage_record_does_not_stop_later_tasks(data_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    ingest, validate, _ = weekly_ops(data_root)
    raw = run(ingest)
    record_file = data_root / "lineage" / "records" / f"{raw['record_id']}.json"
    record_file.write_bytes(record_file.read_bytes()[:64])  # truncated

    checked = run(validate, {"ingest": raw})

    assert checked["parents"] == [raw["record_id"]]
    assert any(str(record_file) in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert (data_root / "lineage" / "damaged" / record_file.name).exists()


def _champion(data_root: Path) -> Path:
    """A registered, promoted version whose model file is a stand-in (never loaded here)."""
    registry = Registry(str(data_root))
    candidate = registry.candidates() / "m-aaaaaaaaaaaa.1"
    candidate.mkdir(parents=True)
    (candidate / MODEL_FILE).write_bytes(b"PK\x03\x04 a saved model")
    meta = {"version": "m-aaaaaaaaaaaa", "registered_at": "2024", "classes": ["negative", "neutral", "positive"]}
    folder, _ = registry.register(candidate, meta)  # type: ignore[arg-type]
    registry.promote("m-aaaaaaaaaaaa", "test", "test")
    return folder / MODEL_FILE


@pytest.mark.parametrize("model_version", ["../../elsewhere/m", "", "m-aaaaaaaaaaaa"])
def test_a_pinned_path_or_a_truncated_model_fails_the_score_task_in_one_line_without_retry(
    data_root: Path, model_version: str
) -> None:
    ingest, validate, transform = weekly_ops(data_root)
    curated = run(transform, {"validate": run(validate, {"ingest": run(ingest)})})
    model = _champion(data_root)
    model.write_bytes(model.read_bytes()[:4])  # truncated after registration
    score = ScoreReviewsOperator(
        task_id="score", upstream={"curated": "transform"}, data_root=str(data_root), model_version=model_version
    )

    with pytest.raises(AirflowFailException) as raised:
        run(score, {"transform": curated})

    message = str(raised.value)
    assert "\n" not in message
    if model_version.startswith(".."):
        assert message.startswith("'../../elsewhere/m' is not a model version id")
    else:
        assert "is not the file registered" in message and "reviewops models promote" in message
    assert not (data_root / "predictions").exists()


def test_a_transform_whose_lineage_record_cannot_be_written_publishes_no_partition(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch's partitions become visible only once a record describes them: a full
    # disk while the record is written leaves none of them, and the retry publishes all.
    from reviewops.lineage.store import LineageStore

    ingest, validate, transform = weekly_ops(data_root, week=None)
    ingest.whole_source = True
    raw = run(ingest)
    checked = run(validate, {"ingest": raw})
    real_write = LineageStore.write

    def full_disk(self: LineageStore, record: Any) -> None:
        if record.task_id == "transform":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, record)

    monkeypatch.setattr(LineageStore, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run(transform, {"validate": checked})
    assert not (data_root / "curated").exists() or not any((data_root / "curated").iterdir())
    monkeypatch.setattr(LineageStore, "write", real_write)
    curated = run(transform, {"validate": checked})
    published = sorted(p.parent.name for p in (data_root / "curated").glob("week=*/reviews.parquet"))
    assert published == sorted(a["uri"].rsplit("/", 2)[-2] for a in curated["outputs"] if a["kind"] == "curated")
    assert len(published) > 300  # every week of the shipped history, at once


def test_a_week_before_any_plausible_review_date_fails_ingest_without_retry(data_root: Path) -> None:
    ingest, _, _ = weekly_ops(data_root, week="1990-01-01")
    with pytest.raises(AirflowFailException, match="1990") as raised:
        run(ingest)
    assert "\n" not in str(raised.value)


def test_trials_are_cross_validated_and_the_best_is_compared_with_the_baseline_then_trained(data_root: Path) -> None:
    # Two quick trials on the shipped reviews, 2 folds and 2 epochs (about 10 s): the
    # records carry the out-of-fold scores, select_best the comparison on the same folds,
    # train_model bakes the chosen calibration into the candidate.
    from reviewops.modeling.search import plan_trials
    from reviewops.pipeline import curate_source
    from reviewops.storage.io import read_json
    from reviewops_airflow.operators import (
        SelectBestTrialOperator,
        SnapshotDatasetOperator,
        TrainModelOperator,
        TrainTrialOperator,
    )

    curate_source(data_root)
    common = {"data_root": str(data_root)}
    dataset = run(SnapshotDatasetOperator(task_id="snapshot_dataset", **common))
    trials = plan_trials({"ngrams": [1, 2], "epochs": [2], "max_tokens": [3000]}, 2)
    records = [
        run(
            TrainTrialOperator(
                task_id="train_trial", trial=t, folds=2, upstream={"dataset": "snapshot_dataset"}, **common
            ),
            {"snapshot_dataset": dataset},
        )
        for t in trials
    ]
    for record in records:
        metrics = record["metrics"]
        assert metrics["folds"] == 2 and metrics["rows"] == dataset["metrics"]["train_rows"]
        assert 0 < metrics["cv_macro_f1"] <= 1 and metrics["calibration"]["temperature"] > 0
        assert metrics["cv_balanced"] == round((metrics["cv_accuracy"] + metrics["cv_macro_f1"]) / 2, 4)
    best = run(
        SelectBestTrialOperator(
            task_id="select_best",
            upstream={"dataset": "snapshot_dataset"},
            upstream_many={"trials": "train_trial"},
            **common,
        ),
        {"snapshot_dataset": dataset, "train_trial": records},
    )
    chosen = max(records, key=lambda r: (r["metrics"]["cv_balanced"], r["metrics"]["cv_macro_f1"], r["subject"]))
    assert best["subject"] == chosen["subject"]
    cv = best["metrics"]["cross_validation"]
    assert cv["folds"] == 2 and set(cv["scores"]) == {"chosen", "tfidf_logreg", "majority"}
    assert cv["scores"]["chosen"] == {k: chosen["metrics"][f"cv_{k}"] for k in ("accuracy", "macro_f1")}
    assert cv["baseline"]["min_df"] == 2
    candidate = run(
        TrainModelOperator(
            task_id="train_model", upstream={"dataset": "snapshot_dataset", "best": "select_best"}, **common
        ),
        {"snapshot_dataset": dataset, "select_best": best},
    )
    training = read_json(Path(candidate["outputs"][1]["uri"].removeprefix("file://")))
    assert training["calibration"] == {k: chosen["metrics"]["calibration"][k] for k in ("offsets", "temperature")}
    assert training["cross_validation"] == cv


def test_a_fold_count_out_of_range_fails_the_trial_without_retry(data_root: Path) -> None:
    from reviewops.pipeline import curate_source
    from reviewops_airflow.operators import SnapshotDatasetOperator, TrainTrialOperator

    curate_source(data_root)
    dataset = run(SnapshotDatasetOperator(task_id="snapshot_dataset", data_root=str(data_root)))
    trial = {"label": "tfidf", "params": {"epochs": 1}}
    operator = TrainTrialOperator(
        task_id="train_trial", trial=trial, folds=1, upstream={"dataset": "snapshot_dataset"}, data_root=str(data_root)
    )
    with pytest.raises(AirflowFailException, match="folds must be a whole number from 2 to 10, got 1"):
        run(operator, {"snapshot_dataset": dataset})
