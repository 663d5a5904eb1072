"""Training: wall time and peak RSS of one ``train_candidate`` run with the default
``TrainParams``, on the shipped reviews and on 100k synthetic reviews; at 100k, the peak
RSS of the whole step against the fit's own peak (the peak when the model is fitted and
saved, before ``write_reference`` predicts the training texts): target <= 1.25x.

Each dataset version is built first (not timed as training): the shipped reviews by
ingest -> validate -> transform -> snapshot_dataset, the synthetic ones written as a
curated week and snapshotted. Each training run is a fresh interpreter (TensorFlow
imported before the clock starts), so its peak RSS (VmHWM) is its own.

    python -m bench.bench_training [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench.common import (
    BENCH_WEEK,
    SHIPPED,
    emit,
    peak_rss_mb,
    rss_mb,
    run_child,
    save_result,
    synthetic_curated,
    work_dir,
)
from reviewops.pipeline import curate_source

ROWS = 100_000
PEAK_TARGET = 1.25
MODULE = "bench.bench_training"


def child_train(data_root: str, dataset_dir: str) -> dict[str, Any]:
    import logging

    # The epochs' progress goes to this child's stderr (kept in the bench log on failure).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("reviewops.modeling.training").setLevel(logging.INFO)
    started = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import_seconds = time.perf_counter() - started
    import reviewops.modeling.training
    from reviewops.modeling.training import TrainParams, TrainStepParams, train_candidate

    # train_candidate ends with write_reference (the monitoring reference: the model's
    # predictions on every training text); time it and the peak RSS before it apart.
    reference: dict[str, float] = {}
    write_reference = reviewops.modeling.training.write_reference

    def clocked_write_reference(*args: Any, **kwargs: Any) -> None:
        reference["peak_rss_before_mb"] = peak_rss_mb()
        begun = time.perf_counter()
        write_reference(*args, **kwargs)
        reference["seconds"] = round(time.perf_counter() - begun, 1)

    reviewops.modeling.training.write_reference = clocked_write_reference
    params = TrainParams()
    rss_before = rss_mb()
    started = time.perf_counter()
    result = train_candidate(TrainStepParams(data_root=data_root, dataset_dir=dataset_dir, train=params))
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 1),
        "fit_seconds": result.metrics["train_seconds"],
        "train_rows": result.metrics["train_rows"],
        "vocabulary_size": result.metrics["vocabulary_size"],
        "final_train_accuracy": result.metrics["final_train_accuracy"],
        "params": params.as_dict(),
        "tf_import_seconds": round(import_seconds, 2),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "write_reference": reference,
    }


def child_dataset(data_root: str, rows: int) -> dict[str, Any]:
    """The dataset version to train on: the shipped reviews (rows 0) or ``rows`` synthetic ones."""
    from reviewops.data.datasets import SnapshotParams, snapshot_dataset
    from reviewops.storage.io import write_parquet
    from reviewops.storage.paths import Layout

    started = time.perf_counter()
    if rows:
        write_parquet(synthetic_curated(rows), Layout(data_root).curated(BENCH_WEEK.isoformat()))
    else:
        curate_source(data_root, str(SHIPPED))
    curated = time.perf_counter() - started
    started = time.perf_counter()
    dataset, _ = snapshot_dataset(SnapshotParams(data_root=data_root))
    return {
        "dataset_dir": str(Layout(data_root).datasets() / dataset.subject),
        "curate_seconds": round(curated, 1),
        "snapshot_seconds": round(time.perf_counter() - started, 1),
        "rows": dataset.metrics["rows"],
        "train_rows": dataset.metrics["train_rows"],
        "excluded": dataset.metrics["excluded"],
    }


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    for name, rows in (("shipped", 0), (f"synthetic_{args.rows}", args.rows)):
        data_root = work_dir(f"training-{name}") / "data-root"
        print(f"training: dataset {name} ...", flush=True)
        dataset = run_child(MODULE, "dataset", str(data_root), str(rows))
        print(f"training: train_candidate on {dataset['train_rows']} rows ...", flush=True)
        train = run_child(MODULE, "train", str(data_root), dataset["dataset_dir"], timeout=2400)
        result[name] = {"dataset": dataset, "train": train}
        print(f"  {train['seconds']}s, peak RSS {train['peak_rss_mb']} MB", flush=True)
    largest = result[f"synthetic_{args.rows}"]["train"]
    fit_peak = largest["write_reference"].get("peak_rss_before_mb")
    if fit_peak:
        result["peak_ratio"] = {
            "rows": args.rows,
            "step_peak_mb": largest["peak_rss_mb"],
            "fit_peak_mb": fit_peak,
            "ratio": round(largest["peak_rss_mb"] / fit_peak, 3),
            "target": PEAK_TARGET,
            "met": largest["peak_rss_mb"] / fit_peak <= PEAK_TARGET,
        }
    save_result("training", result)
    return result


def child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "train":
        emit(child_train(rest[0], rest[1]))
    elif kind == "dataset":
        emit(child_dataset(rest[0], int(rest[1])))
    else:
        raise SystemExit(f"unknown child {kind}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
    else:
        print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
