"""Weekly backfills through the real scheduler on PostgreSQL.

``airflow backfill create --dag-id reviews_weekly`` over four weeks with
``--max-active-runs 2`` (LocalExecutor, parallelism 2), then the same range again with
``--reprocess-behavior completed``. The champion model is trained beforehand by calling
the domain functions directly (no Airflow), while the Airflow services start.

What the timetable does with the range (``CronDataIntervalTimetable("0 0 * * 1")``): a
run's logical date is the start of its data interval, so ``--from-date 2017-11-13
--to-date 2017-12-04`` gives the four runs whose weeks start on the Mondays 2017-11-13 to
2017-12-04, both included (run ids are built from the interval's end, a week later).
A backfill of a paused DAG creates its runs but the scheduler leaves them queued, so the
DAG is unpaused first; scheduled runs are off in this stack, so only the backfill runs.
The weeks include one without reviews (2017-12-04), so the backfill passes the monitoring
gate's ``min_volume`` of 0 in its conf (``--dag-run-conf``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.config import SHIPPED_REVIEWS as SHIPPED
from tests.system.airflow_stack import AirflowStack, champion_of, start_champion_build

pytestmark = pytest.mark.integration

DAG_ID = "reviews_weekly"
FROM_DATE, TO_DATE = "2017-11-13", "2017-12-04"
WEEKS = [dt.date(2017, 11, 13) + dt.timedelta(weeks=n) for n in range(4)]  # 2017-12-04 has no reviews
MAX_ACTIVE_RUNS = 2
# The weekly monitoring gate (check_week) treats a week without reviews as a breach, as
# it should for the week that just ended; history has quiet weeks, and a backfill of it
# says so per run. Backfill conf is validated against the DAG's Params.
BACKFILL_CONF = json.dumps({"thresholds": {"min_volume": 0}})
BACKFILL_TIMEOUT = 300


@dataclass(frozen=True)
class Partition:
    """One week's output file as found after a backfill."""

    path: Path
    sha256: str
    inode: int
    mtime_ns: int
    table: pa.Table


@dataclass(frozen=True)
class Backfill:
    """What a finished backfill left: its runs and task instances, the lineage records
    (XCom) and the partitions of the backfilled weeks."""

    runs: list[dict[str, Any]]
    task_instances: list[dict[str, Any]]
    records: dict[tuple[str, str], Any]
    curated: dict[dt.date, Partition]
    predictions: dict[dt.date, Partition]


@dataclass(frozen=True)
class Setup:
    stack: AirflowStack
    champion: str
    curated_weeks_before: list[str]
    initial_load_sha256: dict[dt.date, str]  # the backfilled weeks' partitions as the whole-history load wrote them
    dry_run: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The stack with the DAG unpaused, a registered champion in its data root and the
    curated partitions of the weeks to backfill removed (so the backfill has to write
    them); and the backfill's dry run."""
    stack = AirflowStack(
        tmp_path_factory.mktemp("backfill"),
        dag_ids=[DAG_ID],
        env={"REVIEWOPS_SOURCE": str(SHIPPED)},
    )
    build = start_champion_build(stack, "test_backfill")
    try:
        stack.start()
        dry_run = _backfill_cli(stack, "--dry-run")
        # Unpausing creates no run here (scheduled runs are off): only the backfill runs.
        stack.run_cli("dags", "unpause", DAG_ID)
        champion = champion_of(build)
        curated = stack.data_root / "curated"
        before = sorted(p.name for p in curated.iterdir())
        initial = {week: p.sha256 for week, p in _partitions(curated, "reviews.parquet").items()}
        for week in WEEKS:
            shutil.rmtree(curated / f"week={week}")
        yield Setup(stack, champion, before, initial, dry_run)
    finally:
        if build.poll() is None:
            build.kill()
            build.communicate()
        stack.stop()


def _backfill_cli(stack: AirflowStack, *extra: str) -> str:
    args = ["backfill", "create", "--dag-id", DAG_ID, "--from-date", FROM_DATE, "--to-date", TO_DATE]
    args += ["--dag-run-conf", BACKFILL_CONF, *extra]
    return stack.run_cli(*args).stdout


