"""reviews_weekly on the CeleryExecutor, for real.

Scheduler, dag-processor, api-server and one ``airflow celery worker`` run as plain
processes on this machine, with the Celery settings ``docker-compose.yaml`` runs (one
definition: ``tests/deploy/celery_settings.py``): Redis as broker, the stack's PostgreSQL
database as metadata DB and Celery result backend; tasks reach the api-server through the
Execution API (``[core] execution_api_server_url``). A backfill of two weeks with
``--max-active-runs 2`` runs them side by side, on a champion trained beforehand without
Airflow (while the services start).

What it proves: every task instance was sent through Celery and executed by the worker,
each in a process of its own that descends from the worker (never from the scheduler), so
nothing a task leaves in memory can reach the next one; the two runs overlapped; each
week's lineage chain is its own; and every artifact the lineage records in XCom name is
reachable by its URI and still has the recorded sha256, which is all a task on another
worker would have to go on. Last, the worker stops cleanly on SIGTERM.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from reviewops.config import SHIPPED_REVIEWS as SHIPPED
from tests.deploy.celery_settings import celery_environment
from tests.system.airflow_stack import (
    PG_URL_ENV,
    REDIS_URL_ENV,
    WORKER,
    AirflowStack,
    champion_of,
    connect,
    free_port,
    redis_url,
    server_url,
    start_champion_build,
)

pytestmark = pytest.mark.integration

DAG_ID = "reviews_weekly"
WEEKS = [dt.date(2017, 11, 20), dt.date(2017, 11, 27)]  # both have reviews
MAX_ACTIVE_RUNS = 2
OWN_TASKS = {"ingest", "validate", "transform", "score"}  # the chain behind a week's predictions
RAN_TASKS = OWN_TASKS | {"monitor", "check_week"}  # at least these run (other branches may be skipped)
BACKFILL_TIMEOUT = 300


class ProcessWatch:
    """Which processes descend from each of the stack's services, sampled every
    ``interval`` seconds while it runs: who ran a task is known after the task has ended."""

    def __init__(self, stack: AirflowStack, interval: float = 0.25) -> None:
        self.stack = stack
        self.interval = interval
        self.descendants: dict[str, set[int]] = defaultdict(set)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-watch", daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        children: dict[int, list[int]] = defaultdict(list)
        for process in psutil.process_iter(["ppid"]):
            children[process.info["ppid"]].append(process.pid)
        for service in self.stack.services:
            todo = list(children[service.process.pid])
            while todo:
                pid = todo.pop()
                self.descendants[service.name].add(pid)
                todo.extend(children[pid])


@dataclass(frozen=True)
class CeleryRun:
    stack: AirflowStack
    champion: str
    runs: list[dict[str, Any]]
    task_instances: list[dict[str, Any]]  # every task instance of the two runs
    ran: list[dict[str, Any]]  # those that ran (not skipped by a branch)
    records: dict[tuple[str, str], dict[str, Any]]
    descendants: dict[str, set[int]]
    broker_keys: list[str]
    seconds: float


def _task_instances(stack: AirflowStack) -> list[dict[str, Any]]:
    return stack.query(
        "SELECT ti.run_id, ti.task_id, ti.state, ti.try_number, ti.start_date, ti.end_date, ti.hostname, ti.pid,"
        " ti.queue, ti.external_executor_id, j.job_type AS queued_by"
        " FROM task_instance ti LEFT JOIN job j ON j.id = ti.queued_by_job_id"
        " WHERE ti.dag_id = %s ORDER BY ti.start_date",
        (DAG_ID,),
    )


def _celery_results(stack: AirflowStack, celery_ids: list[str], timeout: float = 30) -> dict[str, str]:
    """Celery task id -> state in the result backend. A task instance is marked successful
    (through the Execution API) a moment before its Celery task ends and stores its result."""
    deadline = time.monotonic() + timeout
    while True:
        rows = stack.query("SELECT task_id, status FROM celery_taskmeta WHERE task_id = ANY(%s)", (celery_ids,))
        results = {r["task_id"]: r["status"] for r in rows}
        if {results.get(c) for c in celery_ids} == {"SUCCESS"} or time.monotonic() > deadline:
            return results
        time.sleep(1)


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryRun]:
    stack = AirflowStack(
        tmp_path_factory.mktemp("celery"),
        dag_ids=[DAG_ID],
        executor="CeleryExecutor",
        env={"REVIEWOPS_SOURCE": str(SHIPPED)},
    )
    build = start_champion_build(stack, "test_celery")
    try:
        stack.start()
        stack.run_cli("dags", "unpause", DAG_ID)  # scheduled runs are off: only the backfill runs
        champion = champion_of(build)
        started = time.monotonic()
        with ProcessWatch(stack) as watch:
            stack.run_cli(
                "backfill", "create", "--dag-id", DAG_ID, "--from-date", str(WEEKS[0]), "--to-date", str(WEEKS[-1]),
                "--max-active-runs", str(MAX_ACTIVE_RUNS),
            )  # fmt: skip
            runs = stack.wait_for_backfill(DAG_ID, timeout=BACKFILL_TIMEOUT, until_completed=False)
        seconds = time.monotonic() - started
        tis = _task_instances(stack)
        yield CeleryRun(
            stack=stack,
            champion=champion,
            runs=runs,
            task_instances=tis,
            ran=[t for t in tis if t["state"] != "skipped"],
            records=stack.xcom_values(DAG_ID),
            descendants=dict(watch.descendants),
            broker_keys=stack.broker_keys(),
            seconds=seconds,
        )
    finally:
        if build.poll() is None:
            build.kill()
            build.communicate()
        stack.stop()


def test_both_weeks_ran_and_succeeded(celery_run: CeleryRun) -> None:
    diagnostics = celery_run.stack.diagnostics(DAG_ID)
    assert [r["state"] for r in celery_run.runs] == ["success"] * len(WEEKS), diagnostics
    assert [r["data_interval_start"].date() for r in celery_run.runs] == WEEKS
    tis = celery_run.task_instances
    assert len(tis) == len({t["task_id"] for t in tis}) * len(WEEKS)
    assert {t["state"] for t in celery_run.ran} == {"success"}, diagnostics
    for run in celery_run.runs:
        assert {t["task_id"] for t in celery_run.ran if t["run_id"] == run["run_id"]} >= RAN_TASKS, diagnostics
    print(f"two weeks on Celery: {celery_run.seconds:.0f}s from backfill create to both runs finished")


def test_the_stack_runs_the_docker_compose_celery_settings(celery_run: CeleryRun) -> None:
    """The same settings as docker-compose.yaml (checked there by tests/deploy), with the
    local servers as endpoints; the broker really is this Redis, under the stack's prefix."""
    env = celery_run.stack.env
    expected = celery_environment(metadata_db_url=env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], broker_url=redis_url())
    assert {k: env.get(k) for k in expected} == expected
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{celery_run.stack.port}/execution/"
    assert celery_run.broker_keys, "no key of this stack's broker prefix on Redis"
    assert all(k.startswith(celery_run.stack.broker_prefix) for k in celery_run.broker_keys)


