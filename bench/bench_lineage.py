"""Lineage: what one task pays to find the producers of what it read, as the store grows.

Every reviewops task looks up who wrote the exact bytes it read (its cross-DAG parents), and
the registry who first wrote a model file (``LineageStore.writers``).
Before the producer index (``reviewops.lineage.index``) that meant reading and parsing
every record of ``lineage/records/``; now it is one listing of one index folder and a read
of the records it names. Both are timed on the same synthetic store at each size, as a
task does it (a new ``LineageStore`` each time, nothing cached between lookups), on the
local disk of the bench's scratch folder.

Synthetic records: a weekly score step's shape (a curated week in, a predictions file
and a metrics file out), ids, URIs and hashes generated; written straight as JSON files
with their index entries, so 100k records take seconds. The store grows in place from
one size to the next.

    python -m bench.bench_lineage [--sizes 1000,10000,100000] [--lookups 200]

``main(argv)`` is the entry point (``python -m bench.run_all`` runs it as ``lineage``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import emit, save_result, timed, work_dir
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageStore

SIZES = (1_000, 10_000, 100_000)
LOOKUPS = 200  # indexed lookups per size (each a few milliseconds at most)
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SCANS = {1_000: 5, 10_000: 3}  # full reads per size; one above 10k (seconds each)


def synthetic_record(i: int) -> LineageRecord:
    week = f"week={i % 5000:05d}"
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    stamp = (START + dt.timedelta(seconds=i)).isoformat()
    return LineageRecord(
        record_id=digest[:32],
        dag_id="reviews_weekly",
        run_id=f"backfill__{i}",
        task_id="score",
        try_number=1,
        subject=week,
        code_version="git:bench",
        params={"data_root": "/bench", "batch_size": 4096},
        inputs=(
            Artifact(f"file:///bench/curated/{week}/reviews.parquet", "curated", digest[::-1], 500, 40_000, "f" * 16),
        ),
        outputs=(
            Artifact(
                f"file:///bench/predictions/{week}/{i}/predictions.parquet",
                "predictions",
                digest,
                500,
                30_000,
                "e" * 16,
            ),
            Artifact(f"file:///bench/monitoring/{week}/{i}/metrics.json", "metrics", digest[1:] + "0", None, 2_000),
        ),
        parents=(digest[32:],),
        metrics={"rows": 500, "model_version": "m-bench"},
        started_at=stamp,
        ended_at=stamp,
    )


def grow(store: LineageStore, start: int, stop: int) -> float:
    """Write records ``start..stop`` with their index entries; seconds taken."""
    began = time.perf_counter()
    store.root.mkdir(parents=True, exist_ok=True)
    for first in range(start, stop, 5_000):
        batch = [synthetic_record(i) for i in range(first, min(stop, first + 5_000))]
        store.producer_index.add(batch)
        for record in batch:
            (store.root / f"{record.record_id}.json").write_text(json.dumps(record.to_dict()), encoding="utf-8")
    return time.perf_counter() - began


def per_lookup(root: Path, probes: list[Artifact], indexed: bool) -> list[float]:
    times = []
    for probe in probes:
        store = LineageStore(root)
        started = time.perf_counter()
        found = store.producer_ids([probe]) if indexed else store.index().producer_ids([probe])
        times.append(time.perf_counter() - started)
        assert len(found) == 1, (probe.uri, found)
    return times


def per_writers_lookup(root: Path, probes: list[Artifact]) -> list[float]:
    """The registry's question (who first wrote this model file?) through the index."""
    times = []
    for probe in probes:
        store = LineageStore(root)
        started = time.perf_counter()
        found = store.writers(probe.uri)
        times.append(time.perf_counter() - started)
        assert len(found) == 1, (probe.uri, found)
    return times


def measure(root: Path, size: int, lookups: int, rng: random.Random) -> dict[str, Any]:
    probes = [synthetic_record(rng.randrange(size)).outputs[0] for _ in range(lookups)]
    store = LineageStore(root)
    rebuilt, rebuild_s = timed(store.rebuild_index)
    assert rebuilt == size, (rebuilt, size)
    indexed = per_lookup(root, probes, indexed=True)
    writers = per_writers_lookup(root, probes)
    scans = per_lookup(root, probes[: SCANS.get(size, 1)], indexed=False)
    return {
        "records": size,
        "indexed_lookup_ms_median": round(statistics.median(indexed) * 1000, 3),
        "indexed_lookup_ms_p95": round(sorted(indexed)[int(len(indexed) * 0.95) - 1] * 1000, 3),
        "indexed_lookups": len(indexed),
        "writers_lookup_ms_median": round(statistics.median(writers) * 1000, 3),
        "full_read_lookup_s_median": round(statistics.median(scans), 3),
        "full_reads": len(scans),
        "rebuild_index_s": round(rebuild_s, 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--lookups", type=int, default=LOOKUPS)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    root = work_dir("lineage") / "data-root"
    store = LineageStore(root)
    rng = random.Random(0)
    rows, written = [], 0
    for size in sizes:
        grow_s = grow(store, written, size)
        written = size
        row = {**measure(root, size, args.lookups, rng), "grow_s": round(grow_s, 1)}
        rows.append(row)
        print(
            f"{size:>7} records: indexed lookup {row['indexed_lookup_ms_median']:.2f} ms median "
            f"(p95 {row['indexed_lookup_ms_p95']:.2f} ms, {row['indexed_lookups']} lookups), "
            f"writers of a URI {row['writers_lookup_ms_median']:.2f} ms; "
            f"full read {row['full_read_lookup_s_median']:.3f} s a lookup; rebuild {row['rebuild_index_s']} s",
            flush=True,
        )
    result = {"bench": "lineage", "sizes": rows}
    save_result("lineage", result)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def report_rows(figures: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Per-task producer lookup: flat as the store grows (the largest over the smallest size)."""
    rows = figures.get("sizes") or []
    if len(rows) < 2:
        return []
    small, large = rows[0], rows[-1]
    growth = large["indexed_lookup_ms_median"] / max(small["indexed_lookup_ms_median"], 1e-9)
    return [
        (
            "lineage",
            f"producer lookup, {large['records']:,} / {small['records']:,} records (median)",
            f"{growth:.2f}x",
            "flat (no growth with history)",
            "met" if growth <= 2 else "missed",
        ),
    ]


def report_section(figures: dict[str, Any]) -> str:
    """RESULTS.md's section: lookup through the index against reading every record."""
    lines = [
        "## Lineage: finding a task's producers (bench/bench_lineage.py)",
        "",
        "| records | indexed lookup median / p95 ms | writers of a URI median ms | reading every record s | rebuild s |",
        "|---|---|---|---|---|",
    ]
    for row in figures.get("sizes") or []:
        lines.append(
            f"| {row['records']:,} | {row['indexed_lookup_ms_median']:.2f} / {row['indexed_lookup_ms_p95']:.2f} | "
            f"{row['writers_lookup_ms_median']:.2f} | {row['full_read_lookup_s_median']:.3f} | {row['rebuild_index_s']} |"
        )
    return "\n".join(lines) + "\n"
