"""``make demo``: the whole lifecycle through Airflow on the configured source.

Runs, with ``dag.test()`` against the project's Airflow metadata DB (so every run is
visible in the UI afterwards): ``reviews_initial_load`` over the source's weeks before a
cutoff, ``reviews_training`` on them, then ``reviews_weekly`` for each of the weeks with
reviews after the cutoff (the most recent ``--weeks``). The model never saw the weeks it
scores, so the monitoring shows out-of-sample accuracy beside its pre-label estimate.
Every run starts now (its start and duration in the UI are real); a weekly run selects
its week by the ``week`` Param, not by its dates. Prints a summary built from the tasks'
lineage records and exits non-zero when any run fails.
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


def source_weeks(source: str, earliest: dt.date, weeks: int) -> tuple[str, list[str]]:
    """The Monday of the source's first week with plausibly dated reviews, and those of its
    last ``weeks`` such weeks: the demo trains on the weeks before the first of these and
    scores these (one read of the source for both)."""
    from reviewops.data.parsing import parse_dates
    from reviewops.data.sources import read_source
    from reviewops.data.windows import PlausibleDates, monday_of

    plausible = PlausibleDates(earliest, dt.datetime.now(dt.UTC).date())
    dates = parse_dates(read_source(source).column("review_date").to_pylist())
    mondays = sorted({monday_of(d) for d in dates if d is not None and plausible.contains(d)})
    if len(mondays) <= weeks:
        raise SystemExit(
            f"demo: the source has reviews in {len(mondays)} weeks: nothing left to train on before the last {weeks}"
        )
    return mondays[0].isoformat(), [monday.isoformat() for monday in mondays[-weeks:]]


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
    from reviewops.registry.store import Registry

    dagbag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if dagbag.import_errors:
        for path, error in dagbag.import_errors.items():
            print(f"demo: cannot import {path}:\n{error}", file=sys.stderr)
        return 1
    settings = Settings.from_env()
    print(f"reviewops demo: source {settings.source}\n  data root {settings.data_root}\n", flush=True)

    first_week, weeks = source_weeks(settings.source, settings.earliest_review_date, args.weeks)
    print(f"  training on the weeks before {weeks[0]}; scoring {len(weeks)} later weeks it never saw\n", flush=True)
    # The initial load's window ends (exclusive) at the first held-out week.
    load = _run(dagbag.dags["reviews_initial_load"], run_conf={"window_start": first_week, "window_end": weeks[0]})
    # The same cutoff for the dataset: on a repeated demo the curated store also holds the
    # held-out weeks, which the previous run's weekly runs curated.
    training = _run(dagbag.dags["reviews_training"], run_conf={"dataset_until": weeks[0]})
    if Registry(settings.data_root).champion() is None:
        decision = training["gate"]["metrics"]
        print(f"demo: no champion model: {decision['verdict']}: {'; '.join(decision['reasons'])}", file=sys.stderr)
        return 1
    scored, monitored = [], []
    for week in weeks:
        # No logical date: dag.test() would store it as the run's start date too (a 2017
        # week showed as a run of ~3,300 days); the week Param selects the data.
        records = _run(dagbag.dags["reviews_weekly"], logical_date=None, run_conf={"week": week})
        scored.append(records["score"])
        monitored.append(records["monitor"]["metrics"])

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
    cv = best["cross_validation"]
    print(f"  tuning: {best['trials']} trials, {cv['folds']}-fold cross-validation on {cv['rows']} train rows")
    for name in ("chosen", "tfidf_logreg"):
        scores, interval = cv["scores"][name], cv["intervals"][name]
        label = best["best"]["label"] if name == "chosen" else "standard baseline"
        print(
            f"    {label:36} accuracy {scores['accuracy']:.4f} {interval['accuracy']}, "
            f"macro-F1 {scores['macro_f1']:.4f} {interval['macro_f1']}"
        )
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
        f"  weeks scored {len(scored)} ({weeks[0]} .. {weeks[-1]}, after the training cutoff), {total} predictions by "
        f"{', '.join(sorted({r['metrics']['model_version'] for r in scored}))}"
    )
    for week, metrics in zip(weeks, monitored, strict=True):
        print(
            f"    {week}: {metrics['review_count']:3} reviews, accuracy {_share(metrics['accuracy'])}, "
            f"estimated before the ratings {_share(metrics['estimated_accuracy'])} {metrics['estimated_accuracy_interval']}"
        )
    over = monitored[-1].get("estimation_over_weeks") or {}
    if over.get("weeks_with_ratings"):
        print(
            f"  out of sample over {over['labelled_reviews']} rated reviews: accuracy {over['pooled_accuracy']:.4f}, "
            f"estimated {over['pooled_estimated_accuracy']:.4f}; mean absolute estimation error per week "
            f"{over['mean_absolute_error']:.4f}, realised accuracy inside the interval in "
            f"{over['interval_coverage']:.0%} of {over['weeks_with_ratings']} weeks"
        )
    print(f"  predictions in {os.path.join(settings.data_root, 'predictions')}/week=YYYY-MM-DD/predictions.parquet")
    print("\nOpen the UI with `make airflow`; list models with `.venv/bin/reviewops models`.")
    return 0


def _share(value: float | None) -> str:
    return "  n/a " if value is None else f"{value:.4f}"


if __name__ == "__main__":
    raise SystemExit(main())