def test_every_task_was_sent_through_celery_and_run_by_the_worker(celery_run: CeleryRun) -> None:
    stack, tis = celery_run.stack, celery_run.ran
    # Queued by the scheduler, onto the queue the worker serves (the default one).
    assert {t["queued_by"] for t in tis} == {"SchedulerJob"}
    assert {t["queue"] for t in tis} == {"default"}
    # Each task instance is one Celery task, and the result backend (this PostgreSQL
    # database) holds its successful result.
    celery_ids = [t["external_executor_id"] for t in tis]
    assert all(celery_ids) and len(set(celery_ids)) == len(tis), celery_ids
    results = _celery_results(stack, celery_ids)
    assert {results.get(c) for c in celery_ids} == {"SUCCESS"}, results
    # The worker's own log names each task instance it executed.
    worker_log = stack.service(WORKER).log.read_text(errors="replace")
    for ti in tis:
        lines = [
            line for line in worker_log.splitlines() if f"[{ti['external_executor_id']}] Executing workload" in line
        ]
        assert len(lines) == 1, (ti["task_id"], ti["run_id"], lines)
        assert f"task_id='{ti['task_id']}'" in lines[0] and f"run_id='{ti['run_id']}'" in lines[0], lines[0]
    scheduler_log = stack.service("scheduler").log.read_text(errors="replace")
    assert "Executing workload in Celery" not in scheduler_log


def test_every_task_ran_in_a_process_of_its_own_under_the_worker(celery_run: CeleryRun) -> None:
    """No task shares a process with another, and none ran under the scheduler: what one
    task hands the next can only travel through XCom and the files it names."""
    tis, seen = celery_run.ran, celery_run.descendants
    pids = [t["pid"] for t in tis]
    assert all(pids) and len(set(pids)) == len(pids), pids
    assert {s.process.pid for s in celery_run.stack.services}.isdisjoint(pids)
    outside = [(t["run_id"], t["task_id"], t["pid"]) for t in tis if t["pid"] not in seen.get(WORKER, set())]
    assert not outside, f"task processes not seen under the Celery worker: {outside}"
    for name, pids_seen in seen.items():
        if name != WORKER:
            assert pids_seen.isdisjoint(pids), f"a task process ran under {name}"


