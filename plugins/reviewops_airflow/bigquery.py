"""The Airflow side of a BigQuery review source: the connection, through the Google
provider's ``BigQueryHook``. Everything else is in :mod:`reviewops.gcp.bigquery`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

    from reviewops.data.ingest import IngestParams
    from reviewops.data.windows import Window
    from reviewops.gcp.bigquery import BigQuerySourceConfig
    from reviewops.lineage.record import Artifact, StepResult

DEFAULT_GCP_CONN_ID = "google_cloud_default"


class BigQueryReviewSource:
    """Reads a ``bigquery://project.dataset.table`` source with the credentials and project
    of an Airflow Connection. Built at run time; the hook, and so the Connection, is only
    touched when a query runs.

    :param gcp_conn_id: the Google Cloud connection; its project runs (and pays for) the jobs.
    :param columns: per-run column mapping (field -> table column, or its JSON text),
        over ``REVIEWOPS_BIGQUERY_COLUMNS``.
    """

    def __init__(
        self, *, gcp_conn_id: str = DEFAULT_GCP_CONN_ID, columns: Mapping[str, Any] | str | None = None
    ) -> None:
        self.gcp_conn_id = gcp_conn_id
        self.columns = columns

    @cached_property
    def hook(self) -> BigQueryHook:
        from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

        return BigQueryHook(gcp_conn_id=self.gcp_conn_id, use_legacy_sql=False)

    def client(self) -> Any:
        return self.hook.get_client(project_id=self.hook.project_id)

    def config(self) -> BigQuerySourceConfig:
        from reviewops.gcp.bigquery import BigQuerySourceConfig

        return BigQuerySourceConfig.from_env(columns=self.columns)

    def ingest(self, params: IngestParams) -> tuple[StepResult, list[Artifact]]:
        from reviewops.gcp.bigquery import ingest_bigquery, parse_table

        parse_table(params.source)  # a bad name or mapping fails before the Connection is read
        config = self.config()
        return ingest_bigquery(params, config, self.client())

    def window(self, source: str) -> Window:
        """The whole weeks the table has reviews for, up to the current week."""
        from reviewops.gcp.bigquery import bigquery_window, parse_table

        parse_table(source)
        config = self.config()
        return bigquery_window(source, config, self.client(), dt.datetime.now(dt.UTC).date())
