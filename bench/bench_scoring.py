"""Scoring: ``reviewops.modeling.scoring.score_week`` on a curated week of 100k and 1M synthetic
reviews, against a bare ``model.predict`` of the same model on the same texts held in
memory.

Every measurement runs in a fresh interpreter, so its peak RSS (VmHWM) is its own.
TensorFlow and Keras are imported before the clock starts in both (their import cost is
the orchestration bench's subject); ``score_week`` is timed whole: registry lookup,
model load, Parquet read, predict, safety flags, Parquet write. The bare side is timed
around ``model.predict`` alone, with the same batch size, on the texts as one string
tensor (Keras refuses NumPy object arrays).

Whole process: ``reviewops score`` of a 200k-review TSV (read, validate, clean, load the
model, predict, write Parquet) against a bare process doing the same with the plain tools
(pandas ``read_csv``, Keras ``predict`` of the same model, pyarrow Parquet write), each
timed from start to exit, imports included.

    python -m bench.bench_scoring [--sizes 100000,1000000] [--profile-rows 100000] [--process-rows 200000]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_WEEK,
    champion_root,
    copy_registry,
    emit,
    peak_rss_mb,
    profile_call,
    rss_mb,
    run_child,
    save_result,
    synthetic_curated,
    work_dir,
)

SIZES = (100_000, 1_000_000)
BATCH_SIZE = 4096  # ScoreParams' default
THROUGHPUT_TARGET = 0.8
PROCESS_ROWS = 200_000
PROCESS_TARGET = 0.8
RSS_TARGET = 1.25
MODULE = "bench.bench_scoring"


def _import_tensorflow() -> float:
    started = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    return round(time.perf_counter() - started, 2)


def child_score(data_root: str, curated: str, profile: bool = False) -> dict[str, Any]:
    """score_week on the partition, timed whole; predict, safety-scan and model-load time
    split out by wrapping the functions score_table_batches imports at call time."""
    import reviewops.data.safety
    import reviewops.modeling.training
    from reviewops.lineage.record import Artifact
    from reviewops.modeling.scoring import ScoreParams, score_week

    import_seconds = _import_tensorflow()
    spent = {"predict_proba": 0.0, "scan_texts": 0.0, "load_model": 0.0}

    def clocked(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    reviewops.modeling.training.predict_proba = clocked("predict_proba", reviewops.modeling.training.predict_proba)
    reviewops.modeling.training.load_model = clocked("load_model", reviewops.modeling.training.load_model)
    # The safety scan score_table_batches calls (on the batch's Arrow column); its time is
    # reported under the name the figures have always had.
    reviewops.data.safety.scan_text_array = clocked("scan_texts", reviewops.data.safety.scan_text_array)
    partition = Artifact.of_file(Path(curated), "curated")
    rss_before = rss_mb()

    def run() -> Any:
        return score_week(ScoreParams(data_root=data_root, batch_size=BATCH_SIZE), partition)

    if profile:
        return {"profile": profile_call(run, top=18), "rows": partition.rows}
    started = time.perf_counter()
    result, _ = run()
    seconds = time.perf_counter() - started
    rows = result.metrics["rows_scored"]
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds, 1),
        "tf_import_seconds": import_seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "split_seconds": {
            **{k: round(v, 2) for k, v in spent.items()},
            "other": round(seconds - sum(spent.values()), 2),
        },
        "batches": len(result.metrics["batch_seconds"]),
    }


def child_bare(data_root: str, curated: str) -> dict[str, Any]:
    """model.predict of the champion on the partition's texts, already in memory (as a
    string tensor: Keras refuses NumPy object arrays)."""
    import_seconds = _import_tensorflow()
    import numpy as np
    import pyarrow.parquet as pq
    import tensorflow as tf

    from reviewops.contracts import MODEL_FILE
    from reviewops.modeling.training import load_model
    from reviewops.registry.store import Registry

    registry = Registry(data_root)
    model = load_model(registry.path(registry.require_champion()) / MODEL_FILE)
    texts = pq.read_table(curated, columns=["text"]).column("text").to_pylist()
    batch = tf.constant(np.asarray(texts, dtype=object).reshape(-1, 1))
    rss_before = rss_mb()
    started = time.perf_counter()
    probabilities = model.predict(batch, batch_size=BATCH_SIZE, verbose=0)
    seconds = time.perf_counter() - started
    assert probabilities.shape == (len(texts), 3), probabilities.shape
    return {
        "rows": len(texts),
        "seconds": round(seconds, 2),
        "rows_per_second": round(len(texts) / seconds, 1),
        "tf_import_seconds": import_seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }


# The bare whole process: what a person would write with the plain tools. The model is
# loaded by reviewops' load_model only because the file names our TF-IDF layer class.
BARE_PROCESS = """
import sys
from pathlib import Path
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from reviewops.modeling.training import load_model
source, model_file, out = sys.argv[1:4]
frame = pd.read_csv(source, sep="\\t", dtype=str, keep_default_na=False)
model = load_model(Path(model_file))
texts = tf.constant(frame["review"].to_numpy(dtype=object).reshape(-1, 1))
probabilities = model.predict(texts, batch_size=4096, verbose=0)
columns = {"review_id": pa.array(frame[frame.columns[0]].tolist(), pa.string())}
for i, name in enumerate(("negative", "neutral", "positive")):
    columns["prob_" + name] = pa.array(probabilities[:, i], pa.float32())
