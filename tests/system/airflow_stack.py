"""A throwaway Airflow stack for system tests: the real scheduler, dag-processor and
api-server on a fresh PostgreSQL database, with the Airflow home and the data root in a
temporary folder; with ``executor="CeleryExecutor"``, also an ``airflow celery worker`` on
the local Redis (broker) and the same database (Celery result backend).

The environment starts from ``bin/env.sh`` (the project's own settings: DAGs and plugins
folders of this checkout, SimpleAuthManager, ...) with the Airflow home moved into the
temporary folder, then points Airflow at its own database and a free localhost port.
No ``airflow.cfg`` is written into the repository (Airflow writes its default one into
the temporary home). Every process runs in its own process group and logs to a file in
the temporary folder; :meth:`AirflowStack.diagnostics` returns the tails of those logs
and of failed tasks' logs, for assertion messages.

    with AirflowStack(tmp_path, dag_ids=["reviews_weekly"]) as stack:
        stack.run_cli("dags", "unpause", "reviews_weekly")
        stack.run_cli("backfill", "create", "--dag-id", "reviews_weekly", ...)
        runs = stack.wait_for_backfill("reviews_weekly", timeout=300)

PostgreSQL: ``$REVIEWOPS_TEST_PG_URL`` when set (a URL of the server's maintenance
database, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``; the user must be allowed
to create databases), else user ``postgres`` at 127.0.0.1:5432. Redis (Celery only):
``$REVIEWOPS_TEST_REDIS_URL`` when set, else ``redis://127.0.0.1:6379/0``. An unreachable
server fails the test with what is needed; it never skips.

The Celery settings are the ones ``docker-compose.yaml`` runs (one definition,
``tests/deploy/celery_settings.py``), plus what keeps parallel test runs on one Redis
apart: every broker key and channel of a stack carries its own prefix
(``[celery_broker_transport_options] global_keyprefix``, the database's name), the worker
has its own Celery hostname, and :meth:`AirflowStack.stop` deletes the stack's keys.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import psutil
import psycopg2
import psycopg2.extras
import pytest
import redis
from sqlalchemy.engine import URL, make_url

from tests.deploy.celery_settings import celery_environment

ROOT = Path(__file__).resolve().parents[2]
ENV_SH = ROOT / "bin" / "env.sh"
AIRFLOW = Path(sys.executable).parent / "airflow"

PG_URL_ENV = "REVIEWOPS_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL_ENV = "REVIEWOPS_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DB_PREFIX = "reviewops_test_"
CELERY = "CeleryExecutor"
WORKER = "celery-worker"
NEEDS = (
    "The system tests need PostgreSQL 13+ at 127.0.0.1:5432 with trust auth for user postgres "
    "(and Redis at 127.0.0.1:6379 for the Celery tests): run `bin/services start`, or set "
    f"{PG_URL_ENV}=postgresql://USER:PASSWORD@HOST:PORT/postgres (a user that may create databases) "
    f"and {REDIS_URL_ENV}=redis://[:PASSWORD@]HOST:PORT/DB."
)

RUN_TERMINAL = frozenset({"success", "failed"})
TI_FAILING = frozenset({"failed", "up_for_retry", "upstream_failed"})

_numbers = itertools.count(1)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in each service before exec: SIGTERM it when the test process dies, even by
    SIGKILL (Linux; elsewhere the stack's own teardown is all there is)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def server_url() -> URL:
    """The PostgreSQL server's maintenance database, as a psycopg2 SQLAlchemy URL."""
    url = make_url(os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL)
    return url.set(drivername="postgresql+psycopg2")


