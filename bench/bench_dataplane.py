"""Data plane: ingest + validate + transform of 1M synthetic reviews in one week (the
real ``ingest_reviews``, ``validate_reviews`` and ``transform_reviews`` over that week's
window), against a bare pyarrow read of the same TSV file and write of it to Parquet.

The bare side reads every column as a string with pyarrow's defaults (threads on) and
writes the table with zstd, the compression the pipeline writes with; the same with one
thread is reported beside it. Each side runs in a fresh interpreter, after the file was
written, so the file is in the page cache for both.

    python -m bench.bench_dataplane [--rows 1000000] [--profile-rows 100000]
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

ROWS = 1_000_000
# cProfile slows the pipeline's Python-heavy code about twofold: profile a smaller batch
# (the costs are per row, so the shares hold) to keep `make bench` short.
PROFILE_ROWS = 100_000
CLEAN_SAMPLE = 200_000
TARGET = 0.3
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
    result["clean_text"] = clean_text_cost(data_root)
    return result


def clean_text_cost(data_root: str) -> dict[str, Any]:
    """After the timed run: one ``clean_text`` pass over a sample of the batch's raw texts,
    timed alone and scaled to the batch, and how many times the pipeline calls it per row
    (validate_frame, then _mark_duplicates, then curate_frame each map every text through
    it); the proposed split/join variant on the same sample, checked identical."""
    import pyarrow.parquet as pq

    from reviewops.data.parsing import clean_text
    from reviewops.data.windows import Window
    from reviewops.storage.paths import Layout

    texts = pq.read_table(Layout(data_root).raw(Window.week(BENCH_WEEK).key), columns=["text"]).column("text")
    values = texts.slice(0, CLEAN_SAMPLE).to_pylist()
    started = time.perf_counter()
    current = [clean_text(value) for value in values]
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    proposed = [clean_text_split_join(value) for value in values]
    scale = texts.length() / len(values)
    return {
        "rows": texts.length(),
        "sample_rows": len(values),
        "one_pass_seconds": round(seconds * scale, 2),
        "calls_per_row": 3,
        "split_join_seconds": round((time.perf_counter() - started) * scale, 2),
        "split_join_identical": proposed == current,
    }


def clean_text_split_join(value: str) -> str:
    """``reviewops.data.parsing.clean_text`` with its whitespace regex replaced by
    ``" ".join(text.split())`` (the proposed fix, measured here, not applied): ``str.split``
    and ``re``'s ``\\s`` both split on exactly the characters ``str.isspace`` accepts."""
    import html

    text = value
    for _ in range(2):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = " ".join(text.split())
    while len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].strip()
    return text


def child_bare(source: str, target: str, threads: bool) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(use_threads=threads),
        parse_options=pacsv.ParseOptions(delimiter="\t", newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in SOURCE_COLUMNS}),
    )
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


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--profile-rows", type=int, default=PROFILE_ROWS, help="0: no profile")
    args = parser.parse_args(argv)
    work = work_dir("dataplane")
    started = time.perf_counter()
    source = write_source_tsv(synthetic_source(args.rows), work / "source" / "reviews.tsv")
    generated = round(time.perf_counter() - started, 2)
    print(f"dataplane: {args.rows} rows written to {source} in {generated}s; running the pipeline ...", flush=True)
    result: dict[str, Any] = {"rows": args.rows, "generate_seconds": generated, "source_bytes": source.stat().st_size}
    result["pipeline"] = run_child(MODULE, "pipeline", str(work / "data-root"), str(source))
    result["bare"] = run_child(MODULE, "bare", str(source), str(work / "bare.parquet"), "threads")
    result["bare_one_thread"] = run_child(MODULE, "bare", str(source), str(work / "bare.parquet"), "one")
    result["ratio"] = round(result["pipeline"]["rows_per_second"] / result["bare"]["rows_per_second"], 4)
    result["ratio_one_thread"] = round(
        result["pipeline"]["rows_per_second"] / result["bare_one_thread"]["rows_per_second"], 4
    )
    result["target"] = TARGET
    result["met"] = result["ratio"] >= TARGET
    print(
        f"  pipeline {result['pipeline']['rows_per_second']}/s, bare {result['bare']['rows_per_second']}/s", flush=True
    )
    if args.profile_rows:
        profiled = source
        if args.profile_rows != args.rows:
            profiled = write_source_tsv(synthetic_source(args.profile_rows), work / "profile-source" / "reviews.tsv")
        print(f"dataplane: cProfile of the pipeline on {args.profile_rows} rows ...", flush=True)
        result["profile_rows"] = args.profile_rows
        result["profile"] = run_child(MODULE, "pipeline", str(work / "profile-root"), str(profiled), "profile")[
            "profile"
        ]
    save_result("dataplane", result)
    return result


def child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "pipeline":
        emit(child_pipeline(rest[0], rest[1], profile=len(rest) > 2))
    elif kind == "bare":
        emit(child_bare(rest[0], rest[1], threads=rest[2] == "threads"))
    else:
        raise SystemExit(f"unknown child {kind}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
    else:
        print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
