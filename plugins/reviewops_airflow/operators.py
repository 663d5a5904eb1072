"""Operators of the review lifecycle. Each reads its rendered arguments and upstream
records, calls one domain function in ``reviewops`` and returns a lineage record."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from reviewops_airflow.base import ReviewOpsOperator, verified

if TYPE_CHECKING:
    from airflow.sdk import Context

    from reviewops.lineage import Artifact, LineageRecord, StepResult
    from reviewops.windows import Window

StepOutput = tuple["StepResult", list["Artifact"]]


class IngestReviewsOperator(ReviewOpsOperator):
    """Read the rows of the source that fall in the run's window into a raw batch.

    The window is, in order: ``window_start``/``window_end`` when given; the ``week``
    (a Monday) when given; the whole source when ``whole_source`` is set; else the
    run's data interval, which must be one calendar week.
    """

    template_fields = (*ReviewOpsOperator.template_fields, "week", "window_start", "window_end")

    def __init__(
        self,
        *,
        week: str | None = None,
        window_start: str | None = None,
        window_end: str | None = None,
        whole_source: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.week = week
        self.window_start = window_start
        self.window_end = window_end
        self.whole_source = whole_source

    def resolve_window(self, context: Context, source: str) -> Window:
        from reviewops.sources import source_window
        from reviewops.windows import Window, WindowError, parse_day, resolve_week

        try:
            if self.window_start or self.window_end:
                if not (self.window_start and self.window_end):
                    raise WindowError("give both window_start and window_end (YYYY-MM-DD), or neither")
                return Window(parse_day(self.window_start, "window_start"), parse_day(self.window_end, "window_end"))
            if self.week or not self.whole_source:
                dag_run = context.get("dag_run")
                return resolve_week(
                    conf_week=self.week,
                    data_interval_start=context.get("data_interval_start"),
                    data_interval_end=context.get("data_interval_end"),
                    partition_key=getattr(dag_run, "partition_key", None),
                )
            return source_window(source)
        except WindowError as exc:
            raise AirflowFailException(str(exc)) from exc

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.ingest import IngestParams, ingest_reviews

        settings = self.settings()
        window = self.resolve_window(context, settings.source)
        self.log.info("ingesting %s from %s", window.key, settings.source)
        return ingest_reviews(IngestParams(source=settings.source, data_root=settings.data_root, window=window))


class ValidateReviewsOperator(ReviewOpsOperator):
    """Split the raw batch into valid rows and quarantined rows with their reasons."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.validate import ValidateParams, validate_reviews

        settings = self.settings()
        raw = verified(upstream["raw"].output("raw"))
        params = ValidateParams(
            data_root=settings.data_root, batch_key=upstream["raw"].subject, max_text_chars=settings.max_text_chars
        )
        result = validate_reviews(params, raw)
        # The window travels on, so transform knows which week partitions to write.
        window = upstream["raw"].metrics["window"]
        return dataclasses.replace(result, metrics={**result.metrics, "window": window}), [raw]


class TransformReviewsOperator(ReviewOpsOperator):
    """Clean and deduplicate the valid rows into one curated partition per week."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.transform import TransformParams, transform_reviews

        settings = self.settings()
        validated = verified(upstream["validated"].output("validated"))
        window = _window_of(upstream["validated"])
        return transform_reviews(TransformParams(data_root=settings.data_root, window=window), validated), [validated]


class ScoreReviewsOperator(ReviewOpsOperator):
    """Score the week's curated partition with the champion, or a pinned model version."""

    template_fields = (*ReviewOpsOperator.template_fields, "model_version")

    def __init__(self, *, model_version: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_version = model_version

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.registry import RegistryError
        from reviewops.scoring import ScoreParams, score_week

        curated = upstream["curated"].outputs_of("curated")
        if len(curated) != 1:
            raise AirflowFailException(f"expected the curated partition of one week, got {len(curated)}")
        partition = verified(curated[0])
        params = ScoreParams(data_root=self.settings().data_root, model_version=self.model_version or None)
        try:
            return score_week(params, partition)
        except RegistryError as exc:
            raise AirflowFailException(str(exc)) from exc


class SnapshotDatasetOperator(ReviewOpsOperator):
    """Snapshot all curated partitions into an immutable, content-addressed dataset version."""

    template_fields = (*ReviewOpsOperator.template_fields, "eval_fraction")

    def __init__(self, *, eval_fraction: float | str = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eval_fraction = eval_fraction

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.datasets import DatasetError, SnapshotParams, snapshot_dataset

        params = SnapshotParams(data_root=self.settings().data_root, eval_fraction=float(self.eval_fraction))
        try:
            return snapshot_dataset(params)
        except DatasetError as exc:
            raise AirflowFailException(str(exc)) from exc


class TrainModelOperator(ReviewOpsOperator):
    """Train a text classifier candidate on the dataset version's TFRecord train split."""

    template_fields = (*ReviewOpsOperator.template_fields, "hyperparameters")

    def __init__(self, *, hyperparameters: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hyperparameters = hyperparameters or {}

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.training import TrainParams, TrainStepParams, train_candidate

        manifest = verified(_output_named(upstream["dataset"], "manifest.json"))
        train_file = verified(_output_named(upstream["dataset"], "train.tfrecord"))
        params = TrainStepParams(
            data_root=self.settings().data_root,
            dataset_dir=str(manifest.path.parent),
            train=TrainParams(**self.hyperparameters),
        )
        return train_candidate(params), [manifest, train_file]


class EvaluateModelOperator(ReviewOpsOperator):
    """Evaluate the candidate on the eval split, beside the majority-class baseline."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.evaluation import evaluate_candidate

        model = verified(_model_file(upstream["candidate"]))
        eval_file = verified(_output_named(upstream["dataset"], "eval.parquet"))
        result = evaluate_candidate(model.path, eval_file.path.parent, upstream["candidate"].subject)
        return result, [model, eval_file]


class RegisterModelOperator(ReviewOpsOperator):
    """Publish the evaluated candidate as an immutable registry version; the first
    registered version becomes champion."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        import json

        from reviewops.registry import RegisterParams, register_model

        model = verified(_model_file(upstream["candidate"]))
        evaluation = verified(upstream["evaluation"].output("evaluation"))
        training = json.loads((model.path.parent / "training.json").read_text())
        result = register_model(
            RegisterParams(data_root=self.settings().data_root),
            model.path.parent,
            json.loads(evaluation.path.read_text()),
            training,
            upstream["candidate"].metrics["dataset_version"],
        )
        return result, [model, evaluation]


def _window_of(record: LineageRecord) -> Window:
    from reviewops.windows import Window, parse_day

    window = record.metrics["window"]
    return Window(parse_day(window["start"], "start"), parse_day(window["end"], "end"))


def _output_named(record: LineageRecord, name: str) -> Artifact:
    for artifact in record.outputs:
        if artifact.uri.endswith("/" + name):
            return artifact
    raise AirflowFailException(f"record {record.record_id} of task {record.task_id} has no output {name}")


def _model_file(record: LineageRecord) -> Artifact:
    return _output_named(record, "model.keras")
