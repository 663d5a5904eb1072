"""The shape every reviewops operator shares: take upstream lineage records from XCom,
verify the inputs they name, run one domain step, return the step's lineage record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import AssetAlias, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import RuntimeTaskInstanceProtocol

    from reviewops.config import Settings
    from reviewops.lineage.record import Artifact, LineageRecord, StepResult
    from reviewops_airflow.openlineage import Lineage


class ReviewOpsOperator(BaseOperator):
    """Base class: subclasses implement :meth:`run_step` and name their upstream tasks.

    :param source: review source (file, folder or glob); empty means the configured default.
    :param data_root: root of all artifacts; empty means the configured default.
    :param upstream: role -> task_id of the tasks whose lineage records this step consumes;
        a tuple of task_ids names alternatives (branches of which exactly one ran): the
        record of the one that returned one is used.
    :param upstream_many: role -> task_id of a mapped task: the records of all its map indexes.

    A role names the task to read from; the DAG's edges (``>>``) say when to run. Each
    named task must be upstream of this one (not necessarily directly: a dataset read
    three steps later stays upstream through the branch between them), which
    ``tests/dags/test_dag_integrity.py`` proves for every DAG. The base class does not add
    the edge itself: a direct edge from a far ancestor would let a
    ``none_failed_min_one_success`` task run on a skipped branch (``evaluate_tuned`` would
    run on the local path, its ``snapshot_dataset`` having succeeded), and a mapped
    operator is constructed only when its task runs, too late to add an edge.
    """

    template_fields: tuple[str, ...] = ("source", "data_root")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        source: str = "",
        data_root: str = "{{ params.data_root }}",
        upstream: Mapping[str, str | tuple[str, ...]] | None = None,
        upstream_many: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.data_root = data_root
        self.upstream = dict(upstream or {})
        self.upstream_many = dict(upstream_many or {})

    def settings(self) -> Settings:
        """The configured settings with this run's source and data root, which a DAG
        trigger may set: refused, without retry, unless they resolve inside the roots the
        deployment allows (``REVIEWOPS_ALLOWED_ROOTS``)."""
        from reviewops.config import LocationNotAllowed, Settings

        try:
            return Settings.for_run(source=_text(self.source), data_root=_text(self.data_root))
        except LocationNotAllowed as exc:
            raise AirflowFailException(str(exc)) from None

    def upstream_records(self, context: Context) -> dict[str, LineageRecord]:
        from reviewops.lineage.record import LineageRecord

        records = {}
        for role, task_ids in self.upstream.items():
            candidates = (task_ids,) if isinstance(task_ids, str) else tuple(task_ids)
            found = [v for v in (self.pull_upstream(context, task_id) for task_id in candidates) if v]
            if len(found) != 1:
                what = "no lineage record" if not found else f"{len(found)} lineage records (expected one branch)"
                raise AirflowFailException(f"{what} from upstream task {' or '.join(map(repr, candidates))} ({role})")
            records[role] = LineageRecord.from_dict(found[0])
        return records

    def pull_upstream(self, context: Context, task_id: str) -> Any:
        """The return value of an upstream task (subclasses inside mapped task groups
        pull their own map index)."""
        return context["ti"].xcom_pull(task_ids=task_id)

    def upstream_record_lists(self, context: Context) -> dict[str, list[LineageRecord]]:
        """Records of mapped upstream tasks (one per map index), by role."""
        from reviewops.lineage.record import LineageRecord

        lists = {}
        for role, task_id in self.upstream_many.items():
            value = context["ti"].xcom_pull(task_ids=task_id)
            values = [value] if isinstance(value, dict) else [v for v in (value or []) if v]
            if not values:
                raise AirflowFailException(f"no lineage records from mapped upstream task {task_id!r} ({role})")
            lists[role] = [LineageRecord.from_dict(v) for v in values]
        return lists

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> tuple[StepResult, list[Artifact]]:
        """Run the domain step; return its result and the artifacts it read."""
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        from reviewops.lineage.record import LineageError, LineageRecord, code_version, new_record_id, utcnow_iso
        from reviewops.lineage.store import LineageStore

        started = utcnow_iso()
        settings = self.settings()  # a location the run may not use fails here, before any I/O
        upstream = self.upstream_records(context)
        self.many = self.upstream_record_lists(context)
        self.given_records = [*upstream.values(), *(r for records in self.many.values() for r in records)]
        try:
            result, inputs = self.run_step(context, upstream)
        except LineageError as exc:
            raise AirflowFailException(str(exc)) from exc
        store = LineageStore(settings.data_root)
        # Parents: the upstream tasks of this run, then whoever produced the exact bytes
        # this step read in other runs and DAGs (a model, curated weeks, ...).
        parents = [r.record_id for r in upstream.values()]
        parents += [r.record_id for records in self.many.values() for r in records]
        parents += [p for p in store.producer_ids(inputs, before=started) if p not in parents]
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
        try:
            store.write(record)
        except BaseException:
            self.discard_staged()
            raise
        # Outputs a step staged become visible only now that a record describes them.
        self.publish_staged()
        self.lineage_record = record  # for the OpenLineage listener, which runs in this process
        payload = record.to_dict()
        for outlet in self.outlets:
            if isinstance(outlet, AssetAlias):
                from reviewops_airflow.assets import located

                asset = located(outlet, settings.data_root, (a.uri for a in result.outputs))
                context["outlet_events"][outlet].add(asset, extra={"lineage": payload})
            else:
                context["outlet_events"][outlet].extra = {"lineage": payload}
        self.log.info("%s: %s", result.subject, _summary(result.metrics))
        self.log.info("lineage record %s (%d inputs, %d outputs)", record.record_id, len(inputs), len(result.outputs))
        return self.return_value(context, payload)

    def get_openlineage_facets_on_complete(self, task_instance: RuntimeTaskInstanceProtocol) -> Lineage:
        """The task's OpenLineage inputs, outputs and facets, from the lineage record it
        wrote (``reviewops_airflow.openlineage``); called by the provider's listener only
        when OpenLineage is configured."""
        from reviewops_airflow.openlineage import operator_lineage

        return operator_lineage(self._written_record())

    def get_openlineage_facets_on_failure(self, task_instance: RuntimeTaskInstanceProtocol) -> Lineage:
        """A failed task wrote no record: its inputs are what its upstream records gave it."""
        from reviewops_airflow.openlineage import failed_lineage

        return failed_lineage(list(getattr(self, "given_records", [])))

    def _written_record(self) -> LineageRecord:
        record: LineageRecord | None = getattr(self, "lineage_record", None)
        if record is None:  # the provider logs this as a warning and emits the event without datasets
            raise ValueError(f"task {self.task_id} wrote no lineage record in this process")
        return record

    def publish_staged(self) -> None:
        """Make visible what ``run_step`` staged (called once its lineage record is
        written); nothing by default: most steps write their outputs in place."""

    def discard_staged(self) -> None:
        """Drop what ``run_step`` staged when its lineage record could not be written."""

    def return_value(self, context: Context, record: dict[str, Any]) -> Any:
        """The XCom return value: the lineage record, unless a subclass must return
        something Airflow maps over (it then pushes the record under key ``lineage``)."""
        return record

    def effective_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.template_fields}


def verified(artifact: Artifact) -> Artifact:
    """The artifact, after checking its content still matches what upstream recorded."""
    artifact.verify()
    return artifact


def _text(value: Any) -> str:
    """A rendered path as text: native rendering turns a path that reads as a Python
    literal (``123``, ``True``) into that value, and a None Param stays None."""
    return "" if value is None else str(value)


def _summary(metrics: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in metrics.items() if isinstance(v, int | float | str))