def _finished_backfill(stack: AirflowStack, until_completed: bool = True) -> Backfill:
    runs = stack.wait_for_backfill(DAG_ID, timeout=BACKFILL_TIMEOUT, until_completed=until_completed)
    return Backfill(
        runs=runs,
        task_instances=stack.task_instances(DAG_ID, [r["run_id"] for r in runs]),
        records=stack.xcom_values(DAG_ID),
        curated=_partitions(stack.data_root / "curated", "reviews.parquet"),
        predictions=_partitions(stack.data_root / "predictions", "predictions.parquet"),
    )


def _partitions(folder: Path, name: str) -> dict[dt.date, Partition]:
    from reviewops.storage.io import sha256_file

    found = {}
    for week in WEEKS:
        path = folder / f"week={week}" / name
        if path.exists():
            stat = path.stat()
            found[week] = Partition(path, sha256_file(path), stat.st_ino, stat.st_mtime_ns, pq.read_table(path))
    return found


@pytest.fixture(scope="module")
def first(setup: Setup) -> Backfill:
    _backfill_cli(setup.stack, "--max-active-runs", str(MAX_ACTIVE_RUNS))
    return _finished_backfill(setup.stack)


@pytest.fixture(scope="module")
def second(setup: Setup, first: Backfill) -> Backfill:
    _backfill_cli(setup.stack, "--max-active-runs", str(MAX_ACTIVE_RUNS), "--reprocess-behavior", "completed")
    # The last backfill: no need to wait for the scheduler to mark it complete (every 30 s).
    return _finished_backfill(setup.stack, until_completed=False)


def test_dry_run_maps_the_range_to_one_run_per_week(setup: Setup) -> None:
    dates = re.findall(r"^\|\s*(\d{4}-\d{2}-\d{2}) 00:00:00\+00:00\s*\|", setup.dry_run, flags=re.MULTILINE)
    assert [dt.date.fromisoformat(d) for d in dates] == WEEKS, setup.dry_run


def test_backfill_runs_each_week_once_and_every_run_succeeds(setup: Setup, first: Backfill) -> None:
    assert [r["state"] for r in first.runs] == ["success"] * len(WEEKS), setup.stack.diagnostics(DAG_ID)
    assert [r["data_interval_start"].date() for r in first.runs] == WEEKS
    assert all(r["data_interval_end"] - r["data_interval_start"] == dt.timedelta(weeks=1) for r in first.runs)
    assert {r["run_type"] for r in first.runs} == {"backfill"}
    tasks = {t["task_id"] for t in first.task_instances}
    assert {"ingest", "validate", "transform", "score"} <= tasks
    # The local scoring path ran; the Vertex AI branch was skipped by choose_scoring_backend.
    vertex_branch = {"prepare_batch", "batch_predict", "collect_batch"}
    states = {(t["task_id"], t["state"]) for t in first.task_instances}
    assert {state for task, state in states if task not in vertex_branch} == {"success"}
    assert {state for task, state in states if task in vertex_branch} == {"skipped"}
    assert len(first.task_instances) == len(tasks) * len(WEEKS)
    # No other run of the DAG exists: scheduled runs are off, so nothing else wrote a week.
    assert len(setup.stack.runs(DAG_ID)) == len(WEEKS)


def test_backfill_writes_exactly_one_partition_per_week(setup: Setup, first: Backfill) -> None:
    data_root = setup.stack.data_root
    assert sorted(p.name for p in (data_root / "predictions").iterdir()) == [f"week={w}" for w in WEEKS]
    assert sorted(p.name for p in (data_root / "curated").iterdir()) == setup.curated_weeks_before
    assert sorted(first.curated) == sorted(first.predictions) == WEEKS
    for week in WEEKS:
        predictions, curated = first.predictions[week].table, first.curated[week].table
        assert [p.name for p in first.predictions[week].path.parent.iterdir()] == ["predictions.parquet"]
        assert [p.name for p in first.curated[week].path.parent.iterdir()] == ["reviews.parquet"]
        assert predictions.num_rows == curated.num_rows, week
        assert sorted(predictions.column("review_id").to_pylist()) == sorted(curated.column("review_id").to_pylist())
        assert set(predictions.column("week").to_pylist()) <= {week}
        assert all(week <= d < week + dt.timedelta(weeks=1) for d in curated.column("review_date").to_pylist())
        assert set(predictions.column("model_version").to_pylist()) <= {setup.champion}
        # A week curated alone is the same partition as that week of the whole-history load.
        assert first.curated[week].sha256 == setup.initial_load_sha256[week], week
    rows = [first.curated[w].table.num_rows for w in WEEKS]
    assert rows[-1] == 0 and all(rows[:-1]), rows  # an empty week is processed too