pq.write_table(pa.table(columns), out, compression="zstd")
"""


def whole_process(rows: int, champion: Path) -> dict[str, Any]:
    """``reviewops score`` of a TSV against the bare process, each a fresh process timed
    from start to exit (same TSV, same model, file in the page cache for both)."""
    import subprocess

    from bench.common import child_env, synthetic_source, write_source_tsv
    from reviewops.contracts import MODEL_FILE
    from reviewops.registry.store import Registry

    work = work_dir(f"scoring-process-{rows}")
    source = write_source_tsv(synthetic_source(rows), work / "reviews.tsv")
    registry = Registry(champion)
    model_file = registry.path(registry.require_champion()) / MODEL_FILE
    commands = {
        "reviewops_score": [
            str(Path(sys.executable).with_name("reviewops")),
            "--data-root",
            str(champion),
            "score",
            "--input",
            str(source),
            "--output",
            str(work / "scored.parquet"),
        ],
        "bare_process": [sys.executable, "-c", BARE_PROCESS, str(source), str(model_file), str(work / "bare.parquet")],
    }
    result: dict[str, Any] = {"rows": rows, "source_bytes": source.stat().st_size}
    for name, command in commands.items():
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=child_env(), check=False)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"{name} failed: {done.stderr[-2000:]}")
        result[name] = {"seconds": round(seconds, 2), "rows_per_second": round(rows / seconds, 1)}
        print(f"scoring: whole process {name}: {seconds:.1f}s", flush=True)
    result["ratio"] = round(result["bare_process"]["seconds"] / result["reviewops_score"]["seconds"], 3)
    result["target"] = PROCESS_TARGET
    result["met"] = result["ratio"] >= PROCESS_TARGET
    return result


def build_partition(data_root: Path, rows: int) -> Path:
    """The bench week's curated partition, written as transform writes it."""
    from reviewops.storage.io import write_parquet
    from reviewops.storage.paths import Layout

    return write_parquet(synthetic_curated(rows), Layout(data_root).curated(BENCH_WEEK.isoformat()))


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--profile-rows", type=int, default=SIZES[0], help="0: no profile")
    parser.add_argument("--process-rows", type=int, default=PROCESS_ROWS, help="0: no whole-process comparison")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    champion = champion_root()
    sections: dict[str, Any] = {"sizes": {}}
    for rows in sizes:
        data_root = work_dir(f"scoring-{rows}") / "data-root"
        copy_registry(champion, data_root)
        started = time.perf_counter()
        curated = build_partition(data_root, rows)
        generated = round(time.perf_counter() - started, 2)
        print(f"scoring: {rows} rows generated in {generated}s; scoring ...", flush=True)
        score = run_child(MODULE, "score", str(data_root), str(curated))
        bare = run_child(MODULE, "bare", str(data_root), str(curated))
        ratio = round(score["rows_per_second"] / bare["rows_per_second"], 3)
        sections["sizes"][str(rows)] = {
            "generate_seconds": generated,
            "curated_bytes": curated.stat().st_size,
            "score_week": score,
            "bare_predict": bare,
            "throughput_ratio": ratio,
        }
        print(f"  score_week {score['rows_per_second']}/s, bare {bare['rows_per_second']}/s: {ratio}", flush=True)
    small, large = str(min(sizes)), str(max(sizes))
    throughput = min(s["throughput_ratio"] for s in sections["sizes"].values())
    sections["throughput_ratio_min"] = throughput
    sections["throughput_target"] = THROUGHPUT_TARGET
    sections["throughput_met"] = throughput >= THROUGHPUT_TARGET
    if small != large:
        rss = (
            sections["sizes"][large]["score_week"]["peak_rss_mb"]
            / sections["sizes"][small]["score_week"]["peak_rss_mb"]
        )
        sections["rss_ratio"] = round(rss, 3)
        sections["rss_target"] = RSS_TARGET
        sections["rss_met"] = rss <= RSS_TARGET
    if args.profile_rows:
        data_root = work_dir(f"scoring-{args.profile_rows}") / "data-root"
        if not (data_root / "curated").exists():
            copy_registry(champion, data_root)
            build_partition(data_root, args.profile_rows)
        curated = next((data_root / "curated").glob("week=*/reviews.parquet"))
        print(f"scoring: cProfile of score_week on {args.profile_rows} rows ...", flush=True)
        sections["profile"] = run_child(MODULE, "score", str(data_root), str(curated), "profile")["profile"]
        sections["profile_rows"] = args.profile_rows
    if args.process_rows:
        sections["process"] = whole_process(args.process_rows, champion)
    save_result("scoring", sections)
    return sections


def child(argv: list[str]) -> None:
    kind, data_root, curated, *rest = argv
    if kind == "score":
        emit(child_score(data_root, curated, profile=bool(rest)))
    elif kind == "bare":
        emit(child_bare(data_root, curated))
    else:
        raise SystemExit(f"unknown child {kind}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
    else:
        print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
