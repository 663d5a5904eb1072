"""Orchestration: a 26-week backfill of ``reviews_weekly`` through the real scheduler
(LocalExecutor on PostgreSQL, scheduler + dag-processor + api-server started by
``tests/system/airflow_stack.py``), against the same scheduler backfilling the same
weeks of ``noop_weekly`` (``bench/dags/``: the same six tasks and timetable, each task a
no-op ``PythonOperator``). Both DAGs are parsed from one temporary DAGs folder holding
copies of the two files.

Also measured: what importing TensorFlow costs a task process (seconds and MB of RSS
in a fresh interpreter, without and with compiled bytecode), and a check, in a fresh
interpreter, that the ingest, validate and transform steps (and parsing the DAG file)
never import TensorFlow while the score step does.

    python -m bench.bench_orchestration [--weeks 26,52] [--max-active-runs 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    SHIPPED,
    champion_root,
    child_env,
    copy_registry,
    emit,
    only_output,
    pycache_dir,
    run_child,
    save_result,
    work_dir,
)

REAL, NOOP = "reviews_weekly", "noop_weekly"
LAST_WEEK = dt.date(2017, 12, 11)  # the last week of the shipped reviews
WEEKS = (26, 52)
# The DAG's own max_active_runs, and as many executor slots. A weekly task here is short
# and most of a task's time is spent starting up and talking to the api-server, so four
# runs in flight keep two cores busier than two would (both DAGs get the same settings).
MAX_ACTIVE_RUNS = 4
PARALLELISM = 4
TARGET = 3.0
# This bench measures orchestration, not the monitoring gate: history has weeks of a few
# reviews, which the weekly gate would rightly flag, so the gate is opened wide.
REAL_CONF = {"thresholds": {"min_volume": 0, "max_safety_rate": 1.0, "min_accuracy": 0.0}}
MODULE = "bench.bench_orchestration"
# What task processes import, compiled into the stack's bytecode cache before the clock
# starts (the stack's tasks write their bytecode there; a deployed image ships it).
WARM_IMPORTS = (
    "import tensorflow, keras, airflow.sdk.execution_time.task_runner, reviewops_airflow.operators, "
    "reviewops.data.ingest, reviewops.data.validate, reviewops.data.transform, reviewops.modeling.scoring, reviewops.monitoring.step, "
    "airflow.providers.standard.operators.python"
)


# -- TensorFlow import ------------------------------------------------------------------


# A bare interpreter: nothing imported but what this needs to read its own RSS.
TF_IMPORT = """
import json, time
def kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
before = kb("VmRSS")
started = time.perf_counter()
import tensorflow
seconds = time.perf_counter() - started
print(json.dumps({"seconds": round(seconds, 2), "rss_before_mb": round(before / 1024, 1),
                  "rss_after_mb": round(kb("VmRSS") / 1024, 1), "peak_rss_mb": round(kb("VmHWM") / 1024, 1),
                  "rss_added_mb": round((kb("VmRSS") - before) / 1024, 1)}))
