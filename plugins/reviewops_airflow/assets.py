"""The Airflow Assets reviewops produces. Each asset event carries the producing task's
lineage record in its ``extra`` (``{"lineage": {...}}``), so the UI's asset views show
where every curated week, dataset, model and predictions partition came from.

The DAGs name asset *aliases*; each task run resolves its alias to the asset of its own
data root, with a URI catalogs understand: the partition or version it wrote
(``file:///…/artifacts/curated/week=2017-12-11``, ``gs://bucket/prefix/models/m-…``), or the
folder (``…/curated``) when one task wrote many partitions (the initial load). The data root
is a run's Param, known only when the task runs, so a fixed asset could not say where the
data is.

Why partitions, not one asset per folder: Airflow creates an alias's asset the first time
an event names it, and two task runs that do so at once both insert it; the second fails
its task on the unique index (seen in a 4-run parallel backfill: transform marked failed by
the API server, no retry). Distinct weeks and versions are distinct assets, so parallel
runs never create the same one; the folder asset is only emitted by the initial load. The
Asset's name is its URI: two data roots are two assets, and a run on a test folder never
takes over the name of the deployment's asset. An alias has no URI, so parsing a DAG file
loads no provider's URI handlers (the Google provider's Cloud Storage client among them,
about 0.7 s a parse); a ``gs://`` asset loads them in the task that emits it.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def located(alias: AssetAlias, data_root: str, output_uris: Iterable[str] = ()) -> Asset:
    """The asset ``alias`` stands for under ``data_root``: the one partition or version
    folder that ``output_uris`` (a task's outputs) wrote under the alias's folder, else the
    folder itself."""
    from reviewops.storage.paths import to_uri

    if alias.name not in FOLDERS:
        raise ValueError(f"asset alias {alias.name!r} names no reviewops folder; known: {', '.join(sorted(FOLDERS))}")
    folder = f"{to_uri(data_root)}/{FOLDERS[alias.name]}"
    written = {uri[len(folder) + 1 :].split("/", 1)[0] for uri in output_uris if uri.startswith(folder + "/")}
    written.discard("")
    return Asset(uri=f"{folder}/{written.pop()}" if len(written) == 1 else folder)
