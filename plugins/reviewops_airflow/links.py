"""Extra links from a reviewops task instance to the plugin's pages.

Registered through the plugin (``operator_extra_links``), not on the operators: the
api-server attaches them when it deserialises a DAG, matching each operator class by name
and module. ``get_link`` runs in the api-server for every links request, so it only
builds a URL from the task instance's key; the page it opens finds the task's lineage
record (and from it the week) and says plainly when the task has written none yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

from reviewops_airflow import operators, prompt_evaluation, rollout, vertex_batch, vertex_endpoint, vertex_tuning
from reviewops_airflow.base import ReviewOpsOperator
from reviewops_airflow.ui import PREFIX

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

# Imported for their operator classes: every subclass of ReviewOpsOperator writes a lineage record.
_MODULES = (operators, prompt_evaluation, rollout, vertex_batch, vertex_endpoint, vertex_tuning)


def _subclasses(cls: type[Any]) -> list[type[Any]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return list(dict.fromkeys(found))


def _task_query(ti_key: TaskInstanceKey) -> str:
    return urlencode({"dag_id": ti_key.dag_id, "run_id": ti_key.run_id, "task_id": ti_key.task_id})


class LineageLink(BaseOperatorLink):
    """The lineage graph around what the task instance wrote."""

    name = "ReviewOps lineage"
    operators: ClassVar[list[type[Any]]] = _subclasses(ReviewOpsOperator)

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return f"{PREFIX}/lineage/?{_task_query(ti_key)}"


class WeekReportLink(BaseOperatorLink):
    """The monitoring report of the week the task instance monitored or checked."""

    name = "ReviewOps week report"
    operators: ClassVar[list[type[Any]]] = [operators.MonitorWeekOperator, operators.CheckWeekOperator]

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return f"{PREFIX}/tasks/report?{_task_query(ti_key)}"