def test_every_run_processed_its_own_week(first: Backfill) -> None:
    """No two runs collide: each run's lineage records name the week of its data interval."""
    for run in first.runs:
        week = run["data_interval_start"].date().isoformat()
        ingest, score = first.records[(run["run_id"], "ingest")], first.records[(run["run_id"], "score")]
        assert ingest["subject"] == f"week={week}", run["run_id"]
        assert ingest["metrics"]["window"] == {
            "start": week,
            "end": (run["data_interval_end"].date()).isoformat(),
        }
        assert score["metrics"]["week"] == week, run["run_id"]
        assert score["outputs"][0]["uri"].endswith(f"/predictions/week={week}/predictions.parquet")


def test_each_weeks_lineage_chain_is_complete_and_its_own(setup: Setup, first: Backfill) -> None:
    """Runs in parallel never mix lineage: from each week's predictions the chain walks up
    through that run's own tasks to the source file and the champion's training."""
    from reviewops.lineage.store import LineageStore

    index = LineageStore(setup.stack.data_root).index()
    own_records = []
    for run in first.runs:
        week = run["data_interval_start"].date().isoformat()
        target = setup.stack.data_root / "predictions" / f"week={week}" / "predictions.parquet"
        chain = index.upstream(index.resolve(str(target)))
        mine = {r.task_id for r in chain if r.run_id == run["run_id"]}
        assert mine == {"ingest", "validate", "transform", "score"}, (week, mine)
        assert not {r.run_id for r in chain if r.dag_id == DAG_ID} - {run["run_id"]}, week
        # The champion was built without Airflow (no records of its own): the score step
        # names the exact model file it used.
        assert any(a.kind == "model" and f"/models/{setup.champion}/" in a.uri for r in chain for a in r.inputs)
        assert any(a.kind == "source" for r in chain for a in r.inputs), week
        own_records.append({r.record_id for r in chain if r.run_id == run["run_id"]})
    assert len(set().union(*own_records)) == sum(len(records) for records in own_records)


def test_two_runs_ran_at_once_and_never_more(first: Backfill) -> None:
    run_intervals = [(r["start_date"], r["end_date"]) for r in first.runs]
    assert max_overlap(run_intervals) == MAX_ACTIVE_RUNS, run_intervals
    # The runs' tasks really executed side by side, not merely the runs' bookkeeping.
    tis = first.task_instances
    overlapping = [
        (a["run_id"], a["task_id"], b["run_id"], b["task_id"])
        for i, a in enumerate(tis)
        for b in tis[i + 1 :]
        if a["run_id"] != b["run_id"] and a["start_date"] < b["end_date"] and b["start_date"] < a["end_date"]
    ]
    assert overlapping, [(t["run_id"], t["task_id"], t["start_date"], t["end_date"]) for t in tis]


def test_reprocessing_completed_rewrites_identical_partitions(setup: Setup, first: Backfill, second: Backfill) -> None:
    assert [r["state"] for r in second.runs] == ["success"] * len(WEEKS), setup.stack.diagnostics(DAG_ID)
    # Reprocessing clears and re-runs the same runs; it creates no second run of a week.
    assert [r["run_id"] for r in second.runs] == [r["run_id"] for r in first.runs]
    assert len(setup.stack.runs(DAG_ID)) == len(WEEKS)
    assert max_overlap([(r["start_date"], r["end_date"]) for r in second.runs]) <= MAX_ACTIVE_RUNS
    for kind in ("curated", "predictions"):
        before, after = getattr(first, kind), getattr(second, kind)
        assert sorted(after) == WEEKS
        for week in WEEKS:
            old, new = before[week], after[week]
            assert (new.inode, new.mtime_ns) != (old.inode, old.mtime_ns), f"{kind} {week} was not rewritten"
            assert new.table.equals(old.table), f"{kind} {week} changed"
            assert new.sha256 == old.sha256, f"{kind} {week}: same table, different bytes"


def max_overlap(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """The largest number of intervals open at one moment (an end before a start at a tie)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = most = 0
    for _, step in events:
        open_now += step
        most = max(most, open_now)
    return most
