"""The lineage graph around an artifact: both kinds of node, hash checks, and a layout in
which every edge points down."""

from __future__ import annotations

from pathlib import Path

from reviewops.lineage.graph import CHANGED, MAX_NODES, MISSING, VERIFIED, lineage_graph, task_records
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageStore
from tests.include.lineage_samples import lineage_record


def _record(record_id: str, task_id: str, inputs: list[Artifact], outputs: list[Artifact], at: int) -> LineageRecord:
    return lineage_record(record_id, task_id, inputs, outputs, f"2026-01-01T00:00:{at:02d}+00:00")


def _file(root: Path, name: str, kind: str) -> Artifact:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{name}\n")
    return Artifact.of_file(path, kind)


def test_a_chain_is_laid_out_top_down_with_a_model_just_above_its_reader(tmp_path: Path) -> None:
    source = _file(tmp_path, "reviews.tsv", "source")
    curated = _file(tmp_path, "curated/week=2017-11-27/reviews.jsonl", "curated")
    model = _file(tmp_path, "models/m-aaaa/model.keras", "model")  # registered outside these records
    predictions = _file(tmp_path, "predictions/week=2017-11-27/predictions.jsonl", "predictions")
    store = LineageStore(tmp_path)
    store.write(_record("1" * 32, "transform", [source], [curated], 1))
    store.write(_record("2" * 32, "score", [curated, model], [predictions], 2))
    index = store.index()

    graph = lineage_graph(index, task_records(index, "reviews_weekly", "manual__1", "score"))

    nodes = {n.label: n for n in graph.nodes}
    assert set(nodes) == {"reviews.tsv", "transform", "reviews.jsonl", "model.keras", "score", "predictions.jsonl"}
    assert all(graph.by_id[a].y < graph.by_id[b].y for a, b in graph.edges), "every edge points down"
    assert nodes["model.keras"].column == nodes["score"].column - 1 == nodes["reviews.jsonl"].column
    assert nodes["model.keras"].version == "m-aaaa" and nodes["model.keras"].task_id is None
    assert nodes["predictions.jsonl"].task_id == "score" and nodes["predictions.jsonl"].focus
    assert {n.status for n in graph.nodes if n.type == "artifact"} == {VERIFIED}

    (tmp_path / "reviews.tsv").write_text("rewritten\n")
    (tmp_path / "models/m-aaaa/model.keras").unlink()
    statuses = {n.label: n.status for n in lineage_graph(index, [index.by_id["2" * 32]]).nodes}
    assert statuses["reviews.tsv"] == CHANGED and statuses["model.keras"] == MISSING


def test_a_huge_history_is_cut_short_and_says_so(tmp_path: Path) -> None:
    store = LineageStore(tmp_path)
    curated = _file(tmp_path, "curated/week=2017-11-27/reviews.jsonl", "curated")
    store.write(_record("f" * 32, "transform", [], [curated], 0))
    for i in range(MAX_NODES):  # every later run read the same partition
        report = _file(tmp_path, f"out/{i}.json", "report")
        store.write(_record(f"{i:032x}", f"monitor_{i}", [curated], [report], 1 + i % 58))
    index = store.index()
    graph = lineage_graph(index, [index.by_id["f" * 32]])
    assert graph.truncated and MAX_NODES - 2 <= len(graph.nodes) <= MAX_NODES
