"""``reviewops lineage`` prints the upstream lineage as a tree: a hop per level of
indentation, each record in full once, later mentions referring back; ``--json`` is the
breadth-first chain it always was."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.cli import main
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageStore
from reviewops.lineage.tree import NO_RECORD, SEE_ABOVE, SOURCE, lineage_tree


def _art(kind: str, name: str, sha: str = "1") -> Artifact:
    return Artifact(f"file:///data/{name}", kind, sha * 64, rows=3)


def _rec(
    rid: str, dag: str, task: str, at: int, inputs: tuple[Artifact, ...], outputs: tuple[Artifact, ...]
) -> LineageRecord:
    stamp = f"2024-01-01T00:{at:02d}:00+00:00"
    return LineageRecord(rid, dag, "run", task, 1, f"{task}-subject", "test", {}, inputs, outputs, (), {}, stamp, stamp)


SOURCE_FILE = Artifact("file:///src/reviews.tsv", "source", "5" * 64, rows=600)
WEEKS = tuple(_art("curated", f"curated/week={w}/reviews.parquet", str(w)) for w in (1, 2, 3))
DATASET = _art("dataset", "datasets/ds-1/train.parquet")
MODEL = _art("model", "models/m-1/model.keras")


def _history(store: LineageStore, predictions: Artifact) -> None:
    """An initial load, a dataset and a model built from it, and a week scored with the
    model on a curated week the same initial load wrote: its transform is a shared ancestor."""
    raw, valid = _art("raw", "raw/reviews.parquet"), _art("validated", "validated/reviews.parquet")
    for made in (
        _rec("ingest", "reviews_initial_load", "ingest", 1, (SOURCE_FILE,), (raw,)),
        _rec("validate", "reviews_initial_load", "validate", 2, (raw,), (valid,)),
        _rec("transform", "reviews_initial_load", "transform", 3, (valid,), WEEKS),
        _rec("snapshot", "reviews_training", "snapshot_dataset", 4, WEEKS, (DATASET,)),
        _rec("register", "reviews_training", "register_model", 5, (DATASET, _art("config", "unknown.json")), (MODEL,)),
        _rec("score", "reviews_weekly", "score", 6, (WEEKS[2], MODEL), (predictions,)),
    ):
        store.write(made)


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path]:
    partition = tmp_path / "data" / "predictions" / "week=3"
    partition.mkdir(parents=True)
    pq.write_table(pa.table({"review_id": ["a", "b"]}), partition / "predictions.parquet")
    _history(LineageStore(str(tmp_path / "data")), Artifact.of_file(partition / "predictions.parquet", "predictions"))
    return tmp_path / "data", partition


def test_each_record_is_shown_in_full_once_and_later_mentions_refer_back(chain: tuple[Path, Path]) -> None:
    data_root, partition = chain
    index = LineageStore(str(data_root)).index()
    start = index.resolve(str(partition))

    hops = lineage_tree(index, start)

    full = [h.record.record_id for h in hops if h.record is not None and h.note != SEE_ABOVE]
    assert sorted(full) == sorted(r.record_id for r in index.upstream(start))
    assert len(full) == len(set(full))
    (again,) = [h for h in hops if h.note == SEE_ABOVE]
    assert again.record is not None and again.record.record_id == "transform"
    assert full.index("transform") < hops.index(again), "the first mention is the full one"


def test_each_hop_is_one_level_deeper_than_the_record_that_read_it(chain: tuple[Path, Path]) -> None:
    data_root, partition = chain
    index = LineageStore(str(data_root)).index()
    hops = lineage_tree(index, index.resolve(str(partition)))
    depth = {h.record.record_id: h.depth for h in hops if h.record is not None and h.note != SEE_ABOVE}

    assert depth == {"score": 0, "transform": 1, "validate": 2, "ingest": 3, "register": 1, "snapshot": 2}
    (source,) = [h for h in hops if h.note == SOURCE]
    assert source.depth == 4 and source.artifact == SOURCE_FILE
    (unknown,) = [h for h in hops if h.note == NO_RECORD]
    assert unknown.depth == 2 and unknown.artifact.uri.endswith("unknown.json")
    (weeks,) = [h for h in hops if h.record is not None and h.record.record_id == "transform" and h.depth == 3]
    assert weeks.more == 2 and weeks.artifact == WEEKS[0], "the dataset's three weeks are one line"


def test_the_command_prints_the_tree_and_ends_with_the_sources(
    chain: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data_root, partition = chain

    assert main(["--data-root", str(data_root), "lineage", str(partition)]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0].startswith("predictions") and lines[0].endswith("<- reviews_weekly.score (score-subject)")
    assert lines[1].startswith("  curated ") and "<- reviews_initial_load.transform" in lines[1]
    assert lines[2].startswith("    validated ")
    assert any(line.startswith("      curated ") and "(+2 more curated)" in line for line in lines)
    assert sum(line.endswith(f"({SEE_ABOVE})") for line in lines) == 1
    assert lines[-3:-1] == ["", "sources:"]
    assert lines[-1].strip().startswith("source") and lines[-1].endswith("(source)") and SOURCE_FILE.uri in lines[-1]


def test_json_is_the_breadth_first_chain(chain: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    data_root, partition = chain

    assert main(["--data-root", str(data_root), "lineage", str(partition), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)

    index = LineageStore(str(data_root)).index()
    assert printed["records"] == [r.to_dict() for r in index.upstream(index.resolve(str(partition)))]
    assert [r["task_id"] for r in printed["records"]][:3] == ["score", "transform", "register_model"]