def test_the_two_runs_overlapped(celery_run: CeleryRun) -> None:
    (a, b) = celery_run.runs
    assert a["start_date"] < b["end_date"] and b["start_date"] < a["end_date"], celery_run.runs
    tis = celery_run.ran
    side_by_side = [
        (x["task_id"], y["task_id"])
        for i, x in enumerate(tis)
        for y in tis[i + 1 :]
        if x["run_id"] != y["run_id"] and x["start_date"] < y["end_date"] and y["start_date"] < x["end_date"]
    ]
    assert side_by_side, [(t["run_id"], t["task_id"], t["start_date"], t["end_date"]) for t in tis]


def test_each_weeks_lineage_chain_is_its_own(celery_run: CeleryRun) -> None:
    from reviewops.lineage.store import LineageStore

    data_root = celery_run.stack.data_root
    index = LineageStore(data_root).index()
    for run in celery_run.runs:
        week = run["data_interval_start"].date().isoformat()
        assert celery_run.records[(run["run_id"], "ingest")]["subject"] == f"week={week}"
        assert celery_run.records[(run["run_id"], "score")]["metrics"]["week"] == week
        target = data_root / "predictions" / f"week={week}" / "predictions.parquet"
        chain = index.upstream(index.resolve(str(target)))
        assert {r.task_id for r in chain if r.run_id == run["run_id"]} == OWN_TASKS, week
        assert {r.run_id for r in chain if r.dag_id == DAG_ID} == {run["run_id"]}, week
        assert any(a.kind == "model" and f"/models/{celery_run.champion}/" in a.uri for r in chain for a in r.inputs)
        assert any(a.kind == "source" for r in chain for a in r.inputs), week
        # Each record's parents are records of its own run, or of no run at all.
        own = {r.record_id for r in chain if r.run_id == run["run_id"]}
        for record in chain:
            if record.run_id == run["run_id"]:
                assert set(record.parents) <= own | {r.record_id for r in chain if r.dag_id != DAG_ID}, record


def test_every_artifact_in_the_lineage_resolves_by_uri_with_its_sha256(celery_run: CeleryRun) -> None:
    """Every input and output of every task's record (XCom): an absolute file:// URI
    (nothing relative to a worker's working directory, nothing in a worker's temporary
    folder) under the data root or the source, whose bytes still hash to the record."""
    from reviewops.storage.io import sha256_file
    from reviewops.storage.paths import from_uri

    data_root, checked = celery_run.stack.data_root.resolve(), 0
    run_ids = {r["run_id"] for r in celery_run.runs}
    records = {key: value for key, value in celery_run.records.items() if key[0] in run_ids}
    assert {task for _, task in records} >= RAN_TASKS - {"check_week"}
    for (run_id, task_id), record in records.items():
        # The XCom record is the one the lineage store keeps.
        stored = data_root / "lineage" / "records" / f"{record['record_id']}.json"
        assert json.loads(stored.read_text()) == record, (run_id, task_id)
        for artifact in [*record["inputs"], *record["outputs"]]:
            uri = artifact["uri"]
            assert uri.startswith("file:///"), (task_id, uri)
            path = from_uri(uri)
            assert path.is_file(), (run_id, task_id, uri)
            assert path.resolve().is_relative_to(data_root) or path.resolve() == SHIPPED.resolve(), uri
            assert sha256_file(path) == artifact["sha256"], (run_id, task_id, uri)
            checked += 1
    assert checked >= len(records) * 2


def test_the_worker_stops_cleanly(celery_run: CeleryRun) -> None:
    """SIGTERM to the worker alone (as docker-compose's stop does): a warm shutdown that
    ends its pool and log server and exits 0, without being killed."""
    stack = celery_run.stack
    worker = stack.service(WORKER)
    children = psutil.Process(worker.process.pid).children(recursive=True)
    assert children, "the worker has no child processes"
    status = stack.stop_service(WORKER, grace=30)
    assert status == 0, f"worker exit status {status}\n{stack.diagnostics()}"
    assert not [p.pid for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    log = worker.log.read_text(errors="replace")
    assert not re.search(r"WorkerLostError|Traceback", log), log[-4000:]


def test_unreachable_redis_or_postgresql_fails_and_says_what_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a skip: the test fails at once, naming the server and `bin/services start`."""
    closed = free_port()  # nothing listens there
    monkeypatch.setenv(REDIS_URL_ENV, f"redis://127.0.0.1:{closed}/0")
    stack = AirflowStack(tmp_path, executor="CeleryExecutor")
    try:
        with pytest.raises(
            pytest.fail.Exception,
            match=rf"Redis is not reachable at redis://127\.0\.0\.1:{closed}/0(.|\n)*bin/services start",
        ):
            stack.start()
    finally:
        stack.stop()
    assert not stack.services, "services started without a broker"
    monkeypatch.setenv(PG_URL_ENV, f"postgresql://postgres@127.0.0.1:{closed}/postgres")
    with pytest.raises(pytest.fail.Exception, match=r"PostgreSQL is not reachable(.|\n)*bin/services start"):
        connect(server_url())
