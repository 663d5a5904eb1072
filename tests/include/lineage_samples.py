"""Lineage records for tests that need a small history in a store."""

from __future__ import annotations

from collections.abc import Sequence

from reviewops.lineage.record import Artifact, LineageRecord


def lineage_record(
    record_id: str,
    task_id: str,
    inputs: Sequence[Artifact],
    outputs: Sequence[Artifact],
    at: str,
    run_id: str = "manual__1",
) -> LineageRecord:
    """A record of ``task_id`` in a ``reviews_weekly`` run that started and ended at ``at``."""
    return LineageRecord(
        record_id=record_id,
        dag_id="reviews_weekly",
        run_id=run_id,
        task_id=task_id,
        try_number=1,
        subject="week=2017-11-27",
        code_version="test",
        params={},
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        parents=(),
        metrics={},
        started_at=at,
        ended_at=at,
    )