"""


def _tf_import(cache: Path, write_bytecode: bool) -> dict[str, Any]:
    env = child_env({"PYTHONPYCACHEPREFIX": str(cache), "PYTHONDONTWRITEBYTECODE": None if write_bytecode else "1"})
    proc = subprocess.run(
        [sys.executable, "-c", TF_IMPORT], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def tf_import_cost() -> dict[str, Any]:
    """Cold: no bytecode anywhere (what every task process pays in this checkout's venv,
    which holds none, with PYTHONDONTWRITEBYTECODE set); the cold run writes the bytecode
    to an empty cache. Warm: three more runs reading that cache."""
    cache = work_dir("tf-import-pycache")
    cold = _tf_import(cache, write_bytecode=True)  # compiles, and writes the bytecode
    warm = [_tf_import(cache, write_bytecode=True) for _ in range(3)]
    median = sorted(warm, key=lambda r: r["seconds"])[1]
    return {"cold": cold, "warm_runs": warm, "warm": median}


# -- which steps import TensorFlow ------------------------------------------------------


def child_no_tf(data_root: str) -> dict[str, Any]:
    """Run the ingest, validate and transform steps on one week of the shipped reviews,
    import the monitoring and training modules and parse the weekly DAG file: TensorFlow
    must not be imported. Then score the week: now it must be (the check can see it)."""
    import importlib.util

    from reviewops.data.ingest import IngestParams, ingest_reviews
    from reviewops.data.transform import TransformParams, transform_reviews
    from reviewops.data.validate import ValidateParams, validate_reviews
    from reviewops.data.windows import Window

    checks: dict[str, bool] = {}
    window = Window.week(LAST_WEEK)
    raw, _ = ingest_reviews(IngestParams(source=str(SHIPPED), data_root=data_root, window=window))
    checks["ingest_reviews"] = "tensorflow" not in sys.modules
    validated = validate_reviews(
        ValidateParams(data_root=data_root, batch_key=raw.subject), only_output(raw.outputs, "raw")
    )
    checks["validate_reviews"] = "tensorflow" not in sys.modules
    curated = transform_reviews(
        TransformParams(data_root=data_root, window=window), only_output(validated.outputs, "validated")
    )
    checks["transform_reviews"] = "tensorflow" not in sys.modules

    checks["import reviewops.modeling.training, .scoring, .monitoring"] = "tensorflow" not in sys.modules
    spec = importlib.util.spec_from_file_location("reviews_weekly_dag", ROOT / "dags" / f"{REAL}.py")
    assert spec and spec.loader
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    checks["parse dags/reviews_weekly.py"] = "tensorflow" not in sys.modules
    from reviewops.modeling.scoring import ScoreParams, score_week

    score_week(ScoreParams(data_root=data_root), only_output(curated.outputs, "curated"))
    checks["score_week imports it (control)"] = "tensorflow" in sys.modules
    return {"checks": checks, "all_true": all(checks.values())}


# -- the backfills ----------------------------------------------------------------------


def _seconds(delta: dt.timedelta) -> float:
    return round(delta.total_seconds(), 2)


def _backfill(
    stack: Any, dag_id: str, first: dt.date, last: dt.date, max_active_runs: int, conf: dict[str, Any] | None
) -> dict[str, Any]:
    args = ["backfill", "create", "--dag-id", dag_id, "--from-date", first.isoformat(), "--to-date", last.isoformat()]
    args += ["--max-active-runs", str(max_active_runs)]
    if conf:
        args += ["--dag-run-conf", json.dumps(conf)]
    started = time.monotonic()
    stack.run_cli(*args)
    runs = stack.wait_for_backfill(dag_id, timeout=1500, until_completed=False)
    wall = time.monotonic() - started
    created = stack.backfills(dag_id)[-1]["created_at"]
    tis = stack.task_instances(dag_id, [r["run_id"] for r in runs])
    ends = [r["end_date"] for r in runs]
    by_task: dict[str, list[float]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append((ti["end_date"] - ti["start_date"]).total_seconds())
    return {
        "runs": len(runs),
        "states": sorted({r["state"] for r in runs}),
        "weeks": [
            runs[0]["data_interval_start"].date().isoformat(),
            runs[-1]["data_interval_start"].date().isoformat(),
        ],
        "backfill_seconds": _seconds(max(ends) - created),
        "makespan_seconds": _seconds(max(ends) - min(r["start_date"] for r in runs)),
        "wall_seconds": round(wall, 2),
        "seconds_per_run": round((max(ends) - created).total_seconds() / len(runs), 2),
        "run_seconds_median": round(
            statistics.median((r["end_date"] - r["start_date"]).total_seconds() for r in runs), 2
        ),
        "task_instances": len(tis),
        "task_seconds_total": round(sum(sum(v) for v in by_task.values()), 1),
        "task_seconds_median": {k: round(statistics.median(v), 2) for k, v in by_task.items()},
        "task_states": sorted({ti["state"] for ti in tis}),
    }


def backfills(weeks: int, max_active_runs: int) -> dict[str, Any]:
    from tests.system.airflow_stack import AirflowStack

    base = work_dir("orchestration")
    dags = base / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "dags" / f"{REAL}.py", dags)
    shutil.copy2(ROOT / "bench" / "dags" / f"{NOOP}.py", dags)
    stack = AirflowStack(
        base / "stack",
        pycache=pycache_dir(),
        dag_ids=[REAL, NOOP],
        env={
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "REVIEWOPS_SOURCE": str(SHIPPED),
        },
    )
    copy_registry(champion_root(), stack.data_root)
    first = LAST_WEEK - dt.timedelta(weeks=weeks - 1)
    try:
        started = time.monotonic()
        stack.start(wait=False)  # the warm-up below runs while Airflow migrates and starts
        warm = subprocess.run(
            [sys.executable, "-c", WARM_IMPORTS], env=stack.env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert warm.returncode == 0, warm.stderr[-3000:]
        stack.wait_ready()
        ready = round(time.monotonic() - started, 1)
        print(f"orchestration: stack ready in {ready}s; backfilling {weeks} weeks of {NOOP} ...", flush=True)
        for dag_id in (NOOP, REAL):
            stack.run_cli("dags", "unpause", dag_id)
        noop = _backfill(stack, NOOP, first, LAST_WEEK, max_active_runs, None)
        print(f"  {NOOP}: {noop['backfill_seconds']}s; backfilling {REAL} ...", flush=True)
        real = _backfill(stack, REAL, first, LAST_WEEK, max_active_runs, REAL_CONF)
        print(f"  {REAL}: {real['backfill_seconds']}s", flush=True)
    finally:
        stack.stop()
    ratio = round(real["backfill_seconds"] / noop["backfill_seconds"], 3)
    return {
        "weeks": weeks,
        "from_week": first.isoformat(),
        "to_week": LAST_WEEK.isoformat(),
        "max_active_runs": max_active_runs,
        "parallelism": stack.env["AIRFLOW__CORE__PARALLELISM"],
        "executor": stack.env["AIRFLOW__CORE__EXECUTOR"],
        "stack_ready_seconds": ready,
        "conf": REAL_CONF,
        NOOP: noop,
        REAL: real,
        "ratio": ratio,
        "makespan_ratio": round(real["makespan_seconds"] / noop["makespan_seconds"], 3),
        "target": TARGET,
        "met": ratio <= TARGET,
    }


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", default=",".join(map(str, WEEKS)), help="backfill lengths, e.g. 26,52")
    parser.add_argument("--max-active-runs", type=int, default=MAX_ACTIVE_RUNS)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    print("orchestration: TensorFlow import cost ...", flush=True)
    result["tf_import"] = tf_import_cost()
    check_root = work_dir("no-tf") / "data-root"
    copy_registry(champion_root(), check_root)
    result["tf_off_tasks"] = run_child(MODULE, "no-tf", str(check_root))
    # Each length on a fresh stack; the first is the target's (26 weeks), the others are reported beside it.
    result["backfills"] = [backfills(int(weeks), args.max_active_runs) for weeks in args.weeks.split(",")]
    result["backfill"] = result["backfills"][0]
    save_result("orchestration", result)
    return result


def child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "no-tf":
        emit(child_no_tf(rest[0]))
    else:
        raise SystemExit(f"unknown child {kind}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
    else:
        print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
