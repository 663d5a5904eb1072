"""Data plane: ingest + validate + transform of 200k and 1M synthetic reviews in one week
(the real ``ingest_reviews``, ``validate_reviews`` and ``transform_reviews`` over that
week's window, as reviews_initial_load runs them), against a bare pyarrow read of the same
TSV file and write of it to Parquet; throughput at each size, and peak RSS of both at the
largest (each side in its own process, so each VmHWM is its own).

The bare side reads every column as a string with pyarrow's defaults (threads on) and
writes the table with zstd, the compression the pipeline writes with; the same with one
thread is reported beside it. Each side runs in a fresh interpreter, after the file was
written, so the file is in the page cache for both.

    python -m bench.bench_dataplane [--sizes 200000,1000000] [--profile-rows 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench.common import (
    BENCH_WEEK,
    SOURCE_COLUMNS,
    emit,
    only_output,
    peak_rss_mb,
    profile_call,
    run_child,
    save_result,
    synthetic_source,
    work_dir,
    write_source_tsv,
)

SIZES = (200_000, 1_000_000)
# cProfile slows the pipeline's Python-heavy code about twofold: profile a smaller batch
# (the costs are per row, so the shares hold) to keep `make bench` short.
PROFILE_ROWS = 100_000
TARGET = 0.3
RSS_TARGET = 2.0  # peak RSS of the pipeline / of the bare read+write, at the largest size
MODULE = "bench.bench_dataplane"


def pipeline(data_root: str, source: str) -> dict[str, Any]:
    """The three steps as the weekly DAG's operators call them, each timed."""
    from reviewops.data.ingest import IngestParams, ingest_reviews
    from reviewops.data.transform import TransformParams, transform_reviews
    from reviewops.data.validate import ValidateParams, validate_reviews
    from reviewops.data.windows import Window

    window = Window.week(BENCH_WEEK)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    raw, _ = ingest_reviews(IngestParams(source=source, data_root=data_root, window=window))
    seconds["ingest"] = time.perf_counter() - started
    started = time.perf_counter()
    validated = validate_reviews(
        ValidateParams(data_root=data_root, batch_key=raw.subject), only_output(raw.outputs, "raw")
    )
    seconds["validate"] = time.perf_counter() - started
    started = time.perf_counter()
    curated = transform_reviews(
        TransformParams(data_root=data_root, window=window), only_output(validated.outputs, "validated")
    )
    seconds["transform"] = time.perf_counter() - started
    return {
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "rows_read": raw.metrics["rows_read"],
        "rows_valid": validated.metrics["rows_valid"],
        "rows_quarantined": validated.metrics["rows_quarantined"],
        "rows_curated": curated.metrics["rows_curated"],
    }


