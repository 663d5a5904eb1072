"""The Airflow Assets reviewops produces. Each asset event carries the producing task's
lineage record in its ``extra`` (``{"lineage": {...}}``), so the UI's asset views show
where every curated week, dataset, model and predictions partition came from."""

from __future__ import annotations

from airflow.sdk import Asset

# An "x-" scheme is Airflow's mark of a URI scheme of one's own: it is taken as it is. Any
# other scheme but file:// makes the first Asset of a parse load every provider's URI
# handlers, the Google provider's Cloud Storage client among them (about 0.7 s a parse).

CURATED_REVIEWS = Asset(name="reviewops_curated_reviews", uri="x-reviewops://curated")
DATASET_VERSIONS = Asset(name="reviewops_dataset_versions", uri="x-reviewops://datasets")
MODEL_VERSIONS = Asset(name="reviewops_model_versions", uri="x-reviewops://models")
PREDICTIONS = Asset(name="reviewops_predictions", uri="x-reviewops://predictions")
