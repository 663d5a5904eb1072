"""A provider's operator imported when its task runs, not when its DAG is parsed.

Every task process parses its DAG file again, and importing the Google provider's Vertex
AI operators pulls in ``google.cloud.aiplatform`` and ``vertexai``: about 4 s of CPU a
parse, paid by every task of every run even on a deployment that never calls Vertex AI.
:class:`LazyProviderOperator` holds the provider operator's dotted path and arguments,
and builds the operator from them in ``execute`` (and again in ``execute_complete``,
when the operator deferred), so the provider's code runs unchanged.

What it costs: the DAG holds a ``LazyProviderOperator``, not the provider's class, so the
task instance view shows no provider extra link (e.g. the Vertex AI console link of a
batch job); the job's id is still in the task's XCom (``batch_prediction_job_id``) and log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class LazyProviderOperator(BaseOperator):
    """Run ``operator`` (a dotted path to a provider's operator class) with ``arguments``.

    ``arguments`` is rendered as a whole (nested templates included) before the provider
    operator is built, so each of its values may be a template; the task's own settings
    (``retries``, ``pool``, ``execution_timeout``, ...) stay on this task.
    """

    template_fields = ("arguments",)
    ui_color = "#fdf3e1"

    def __init__(self, *, operator: str, arguments: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operator = operator
        self.arguments = dict(arguments)
        self.provider_operator: BaseOperator | None = None  # the last one built, for on_kill and tests

    def build(self) -> BaseOperator:
        """The provider's operator, with this task's id and the (rendered) arguments."""
        import importlib

        module, _, name = self.operator.rpartition(".")
        operator_class = getattr(importlib.import_module(module), name)
        self.provider_operator = operator_class(task_id=self.task_id, **self.arguments)
        return self.provider_operator

    def execute(self, context: Context) -> Any:
        return self.build().execute(context)

    def execute_complete(self, context: Context, event: Any = None, **kwargs: Any) -> Any:
        """Resume a provider operator that deferred: a fresh one, built from the same
        arguments, handles the trigger's event."""
        return self.build().execute_complete(context, event, **kwargs)  # type: ignore[attr-defined]

    def on_kill(self) -> None:
        if self.provider_operator is not None:
            self.provider_operator.on_kill()
