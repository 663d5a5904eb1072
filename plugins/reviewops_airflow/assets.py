"""The Airflow Assets reviewops produces. Each asset event carries the producing task's
lineage record in its ``extra`` (``{"lineage": {...}}``), so the UI's asset views show
where every curated week, dataset, model and predictions partition came from.

The DAGs name asset *aliases*; each task run resolves its alias to the asset of its own
data root, a folder with a URI catalogs understand: ``file:///…/artifacts/curated``
locally, ``gs://bucket/prefix/curated`` on Cloud Storage. The data root is a run's Param,
known only when the task runs, so a fixed asset could not say where the data is. The
Asset's name is its URI: two data roots are two assets, and a run on a test folder never
takes over the name of the deployment's asset. An alias has no URI, so parsing a DAG file
loads no provider's URI handlers (the Google provider's Cloud Storage client among them,
about 0.7 s a parse); a ``gs://`` asset loads them in the task that emits it.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

CURATED_REVIEWS = AssetAlias(name="reviewops_curated_reviews")
DATASET_VERSIONS = AssetAlias(name="reviewops_dataset_versions")
MODEL_VERSIONS = AssetAlias(name="reviewops_model_versions")
PREDICTIONS = AssetAlias(name="reviewops_predictions")

# The folder under the data root each alias stands for (reviewops.storage.paths.Layout).
FOLDERS = {
    CURATED_REVIEWS.name: "curated",
    DATASET_VERSIONS.name: "datasets",
    MODEL_VERSIONS.name: "models",
    PREDICTIONS.name: "predictions",
}


def located(alias: AssetAlias, data_root: str) -> Asset:
    """The asset ``alias`` stands for under ``data_root``."""
    from reviewops.storage.paths import to_uri

    if alias.name not in FOLDERS:
        raise ValueError(f"asset alias {alias.name!r} names no reviewops folder; known: {', '.join(sorted(FOLDERS))}")
    return Asset(uri=f"{to_uri(data_root)}/{FOLDERS[alias.name]}")