def libpq_dsn(url: URL) -> str:
    """The ``postgresql://`` form psycopg2 takes."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def venv_has_bytecode() -> bool:
    """Whether the installed packages carry their compiled bytecode (checked on Airflow's)."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or spec.origin is None:
        return False
    origin = Path(spec.origin)
    return (origin.parent / "__pycache__" / f"{origin.stem}.{sys.implementation.cache_tag}.pyc").is_file()


def redis_url() -> str:
    """The Redis server the Celery tests use as broker."""
    return os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def redis_client() -> redis.Redis:
    """A client of :func:`redis_url`; fails the test plainly when Redis does not answer."""
    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=5, socket_timeout=10)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        where = make_url(redis_url()).render_as_string(hide_password=True)
        pytest.fail(f"Redis is not reachable at {where}: {exc}\n{NEEDS}", pytrace=False)
    return client


def connect(url: URL) -> Any:
    """A psycopg2 connection in autocommit mode; fails the test plainly when the server
    cannot be reached."""
    try:
        conn = psycopg2.connect(libpq_dsn(url), connect_timeout=5)
    except psycopg2.OperationalError as exc:
        error = str(exc).strip()
    else:
        conn.autocommit = True
        return conn
    where = url.render_as_string(hide_password=True)
    pytest.fail(f"PostgreSQL is not reachable at {where}: {error}\n{NEEDS}", pytrace=False)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


_BUILD_CHAMPION = (
    "import sys, pathlib\n"
    "from reviewops.pipeline import build_champion\n"
    "from reviewops.modeling.training import TrainParams\n"
    "print(build_champion(pathlib.Path(sys.argv[1]), TrainParams(epochs=5), sys.argv[2], promote_if_rejected=True)[0])\n"
)


