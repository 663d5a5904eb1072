"""``make demo``: the whole lifecycle through Airflow on the configured source.

Runs, with ``dag.test()`` against the project's Airflow metadata DB (so every run is
visible in the UI afterwards): ``reviews_initial_load`` over the whole source,
``reviews_training``, then ``reviews_weekly`` for the most recent weeks that have
reviews. Prints a summary built from the tasks' lineage records and exits non-zero
when any run fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from typing import Any

log = logging.getLogger("reviewops.demo")


def _records(dag_run: Any) -> dict[str, dict[str, Any]]:
    """task_id -> lineage record (the XCom return value) of a finished run."""
    out = {}
    for ti in dag_run.get_task_instances():
        value = ti.xcom_pull(task_ids=ti.task_id)
        if value:
            out[ti.task_id] = value
    return out


def _run(dag: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
    print(f"  {dag.dag_id:22} running {kwargs.get('run_conf') or ''}", flush=True)
    started = time.monotonic()
    dag_run = dag.test(**kwargs)
    state = str(dag_run.state)
    print(f"  {dag.dag_id:22} {dag_run.run_id:60} {state:8} {time.monotonic() - started:6.1f}s", flush=True)
    if state != "success":
        failed = [ti.task_id for ti in dag_run.get_task_instances() if str(ti.state) != "success"]
        raise SystemExit(f"demo: {dag.dag_id} ended {state} (tasks not successful: {', '.join(failed)})")
    return _records(dag_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weeks", type=int, default=8, help="how many of the latest weeks with reviews to score")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    # Each weekly run loads the model afresh, as a separate task process would; in this
    # one process TensorFlow then warns about retracing, which is expected here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from airflow.dag_processing.dagbag import DagBag

    from reviewops.config import Settings
    from reviewops.data.transform import curated_weeks
    from reviewops.registry.store import Registry

    dagbag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if dagbag.import_errors:
        for path, error in dagbag.import_errors.items():
            print(f"demo: cannot import {path}:\n{error}", file=sys.stderr)
        return 1
    settings = Settings.from_env()
    print(f"reviewops demo: source {settings.source}\n  data root {settings.data_root}\n", flush=True)

    load = _run(dagbag.dags["reviews_initial_load"])
    training = _run(dagbag.dags["reviews_training"])
    if Registry(settings.data_root).champion() is None:
        decision = training["gate"]["metrics"]
        print(f"demo: no champion model: {decision['verdict']}: {'; '.join(decision['reasons'])}", file=sys.stderr)
        return 1
    weeks = [w for w, rows in curated_weeks(settings.data_root).items() if rows][-args.weeks :]
    scored = []
    for week in weeks:
        monday = dt.datetime.fromisoformat(week).replace(tzinfo=dt.UTC)
        records = _run(
            dagbag.dags["reviews_weekly"], logical_date=monday + dt.timedelta(days=7), run_conf={"week": week}
        )
        scored.append(records["score"])

    validated = load["validate"]["metrics"]
    dataset = training["snapshot_dataset"]["metrics"]
    model = training["register_model"]["metrics"]
    evaluation = training["evaluate_model"]["metrics"]
    print("\nSummary")
    print(
        f"  rows read {validated['rows_read']}, valid {validated['rows_valid']}, quarantined {validated['rows_quarantined']}"
        f"{' ' + str(validated['reasons']) if validated['reasons'] else ''}"
    )
    print(
        f"  curated {load['transform']['metrics']['rows_curated']} reviews in "
        f"{load['transform']['metrics']['weeks_with_reviews']} weeks"
    )
    print(f"  dataset {dataset['dataset_version']}: {dataset['train_rows']} train / {dataset['eval_rows']} eval rows")
    best = training["select_best"]["metrics"]
    print(f"  tuning: {best['trials']} trials, best on validation: {best['best']['label']}")
    print(f"  model {model['model_version']}: eval accuracy {model['accuracy']:.4f}, macro-F1 {model['macro_f1']:.4f}")
    for name, baseline in evaluation["baselines"].items():
        print(f"    {name + ' baseline':26} accuracy {baseline['accuracy']:.4f}, macro-F1 {baseline['macro_f1']:.4f}")
    print(f"  gate: {training['gate']['metrics']['verdict']}: {'; '.join(training['gate']['metrics']['reasons'])}")
    if model["champion"] is None:
        print("  no champion: the gate rejected the first model, so no week can be scored", file=sys.stderr)
        return 1
    champion = Registry(settings.data_root).metadata(model["champion"])
    print(
        f"  champion {champion['version']}: eval accuracy {champion['metrics']['accuracy']:.4f},"
        f" macro-F1 {champion['metrics']['macro_f1']:.4f} (dataset {champion['dataset_version']})"
    )
    total = sum(r["metrics"]["rows_scored"] for r in scored)
    print(
        f"  weeks scored {len(scored)} ({weeks[0]} .. {weeks[-1]}), {total} predictions by "
        f"{', '.join(sorted({r['metrics']['model_version'] for r in scored}))}"
    )
    print(f"  predictions in {os.path.join(settings.data_root, 'predictions')}/week=YYYY-MM-DD/predictions.parquet")
    print("\nOpen the UI with `make airflow`; list models with `.venv/bin/reviewops models`.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
