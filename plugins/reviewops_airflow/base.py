"""The shape every reviewops operator shares: take upstream lineage records from XCom,
verify the inputs they name, run one domain step, return the step's lineage record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from reviewops.config import Settings
    from reviewops.lineage import Artifact, LineageRecord, StepResult


class ReviewOpsOperator(BaseOperator):
    """Base class: subclasses implement :meth:`run_step` and name their upstream tasks.

    :param source: review source (file, folder or glob); empty means the configured default.
    :param data_root: root of all artifacts; empty means the configured default.
    :param upstream: role -> task_id of the tasks whose lineage records this step consumes.
    """

    template_fields: tuple[str, ...] = ("source", "data_root")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        source: str = "{{ params.source }}",
        data_root: str = "{{ params.data_root }}",
        upstream: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.data_root = data_root
        self.upstream = dict(upstream or {})

    def settings(self) -> Settings:
        from reviewops.config import Settings

        return Settings.from_env(source=self.source, data_root=self.data_root)

    def upstream_records(self, context: Context) -> dict[str, LineageRecord]:
        from reviewops.lineage import LineageRecord

        records = {}
        for role, task_id in self.upstream.items():
            value = context["ti"].xcom_pull(task_ids=task_id)
            if not value:
                raise AirflowFailException(f"no lineage record from upstream task {task_id!r} ({role})")
            records[role] = LineageRecord.from_dict(value)
        return records

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> tuple[StepResult, list[Artifact]]:
        """Run the domain step; return its result and the artifacts it read."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        from reviewops.lineage import LineageError, LineageRecord, code_version, new_record_id, utcnow_iso
        from reviewops.lineage_store import LineageStore

        started = utcnow_iso()
        upstream = self.upstream_records(context)
        try:
            result, inputs = self.run_step(context, upstream)
        except LineageError as exc:
            raise AirflowFailException(str(exc)) from exc
        store = LineageStore(self.settings().data_root)
        # Parents: the upstream tasks of this run, then whoever produced the exact bytes
        # this step read in other runs and DAGs (a model, curated weeks, ...).
        parents = [r.record_id for r in upstream.values()]
        parents += [p for p in store.index().producer_ids(inputs, before=started) if p not in parents]
        ti = context["ti"]
        record = LineageRecord(
            record_id=new_record_id(),
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            try_number=ti.try_number,
            subject=result.subject,
            code_version=code_version(),
            params=self.effective_params(),
            inputs=tuple(inputs),
            outputs=result.outputs,
            parents=tuple(parents),
            metrics=result.metrics,
            started_at=started,
            ended_at=utcnow_iso(),
        )
        store.write(record)
        payload = record.to_dict()
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {"lineage": payload}
        self.log.info("%s: %s", result.subject, _summary(result.metrics))
        self.log.info("lineage record %s (%d inputs, %d outputs)", record.record_id, len(inputs), len(result.outputs))
        return payload

    def effective_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.template_fields}


def verified(artifact: Artifact) -> Artifact:
    """The artifact, after checking its content still matches what upstream recorded."""
    artifact.verify()
    return artifact


def _summary(metrics: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in metrics.items() if isinstance(v, int | float | str))