def start_champion_build(stack: AirflowStack, actor: str) -> subprocess.Popen[str]:
    """A quick champion (5 epochs on the whole shipped history, promoted by hand if the
    gate rejects it) built in a process of its own with the stack's environment: it runs
    while Airflow migrates and starts, and leaves TensorFlow's bytecode in the stack's
    cache for the scoring tasks. These tests are about where and when tasks run, not
    about model quality."""
    return subprocess.Popen(
        [sys.executable, "-c", _BUILD_CHAMPION, str(stack.data_root), actor],
        cwd=ROOT,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def champion_of(build: subprocess.Popen[str]) -> str:
    """The version :func:`start_champion_build` registered, once it is done."""
    out, err = build.communicate(timeout=600)
    assert build.returncode == 0, f"building the champion failed:\n{err[-6000:]}"
    return out.strip().splitlines()[-1]


@dataclass
class Service:
    """One long-running Airflow component, in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]
    # Stopped by SIGTERM to its main process alone, which then ends its children itself (a
    # Celery worker's warm shutdown; docker-compose does the same with DUMB_INIT_SETSID=0).
    graceful: bool = False


class AirflowStack:
    """Scheduler, dag-processor and api-server on a fresh PostgreSQL database.

    :param base: a temporary folder; the Airflow home, the data root and the logs go here.
    :param dag_ids: the DAGs that must be parsed into the database before the stack is ready.
    :param executor: ``LocalExecutor`` by default; ``CeleryExecutor`` adds an
        ``airflow celery worker`` (service ``celery-worker``) with the Celery settings of
        ``docker-compose.yaml``, Redis as broker and the stack's database as result backend.
        Extra settings go in ``env``.
    :param scheduled_runs: whether the scheduler creates runs from the timetables
        (``[scheduler] use_job_schedule``). Off by default, so an unpaused DAG runs only
        what a test creates (backfills, manual runs).
    :param env: more environment variables, applied last.
    :param pycache: where the stack's processes cache Python bytecode (a folder shared by
        the stacks of a test session saves each the compiling). Default: none when the
        venv holds compiled bytecode (``make install`` compiles it), which the processes
        then read as is; else a folder in ``base``, removed by :meth:`stop` (over 100 MB).
    """

    def __init__(
        self,
        base: Path,
        *,
        dag_ids: Sequence[str] = (),
        executor: str = "LocalExecutor",
        scheduled_runs: bool = False,
        env: dict[str, str] | None = None,
        pycache: Path | None = None,
        ready_timeout: float = 240,
    ) -> None:
        self.base = Path(base)
        self.home = self.base / "airflow-home"
        self.data_root = self.base / "data-root"
        self.logs = self.base / "service-logs"
        self.dag_ids = tuple(dag_ids)
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.db_name = f"{DB_PREFIX}{os.getpid()}_{next(_numbers)}"
        self.db_url = server_url().set(database=self.db_name)
        self.executor = executor
        # Celery only: the stack's own namespace on a Redis that other test runs may share.
        self.broker_prefix = f"{self.db_name}:"
        self.worker_hostname = f"{self.db_name}@{socket.gethostname()}"
        self.pycache: Path | None = pycache
        if pycache is None and not venv_has_bytecode():
            self.pycache = self.base / "pycache"
        self._owns_pycache = pycache is None
        self.services: list[Service] = []
        self._db_created = False
        self._stopped = False
        self._previous_sigterm: Any = None
        self.env = self._environment(executor, scheduled_runs, env or {})

    # -- life cycle ------------------------------------------------------------------

    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self, wait: bool = True) -> None:
        """Create and migrate the database, start the services; with ``wait``, return
        once the api-server answers and the DAGs are parsed (else call :meth:`wait_ready`)."""
        for folder in (self.home, self.data_root, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (CI cancelling, `timeout`) ends the session like Ctrl-C, so fixtures
            # tear the stack down; the services run in process groups of their own.
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        if self.celery:
            redis_client().close()  # fail at once, with what is needed, when Redis is down
        self._create_database()
        self.run_cli("db", "migrate", timeout=300)
        self._spawn("scheduler", "scheduler")
        self._spawn("dag-processor", "dag-processor")
        self._spawn("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.port))
        if self.celery:
            # Queue and concurrency come from the configuration, as in docker-compose.yaml;
            # INFO, so the log names every task the worker executes.
            self._spawn(
                WORKER,
                "celery",
                "worker",
                "--celery-hostname",
                self.worker_hostname,
                env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"},
                graceful=True,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        self._wait(self._api_server_answers, deadline, f"the api-server to answer on port {self.port}")
        self._wait(self._dags_parsed, deadline, f"the DAGs {', '.join(self.dag_ids)} to be parsed into the database")

    def stop(self, grace: float = 10) -> None:
        """Terminate every process the stack started (SIGTERM, then SIGKILL after
        ``grace`` seconds) and drop the database. Safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        try:
            self._terminate(grace)
        finally:
            for service in self.services:
                service.handle.close()
            if self._owns_pycache and self.pycache is not None:
                shutil.rmtree(self.pycache, ignore_errors=True)
            try:
                self._drop_database()
            finally:
                self._delete_broker_keys()

    @property
    def celery(self) -> bool:
        return self.executor == CELERY

    def service(self, name: str) -> Service:
        (found,) = [s for s in self.services if s.name == name]
        return found

    def stop_service(self, name: str, grace: float = 30) -> int | None:
        """Stop one service as :meth:`stop` would and wait for it and its children to end;
        returns its exit status, or ``None`` when it had to be killed after ``grace`` seconds."""
        service = self.service(name)
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(service.process.pid).children(recursive=True)
        self._signal(service, signal.SIGTERM)
        try:
            status: int | None = service.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            status = None
        _, alive = psutil.wait_procs(children, timeout=0 if status is None else grace)
        if status is None or alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.process.pid, signal.SIGKILL)
            for process in alive:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            service.process.wait(timeout=10)
            return None
        return status

    def broker_keys(self) -> list[str]:
        """The stack's keys on the Redis broker (Celery only)."""
        client = redis_client()
        try:
            return sorted(k.decode() for k in client.scan_iter(match=f"{self.broker_prefix}*", count=1000))
        finally:
            client.close()

    # -- the CLI and the database ------------------------------------------------------

    def run_cli(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``airflow <args>`` with the stack's environment."""
        result = subprocess.run(
            [str(AIRFLOW), *args],
            env=self.env,
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"`airflow {' '.join(args)}` exited {result.returncode}\n"
                f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}\n{self.diagnostics()}"
            )
        return result

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query on the stack's metadata database, as dicts."""
        with (
            contextlib.closing(connect(self.db_url)) as conn,
            conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
        ):
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()] if cur.description else []

    def runs(self, dag_id: str, backfill_id: int | None = None) -> list[dict[str, Any]]:
        """The DAG's runs (of one backfill when ``backfill_id`` is given), oldest first."""
        sql = (
            "SELECT dr.id, dr.run_id, dr.run_type, dr.state, dr.logical_date, dr.data_interval_start,"
            " dr.data_interval_end, dr.start_date, dr.end_date, dr.backfill_id"
            " FROM dag_run dr WHERE dr.dag_id = %(dag_id)s"
        )
        if backfill_id is not None:
            sql += " AND dr.id IN (SELECT dag_run_id FROM backfill_dag_run WHERE backfill_id = %(backfill_id)s)"
        return self.query(sql + " ORDER BY dr.logical_date, dr.id", {"dag_id": dag_id, "backfill_id": backfill_id})

    def task_instances(self, dag_id: str, run_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT run_id, task_id, map_index, state, try_number, start_date, end_date"
            " FROM task_instance WHERE dag_id = %(dag_id)s"
        )
        if run_ids is not None:
            sql += " AND run_id = ANY(%(run_ids)s)"
        rows = self.query(sql + " ORDER BY start_date NULLS LAST", {"dag_id": dag_id, "run_ids": list(run_ids or [])})
        return rows

    def backfills(self, dag_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT id, from_date, to_date, max_active_runs, reprocess_behavior, is_paused, created_at, completed_at"
            " FROM backfill WHERE dag_id = %s ORDER BY id",
            (dag_id,),
        )

    def xcom_values(self, dag_id: str, key: str = "return_value") -> dict[tuple[str, str], Any]:
        """(run_id, task_id) -> XCom value (stored as JSON in Airflow 3)."""
        rows = self.query("SELECT run_id, task_id, value FROM xcom WHERE dag_id = %s AND key = %s", (dag_id, key))
        return {(r["run_id"], r["task_id"]): r["value"] for r in rows}

    def wait_for_backfill(
        self,
        dag_id: str,
        timeout: float,
        backfill_id: int | None = None,
        fail_fast: bool = True,
        until_completed: bool = True,
    ) -> list[dict[str, Any]]:
        """Wait until every run of the backfill (the DAG's latest one by default) is in a
        terminal state and, with ``until_completed``, the scheduler has marked the backfill
        complete (it checks every 30 s; a DAG can have only one running backfill, so wait
        for it before creating the next one). Returns the backfill's runs.

        With ``fail_fast``, a task that fails or waits for a retry ends the wait at once
        with the diagnostics, rather than after the DAG's retry delays.
        """
        if backfill_id is None:
            backfills = self.backfills(dag_id)
            assert backfills, f"no backfill of {dag_id}\n{self.diagnostics()}"
            backfill_id = int(backfills[-1]["id"])
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            runs = self.runs(dag_id, backfill_id)
            if fail_fast:
                self._fail_on_failing_tasks(dag_id, runs)
            (backfill,) = [b for b in self.backfills(dag_id) if b["id"] == backfill_id]
            completed = backfill["completed_at"] is not None or not until_completed
            if runs and completed and all(r["state"] in RUN_TERMINAL for r in runs):
                return runs
            if time.monotonic() > deadline:
                states = ", ".join(f"{r['run_id']}={r['state']}" for r in runs) or "no runs"
                raise AssertionError(
                    f"backfill {backfill_id} of {dag_id} not finished after {timeout:.0f}s "
                    f"(completed_at={backfill['completed_at']}): {states}\n{self.diagnostics(dag_id)}"
                )
            time.sleep(2)

    # -- diagnostics -------------------------------------------------------------------

    def check_alive(self) -> None:
        dead = [s for s in self.services if s.process.poll() is not None]
        if dead:
            names = ", ".join(f"{s.name} (exit {s.process.returncode})" for s in dead)
            raise AssertionError(f"Airflow service(s) died: {names}\n{self.diagnostics()}")

    def diagnostics(self, dag_id: str | None = None, lines: int = 40) -> str:
        """Tails of the services' logs and, with ``dag_id``, of its failing tasks' logs."""
        parts = [f"=== {s.name} ({s.log}), last {lines} lines\n{tail(s.log, lines)}" for s in self.services]
        if dag_id:
            with contextlib.suppress(Exception):  # diagnostics must never hide the real failure
                for ti in self.task_instances(dag_id):
                    if ti["state"] in TI_FAILING:
                        parts.extend(self._task_log_tails(dag_id, ti, lines))
        return "\n".join(parts)

    def _task_log_tails(self, dag_id: str, ti: dict[str, Any], lines: int) -> list[str]:
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={ti['run_id']}" / f"task_id={ti['task_id']}"
        return [f"=== task log {path}\n{tail(path, lines)}" for path in sorted(folder.glob("**/*.log"))]

    # -- internals ---------------------------------------------------------------------

    def _environment(self, executor: str, scheduled_runs: bool, extra: dict[str, str]) -> dict[str, str]:
        db_url = self.db_url.render_as_string(hide_password=False)
        settings = {
            "REVIEWOPS_AIRFLOW_HOME": str(self.home),
            "REVIEWOPS_DATA_ROOT": str(self.data_root),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
            "AIRFLOW__API__WORKERS": "1",
            # The log server of a LocalExecutor scheduler or a Celery worker (default 8793):
            # a port of its own, so parallel stacks on this machine do not collide.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            # Scheduler and api-server must agree on the key that signs the tasks' tokens.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(scheduled_runs),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        # Every task is a new Python process. Where the venv holds no compiled bytecode and
        # PYTHONDONTWRITEBYTECODE is set, each one would compile Airflow (and the scoring
        # task TensorFlow) from source again: cache the bytecode in the stack. Where it does,
        # a cache prefix would hide it (Python then reads only the prefix), and every stack
        # would compile all of it once more (about 17 s of CPU for the weekly DAG's imports).
        if self.pycache is not None:
            settings["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        else:
            settings["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written into the venv or the checkout
        if executor == CELERY:
            settings |= celery_environment(metadata_db_url=db_url, broker_url=redis_url())
            settings["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"] = self.broker_prefix
        # The test session's own AIRFLOW_* settings (conftest: SQLite) must not leak in.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "REVIEWOPS_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        result = subprocess.run(
            ["bash", "-c", 'source "$1" >/dev/null && env -0', "env.sh", str(ENV_SH)],
            env={**inherited, **settings, **extra},
            capture_output=True,
            check=True,
        )
        env = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
        env.update(settings)
        env.update(extra)
        assert env["AIRFLOW_HOME"] == str(self.home), env["AIRFLOW_HOME"]
        return env

    def _create_database(self) -> None:
        with contextlib.closing(connect(server_url())) as conn, conn.cursor() as cur:
            self._drop_stale_databases(cur)
            cur.execute(f'CREATE DATABASE "{self.db_name}"')
            self._db_created = True

    @staticmethod
    def _drop_stale_databases(cur: Any) -> None:
        """Drop test databases left by killed test runs on this machine: named after a
        process that no longer exists here, and with nobody connected (a live stack
        always is). Only on a local server, where those process ids mean something."""
        if server_url().host not in (None, "", "127.0.0.1", "localhost", "::1"):
            return
        cur.execute(
            "SELECT datname FROM pg_database d WHERE datname LIKE %s"
            " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
            (DB_PREFIX + "%",),
        )
        for (name,) in cur.fetchall():
            match = re.fullmatch(rf"{DB_PREFIX}(\d+)_\d+", name)
            if match and not psutil.pid_exists(int(match.group(1))):
                with contextlib.suppress(psycopg2.Error):  # someone connected meanwhile: keep it
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def _drop_database(self) -> None:
        if not self._db_created:
            return
        with contextlib.closing(connect(server_url())) as conn, conn.cursor() as cur:
            # FORCE (PostgreSQL 13+) ends sessions a killed process may have left behind.
            cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        self._db_created = False

    def _delete_broker_keys(self) -> None:
        if not self.celery:
            return
        client = redis.Redis.from_url(redis_url(), socket_connect_timeout=5, socket_timeout=10)
        with contextlib.suppress(redis.RedisError), contextlib.closing(client):
            keys = list(client.scan_iter(match=f"{self.broker_prefix}*", count=1000))
            if keys:
                client.delete(*keys)

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None, graceful: bool = False) -> None:
        log = self.logs / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(
            [str(AIRFLOW), *args],
            env={**self.env, **(env or {})},
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() signals the whole group
            preexec_fn=_die_with_parent,  # SIGTERM it if this process dies
        )
        self.services.append(Service(name, process, log, handle, graceful))

    def _wait(self, ready: Any, deadline: float, what: str) -> None:
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.diagnostics()}")
            time.sleep(1)

    def _api_server_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=5) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def _dags_parsed(self) -> bool:
        errors = self.query("SELECT filename, stacktrace FROM import_error")
        if errors:
            details = "\n".join(f"{e['filename']}:\n{e['stacktrace']}" for e in errors)
            raise AssertionError(f"DAG import errors:\n{details}")
        parsed = {r["dag_id"] for r in self.query("SELECT dag_id FROM serialized_dag")}
        return set(self.dag_ids) <= parsed

    def _fail_on_failing_tasks(self, dag_id: str, runs: list[dict[str, Any]]) -> None:
        failing = [ti for ti in self.task_instances(dag_id, [r["run_id"] for r in runs]) if ti["state"] in TI_FAILING]
        if failing:
            names = ", ".join(f"{ti['run_id']}/{ti['task_id']}={ti['state']}" for ti in failing)
            raise AssertionError(f"task(s) failing in {dag_id}: {names}\n{self.diagnostics(dag_id)}")

    @staticmethod
    def _signal(service: Service, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if service.graceful:
                service.process.send_signal(signum)
            else:
                os.killpg(service.process.pid, signum)

    def _terminate(self, grace: float) -> None:
        # A graceful service gets one SIGTERM and ends its children itself; they are only
        # killed if they outlive the grace period.
        spared: set[int] = set()
        for service in self.services:
            if service.graceful and service.process.poll() is None:
                spared.add(service.process.pid)
                with contextlib.suppress(psutil.Error):
                    spared |= {p.pid for p in psutil.Process(service.process.pid).children(recursive=True)}
        processes = list(self._processes())
        for service in self.services:
            self._signal(service, signal.SIGTERM)
        for process in processes:
            if process.pid not in spared:
                with contextlib.suppress(psutil.Error):
                    process.terminate()
        _, alive = psutil.wait_procs(processes, timeout=grace)
        for service in self.services:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.process.pid, signal.SIGKILL)
        # Whatever is left, including processes started during the grace period.
        leftover = {p.pid: p for p in [*alive, *self._processes()]}
        for process in leftover.values():
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(list(leftover.values()), timeout=10)
        for service in self.services:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=5)

    def _processes(self) -> Iterator[psutil.Process]:
        """Every live process of the stack: the services and their descendants, and any
        process (orphaned or not) running with this stack's Airflow home."""
        seen: set[int] = set()
        for service in self.services:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(service.process.pid)
                for process in [parent, *parent.children(recursive=True)]:
                    if process.pid not in seen:
                        seen.add(process.pid)
                        yield process
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.pid not in seen and process.environ().get("AIRFLOW_HOME") == str(self.home):
                    seen.add(process.pid)
                    yield process
