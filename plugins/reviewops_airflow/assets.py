"""The Airflow Assets reviewops produces. Each asset event carries the producing task's
lineage record in its ``extra`` (``{"lineage": {...}}``), so the UI's asset views show
where every curated week, dataset, model and predictions partition came from."""

from __future__ import annotations

from airflow.sdk import Asset

CURATED_REVIEWS = Asset(name="reviewops_curated_reviews", uri="reviewops://curated")
DATASET_VERSIONS = Asset(name="reviewops_dataset_versions", uri="reviewops://datasets")
MODEL_VERSIONS = Asset(name="reviewops_model_versions", uri="reviewops://models")
PREDICTIONS = Asset(name="reviewops_predictions", uri="reviewops://predictions")
