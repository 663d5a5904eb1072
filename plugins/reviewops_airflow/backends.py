"""Choosing the backend of a step at run time: the DAG holds both paths (local
TensorFlow and Vertex AI), one branch task picks one, the other is skipped.

The choice is the run's Param (``scoring_backend`` / ``training_backend``) when set,
else ``REVIEWOPS_SCORING_BACKEND`` / ``REVIEWOPS_TRAINING_BACKEND``, else ``local``;
it is resolved when the branch task runs, never while the DAG file is parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context


def backend_param(kind: str) -> Param:
    """The per-run override of the ``kind`` (``scoring`` or ``training``) backend."""
    from reviewops.config import BACKENDS

    return Param(
        "",
        type="string",
        enum=["", *BACKENDS],
        title=f"{kind.capitalize()} backend",
        description=f"local (TensorFlow on the workers) or vertex (Gemini on Vertex AI). "
        f"Empty: $REVIEWOPS_{kind.upper()}_BACKEND, else local.",
    )


class ChooseBackendOperator(BaseBranchOperator):
    """Follow ``local`` or ``vertex`` (a task id, or a list of them) by the resolved backend.

    :param kind: ``scoring`` or ``training``.
    :param backend: the run's override (templated); empty means the configured default.
    """

    template_fields = ("backend",)
    ui_color = "#fdf3e1"

    def __init__(
        self, *, kind: str, local: str | list[str], vertex: str | list[str], backend: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.local = local
        self.vertex = vertex
        self.backend = backend

    def choose_branch(self, context: Context) -> str | list[str]:
        from reviewops.config import LOCAL, Settings

        try:
            settings = Settings.from_env(**{f"{self.kind}_backend": (self.backend or "").strip().lower()})
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        chosen = getattr(settings, f"{self.kind}_backend")
        self.log.info("%s backend: %s", self.kind, chosen)
        return self.local if chosen == LOCAL else self.vertex