def child_pipeline(data_root: str, source: str, profile: bool) -> dict[str, Any]:
    if profile:
        return {"profile": profile_call(lambda: pipeline(data_root, source), top=20)}
    result = pipeline(data_root, source)
    total = sum(result["seconds"].values())
    result["total_seconds"] = round(total, 2)
    result["rows_per_second"] = round(result["rows_read"] / total, 1)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def read_tsv(source: str, threads: bool) -> Any:
    """The TSV as the bare side reads it: every column a string, pyarrow's defaults."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(use_threads=threads),
        parse_options=pacsv.ParseOptions(delimiter="\t", newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in SOURCE_COLUMNS}),
    )


def child_bare(source: str, target: str, threads: bool) -> dict[str, Any]:
    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = read_tsv(source, threads)
    read = time.perf_counter() - started
    pq.write_table(table, target, compression="zstd")
    total = time.perf_counter() - started
    return {
        "threads": threads,
        "rows": table.num_rows,
        "read_seconds": round(read, 2),
        "write_seconds": round(total - read, 2),
        "total_seconds": round(total, 2),
        "rows_per_second": round(table.num_rows / total, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_floor(source: str, work: str) -> dict[str, Any]:
    """The data plane's input and output alone, with no check: the source parsed and
    hashed, then the batch written and read back as the three steps write and read it
    (raw, validated, one curated week: three Parquet writes with zstd and two reads), one
    after another. The bare side's time over this one is the ratio that I/O alone reaches
    when nothing overlaps: not a hard limit (the steps overlap part of it), a yardstick."""
    import hashlib

    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = read_tsv(source, threads=True)
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    for step in ("raw", "validated", "curated"):
        path = f"{work}/{step}.parquet"
        pq.write_table(table, path, compression="zstd")
        if step != "curated":
            table = pq.read_table(path)
    total = time.perf_counter() - started
    return {
        "rows": table.num_rows,
        "total_seconds": round(total, 2),
        "rows_per_second": round(table.num_rows / total, 1),
    }


def measure(rows: int) -> dict[str, Any]:
    """Pipeline and bare sides on one synthetic TSV of ``rows`` reviews."""
    work = work_dir(f"dataplane-{rows}")
    started = time.perf_counter()
    source = write_source_tsv(synthetic_source(rows), work / "source" / "reviews.tsv")
    generated = round(time.perf_counter() - started, 2)
    print(f"dataplane: {rows} rows written to {source} in {generated}s; running the pipeline ...", flush=True)
    result: dict[str, Any] = {"rows": rows, "generate_seconds": generated, "source_bytes": source.stat().st_size}
    result["pipeline"] = run_child(MODULE, "pipeline", str(work / "data-root"), str(source))
    result["bare"] = run_child(MODULE, "bare", str(source), str(work / "bare.parquet"), "threads")
    result["bare_one_thread"] = run_child(MODULE, "bare", str(source), str(work / "bare.parquet"), "one")
    result["floor"] = run_child(MODULE, "floor", str(source), str(work))
    result["floor_ratio"] = round(result["floor"]["rows_per_second"] / result["bare"]["rows_per_second"], 4)
    pipeline_rate = result["pipeline"]["rows_per_second"]
    result["ratio"] = round(pipeline_rate / result["bare"]["rows_per_second"], 4)
    result["ratio_one_thread"] = round(pipeline_rate / result["bare_one_thread"]["rows_per_second"], 4)
    result["rss_ratio"] = round(result["pipeline"]["peak_rss_mb"] / result["bare"]["peak_rss_mb"], 3)
    print(f"  pipeline {pipeline_rate}/s, bare {result['bare']['rows_per_second']}/s: {result['ratio']}", flush=True)
    return result


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--profile-rows", type=int, default=PROFILE_ROWS, help="0: no profile")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    result: dict[str, Any] = {"sizes": {str(rows): measure(rows) for rows in sizes}}
    largest = result["sizes"][str(sizes[-1])]
    result["ratio_min"] = min(s["ratio"] for s in result["sizes"].values())
    result["target"] = TARGET
    result["met"] = result["ratio_min"] >= TARGET
    result["rss_rows"] = sizes[-1]
    result["rss_ratio"] = largest["rss_ratio"]
    result["rss_target"] = RSS_TARGET
    result["rss_met"] = largest["rss_ratio"] <= RSS_TARGET
    if args.profile_rows:
        work = work_dir("dataplane-profile")
        profiled = write_source_tsv(synthetic_source(args.profile_rows), work / "source" / "reviews.tsv")
        print(f"dataplane: cProfile of the pipeline on {args.profile_rows} rows ...", flush=True)
        result["profile_rows"] = args.profile_rows
        result["profile"] = run_child(MODULE, "pipeline", str(work / "data-root"), str(profiled), "profile")["profile"]
    save_result("dataplane", result)
    return result


def child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "pipeline":
        emit(child_pipeline(rest[0], rest[1], profile=len(rest) > 2))
    elif kind == "bare":
        emit(child_bare(rest[0], rest[1], threads=rest[2] == "threads"))
    elif kind == "floor":
        emit(child_floor(rest[0], rest[1]))
    else:
        raise SystemExit(f"unknown child {kind}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
    else:
        print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
