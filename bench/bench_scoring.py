"""Scoring: ``reviewops.modeling.scoring.score_week`` on a curated week of 100k and 1M synthetic
reviews, against a bare ``model.predict`` of the same model on the same texts held in
memory.

Every measurement runs in a fresh interpreter, so its peak RSS (VmHWM) is its own.
TensorFlow and Keras are imported before the clock starts in both (their import cost is
the orchestration bench's subject); ``score_week`` is timed whole: registry lookup,
model load, Parquet read, predict, safety flags, Parquet write. The bare side is timed
around ``model.predict`` alone, with the same batch size, on the texts as one string
tensor (Keras refuses NumPy object arrays).

    python -m bench.bench_scoring [--sizes 100000,1000000] [--profile-rows 100000]
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
RSS_TARGET = 1.25
MODULE = "bench.bench_scoring"


def _import_tensorflow() -> float:
    started = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    return round(time.perf_counter() - started, 2)


def child_score(data_root: str, curated: str, profile: bool = False) -> dict[str, Any]:
    """score_week on the partition, timed whole; predict and safety-scan time split out by
    wrapping the two functions score_table_batches imports at call time."""
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
    reviewops.data.safety.scan_texts = clocked("scan_texts", reviewops.data.safety.scan_texts)
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


def child_prefilter(curated: str) -> dict[str, Any]:
    """The proposed fix for scan_texts, measured here, not applied: Arrow's RE2 kernels
    find, for a whole batch at once, the texts that hold any hint of a safety category
    (an @, a +, a phone-like run of digits, a URL hint, a lexicon term); only those go
    through ``scan_text``; every other text gets empty flags. Checked identical."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from reviewops.data import safety

    texts = pq.read_table(curated, columns=["text"]).column("text").combine_chunks()
    values = texts.to_pylist()
    started = time.perf_counter()
    current = safety.scan_texts(values)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    lowered = pc.utf8_lower(texts)
    hints = [
        pc.match_substring(texts, "@"),
        pc.match_substring(texts, "+"),
        pc.match_substring_regex(texts, safety._PHONE_HINT.pattern),
        pc.match_substring_regex(lowered, safety._URL_HINT.pattern),
        pc.match_substring_regex(lowered, safety._lexicon().pattern.pattern),
    ]
    candidates = functools.reduce(pc.or_, hints).to_pylist()
    nothing = safety.SafetyFlags(categories=(), score=0.0)
    proposed = [safety.scan_text(t) if hit else nothing for t, hit in zip(values, candidates, strict=True)]
    return {
        "rows": len(values),
        "scan_texts_seconds": round(seconds, 2),
        "prefiltered_seconds": round(time.perf_counter() - started, 2),
        "candidates": sum(candidates),
        "identical": proposed == current,
    }


def build_partition(data_root: Path, rows: int) -> Path:
    """The bench week's curated partition, written as transform writes it."""
    from reviewops.storage.io import write_parquet
    from reviewops.storage.paths import Layout

    return write_parquet(synthetic_curated(rows), Layout(data_root).curated(BENCH_WEEK.isoformat()))


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--profile-rows", type=int, default=SIZES[0], help="0: no profile")
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
    prefilter_root = work_dir(f"scoring-{min(sizes)}") / "data-root"
    curated = next((prefilter_root / "curated").glob("week=*/reviews.parquet"))
    print("scoring: the proposed scan_texts prefilter, measured ...", flush=True)
    sections["prefilter"] = run_child(MODULE, "prefilter", str(prefilter_root), str(curated))
    save_result("scoring", sections)
    return sections


def child(argv: list[str]) -> None:
    kind, data_root, curated, *rest = argv
    if kind == "score":
        emit(child_score(data_root, curated, profile=bool(rest)))
    elif kind == "bare":
        emit(child_bare(data_root, curated))
    elif kind == "prefilter":
        emit(child_prefilter(curated))
    else:
        raise SystemExit(f"unknown child {kind}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
    else:
        print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
