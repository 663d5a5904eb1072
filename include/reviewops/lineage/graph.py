"""The lineage graph around one artifact, laid out for drawing.

Lineage is bipartite: artifacts (files, by URI and content hash) and the task runs
(lineage records) that read and wrote them. :func:`lineage_graph` takes the records that
produced a target, walks up to the source files and down to everything built from the
target's outputs (:class:`~reviewops.lineage.store.LineageIndex`), and returns both kinds
of node in layers, top (sources) to bottom (what was built last), with each artifact
checked against its recorded sha256. The geometry is computed here, so a page only draws
it and a JSON client gets the same graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageIndex, LineageNotFound
from reviewops.storage.io import sha256_file
from reviewops.storage.paths import from_uri

log = logging.getLogger(__name__)

# A week's lineage reaches up through its model to the initial load, whose transform wrote
# every week of the history, and a dataset feeds every model trained on it: the graph keeps
# the nearest records and, of each, the files that link it to the others, and says what it
# left out, rather than drawing a page nobody can read.
MAX_RECORDS = 30
MAX_PER_SIDE = 4
COLUMN_WIDTH = 210  # a slot within a layer
ROW_HEIGHT = 74  # a layer
NODE_WIDTH = 190
NODE_HEIGHT = 46
MARGIN = 12

VERIFIED = "verified"
CHANGED = "changed"
MISSING = "missing"
UNREADABLE = "unreadable"


@dataclass
class Node:
    id: str
    type: str  # "artifact" or "task"
    label: str
    kind: str  # an artifact's kind (curated, model, ...), or "task"
    version: str | None = None  # ds-…, m-…, week=… or the batch an artifact belongs to
    uri: str | None = None
    sha256: str | None = None
    rows: int | None = None
    status: str | None = None  # an artifact's hash check: verified, changed, missing, unreadable
    dag_id: str | None = None  # the task run that produced an artifact, or the task run itself
    run_id: str | None = None
    task_id: str | None = None
    ended_at: str | None = None
    hidden_inputs: int = 0  # a task's files read or written that the graph leaves out
    hidden_outputs: int = 0
    focus: bool = False  # the target the graph was asked for
    column: int = 0  # the layer
    x: int = 0
    y: int = 0


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[tuple[str, str]]
    truncated: bool = False
    width: int = 0
    height: int = 0
    by_id: dict[str, Node] = field(init=False, repr=False)
    node_width: ClassVar[int] = NODE_WIDTH
    node_height: ClassVar[int] = NODE_HEIGHT

    def __post_init__(self) -> None:
        self.by_id = {node.id: node for node in self.nodes}

    def to_dict(self) -> dict[str, Any]:
        nodes = [{k: v for k, v in vars(n).items() if k not in ("column", "x", "y")} for n in self.nodes]
        return {"nodes": nodes, "edges": [list(e) for e in self.edges], "truncated": self.truncated}


def task_records(index: LineageIndex, dag_id: str, run_id: str, task_id: str) -> list[LineageRecord]:
    """The record a task instance wrote (its latest try); :class:`LineageNotFound` when it
    wrote none (it has not succeeded, or it is not a reviewops task)."""
    found = [r for r in index.records if (r.dag_id, r.run_id, r.task_id) == (dag_id, run_id, task_id)]
    if not found:
        raise LineageNotFound(
            f"task {task_id} of run {run_id} ({dag_id}) wrote no lineage record: it has not succeeded yet, "
            "or it is not a reviewops task"
        )
    return [max(found, key=lambda r: (r.try_number, r.ended_at))]


def lineage_graph(index: LineageIndex, start: list[LineageRecord], focus_uris: Iterable[str] = ()) -> Graph:
    """The records upstream of ``start`` and downstream of their outputs, as a graph: the
    nearest :data:`MAX_RECORDS` of them, and of each, the files that link it to another
    record of the graph, the target, or a source nothing recorded writing (at most
    :data:`MAX_PER_SIDE` a side; the task node counts the rest)."""
    focus = set(focus_uris) or {a.uri for r in start for a in r.outputs}
    records, downstream, truncated = _nearest(index, start, sorted(focus))
    ids = {r.record_id for r in records}
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []
    for record in sorted(records, key=lambda r: (r.ended_at, r.record_id)):  # producers before readers
        task = _task_node(record, focus=record in start)
        nodes[task.id] = task
        inputs = _shown(record.inputs, focus, partial(_read_from_graph, index, ids, record))
        outputs = _shown(record.outputs, focus, partial(_written_for_graph, index, ids, downstream, record))
        task.hidden_inputs = len(record.inputs) - len(inputs)
        task.hidden_outputs = len(record.outputs) - len(outputs)
        for artifact in inputs:
            node = nodes.setdefault(_artifact_id(artifact), _artifact_node(artifact, focus))
            edges.append((node.id, task.id))
        for artifact in outputs:
            node = nodes.setdefault(_artifact_id(artifact), _artifact_node(artifact, focus))
            if node.task_id is None:
                node.dag_id, node.run_id, node.task_id = record.dag_id, record.run_id, record.task_id
            edges.append((task.id, node.id))
    graph = Graph(list(nodes.values()), list(dict.fromkeys(edges)), truncated)
    _layout(graph)
    return graph


def _nearest(
    index: LineageIndex, start: list[LineageRecord], focus: list[str]
) -> tuple[list[LineageRecord], set[str], bool]:
    """Up to :data:`MAX_RECORDS` records, nearest first (both walks are breadth first), the
    budget shared between upstream of ``start`` and downstream of the target; the ids of
    the downstream ones; whether any was left out."""
    up = index.upstream(start)
    seen = {r.record_id for r in up}
    down = [r for r in index.downstream(focus) if r.record_id not in seen]
    take_down = min(len(down), max(MAX_RECORDS // 2, MAX_RECORDS - len(up)))
    take_up = min(len(up), MAX_RECORDS - take_down)
    kept = down[:take_down]
    return [*up[:take_up], *kept], {r.record_id for r in kept}, take_up < len(up) or take_down < len(down)


def _read_from_graph(index: LineageIndex, ids: set[str], record: LineageRecord, artifact: Artifact) -> bool:
    """Whether ``record`` read this from a record of the graph, or from a source no record wrote."""
    producer = index.producer(artifact, before=record.started_at)
    return producer is None or producer.record_id in ids


def _written_for_graph(
    index: LineageIndex, ids: set[str], downstream: set[str], record: LineageRecord, artifact: Artifact
) -> bool:
    """Whether a record of the graph read this, or ``record`` is downstream of the target
    (what it wrote is the target's impact)."""
    return record.record_id in downstream or any(c.record_id in ids for c in index.consumers.get(artifact.uri, []))


def _shown(artifacts: Iterable[Artifact], focus: set[str], linked: Callable[[Artifact], bool]) -> list[Artifact]:
    """The target first, then the files that link to the rest of the graph, at most MAX_PER_SIDE."""
    candidates = [a for a in artifacts if a.uri in focus] + [a for a in artifacts if a.uri not in focus and linked(a)]
    return candidates[:MAX_PER_SIDE]


def _artifact_id(artifact: Artifact) -> str:
    return f"a:{artifact.uri}@{artifact.sha256}"


def _task_node(record: LineageRecord, focus: bool) -> Node:
    return Node(
        id=f"t:{record.record_id}",
        type="task",
        label=record.task_id,
        kind="task",
        version=record.subject,
        dag_id=record.dag_id,
        run_id=record.run_id,
        task_id=record.task_id,
        ended_at=record.ended_at,
        focus=focus,
    )


def _artifact_node(artifact: Artifact, focus: set[str]) -> Node:
    path = from_uri(artifact.uri)
    return Node(
        id=_artifact_id(artifact),
        type="artifact",
        label=path.name,
        kind=artifact.kind,
        version=path.parent.name,
        uri=artifact.uri,
        sha256=artifact.sha256,
        rows=artifact.rows,
        status=verify_status(artifact),
        focus=artifact.uri in focus,
    )


def verify_status(artifact: Artifact) -> str:
    """Whether the bytes at the artifact's URI are still the ones recorded."""
    path = from_uri(artifact.uri)
    try:
        if not path.exists():
            return MISSING
        return VERIFIED if sha256_file(path) == artifact.sha256 else CHANGED
    except OSError as exc:
        log.warning("lineage graph: %s cannot be read (%s)", artifact.uri, exc)
        return UNREADABLE


def _layout(graph: Graph) -> None:
    """Layers top (sources) to bottom, by longest path from a source (edges only go forward
    in time, so the graph has no cycle); a node nothing wrote (a source file, a model
    registered outside these records) sits just above its first reader rather than at the
    top, so its edge stays short. Within a layer, nodes keep their order of appearance,
    which follows the records' order."""
    incoming: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    outgoing: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for source, target in graph.edges:
        incoming[target].append(source)
        outgoing[source].append(target)
    depth: dict[str, int] = {}

    def layer(node_id: str) -> int:
        if node_id not in depth:
            depth[node_id] = 0  # guards a malformed cycle
            depth[node_id] = 1 + max((layer(p) for p in incoming[node_id]), default=-1)
        return depth[node_id]

    for node in graph.nodes:
        node.column = layer(node.id)
    for node in graph.nodes:
        readers = [depth[t] for t in outgoing[node.id]]
        if not incoming[node.id] and readers:
            node.column = max(0, min(readers) - 1)
    slots: dict[int, int] = {}
    for node in graph.nodes:
        slot = slots.get(node.column, 0)
        slots[node.column] = slot + 1
        node.x = MARGIN + slot * COLUMN_WIDTH
        node.y = MARGIN + node.column * ROW_HEIGHT
    graph.width = 2 * MARGIN + max(slots.values(), default=0) * COLUMN_WIDTH
    graph.height = 2 * MARGIN + (max(slots, default=0) + 1) * ROW_HEIGHT
