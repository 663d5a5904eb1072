"""Builds what the UI tests (and the README screenshots) look at, through the real DAGs.

``python -m tests.ui.build_data BASE`` with the Airflow environment of the caller (a
migrated metadata DB): a source of the shipped reviews plus hostile rows; two quick models
trained, gated and registered by the domain pipeline (``reviewops.pipeline``, as the serving
tests do: the training DAG's search costs more than these pages need), the second promoted
by hand so the champion has a history; then with ``dag.test()``: ``reviews_initial_load``
and ``reviews_weekly`` for :data:`WEEKS`. Every task writes its lineage record and the runs
are in the metadata DB, so the task instances the pages link to exist. Prints one JSON
line: the data root, the source, the weeks, each weekly run's id and the models.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HOSTILE = "<script>alert(1)</script><b>bold</b>"
HOSTILE_WEEK = "2017-12-04"
# The most recent weeks of the shipped reviews; the hostile rows are dated in HOSTILE_WEEK.
WEEKS = ("2017-11-20", "2017-11-27", "2017-12-04", "2017-12-11")
# Enough hostile rows for their condition to be a monitoring slice (min_slice_size 5).
HOSTILE_ROWS = [
    [str(990000 + i), "Zoloft", HOSTILE, f'"""{HOSTILE} review {i}"""', "positive", "December 5, 2017", "1"]
    for i in range(6)
]
ACTOR = "tests/ui"


def main(base: Path) -> dict[str, object]:
    from airflow.dag_processing.dagbag import DagBag

    from reviewops.contracts import MODEL_FILE
    from reviewops.modeling.training import TrainParams, TrainStepParams, train_candidate
    from reviewops.pipeline import build_champion, evaluate_and_register
    from reviewops.registry.store import Registry
    from tests.conftest import ROOT, shipped_records, write_shipped_slice

    quick = TrainParams(epochs=2, hidden_units=0, max_tokens=2000)
    started = time.monotonic()
    header, records = shipped_records()
    source = write_shipped_slice(base / "reviews.tsv", records + HOSTILE_ROWS, header)
    data_root = base / "data-root"
    dags = DagBag(dag_folder=str(ROOT / "dags")).dags
    conf = {"source": str(source), "data_root": str(data_root)}
    seconds = {"source_and_dags": round(time.monotonic() - started, 1)}
    first, dataset_dir = build_champion(data_root, quick, ACTOR, promote_if_rejected=True)
    # After the pipeline's own curation (of the shipped file), so the curated weeks are this
    # source's and each has the lineage record of the run that wrote it.
    _check(dags["reviews_initial_load"].test(run_conf=conf))
    trained = train_candidate(
        TrainStepParams(str(data_root), str(dataset_dir), TrainParams(**{**quick.as_dict(), "seed": 7}))
    )
    evaluate_and_register(data_root, trained.output_named(MODEL_FILE).path, dataset_dir, trained.subject, ACTOR)
    second = trained.subject
    registry = Registry(str(data_root))
    if registry.champion() != second:
        registry.promote(second, "tests/ui: the second model takes over", ACTOR)
    seconds["models"] = round(time.monotonic() - started - sum(seconds.values()), 1)
    runs = {}
    for week in WEEKS:
        run = dags["reviews_weekly"].test(run_conf={**conf, "week": week})
        runs[week] = run.run_id
    return {
        "data_root": str(data_root),
        "source": str(source),
        "weeks": list(WEEKS),
        "runs": runs,
        "champion": second,
        "models": [first, second],
        "seconds": round(time.monotonic() - started, 1),
        "phases": {**seconds, "weekly_runs": round(time.monotonic() - started - sum(seconds.values()), 1)},
    }


def _check(run: object) -> None:
    state = str(getattr(run, "state", ""))
    if state != "success":
        raise SystemExit(f"{getattr(run, 'dag_id', '?')} run {getattr(run, 'run_id', '?')} ended {state}")


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
