"""Operators of the review lifecycle. Each reads its rendered arguments and upstream
records, calls one domain function in ``reviewops`` and returns a lineage record."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from reviewops.contracts import MANIFEST_FILE, MODEL_FILE, VERTEX_MODEL_FILE, ArtifactKind
from reviewops_airflow.base import ReviewOpsOperator, verified

if TYPE_CHECKING:
    import datetime as dt

    from airflow.sdk import Context

    from reviewops.data.windows import Window
    from reviewops.lineage.record import Artifact, LineageRecord, StepResult
    from reviewops.storage.publish import StagedFiles
    from reviewops_airflow.bigquery import BigQueryReviewSource

StepOutput = tuple["StepResult", list["Artifact"]]


class IngestReviewsOperator(ReviewOpsOperator):
    """Read the rows of the source that fall in the run's window into a raw batch.

    The window is, in order: ``window_start``/``window_end`` when given; the ``week``
    (a Monday) when given; the whole source when ``whole_source`` is set; else the
    run's data interval, which must be one calendar week.

    A ``bigquery://project.dataset.table`` source is queried for the window through the
    ``gcp_conn_id`` connection, its columns mapped by ``bigquery_columns`` (over
    ``REVIEWOPS_BIGQUERY_COLUMNS``), landed as Parquet and ingested like a file.
    """

    template_fields = (*ReviewOpsOperator.template_fields, "week", "window_start", "window_end", "bigquery_columns")

    def __init__(
        self,
        *,
        week: str | None = None,
        window_start: str | None = None,
        window_end: str | None = None,
        whole_source: bool = False,
        source: str = "{{ params.source }}",
        gcp_conn_id: str = "google_cloud_default",
        bigquery_columns: dict[str, str | None] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(source=source, **kwargs)
        self.week = week
        self.window_start = window_start
        self.window_end = window_end
        self.whole_source = whole_source
        self.gcp_conn_id = gcp_conn_id
        self.bigquery_columns = bigquery_columns

    def resolve_window(self, context: Context, source: str, earliest: dt.date) -> Window:
        from reviewops.data.sources import source_window
        from reviewops.data.windows import Window, WindowError, parse_day, resolve_week
        from reviewops.gcp.bigquery import is_bigquery

        try:
            if self.window_start or self.window_end:
                if not (self.window_start and self.window_end):
                    raise WindowError("give both window_start and window_end (YYYY-MM-DD), or neither")
                # Whole weeks only: a partial week would replace that week's curated
                # partition with part of its rows.
                start = Window.week(parse_day(self.window_start, "window_start")).start
                end = Window.week(parse_day(self.window_end, "window_end")).start
                return Window(start, end)
            if self.week or not self.whole_source:
                dag_run = context.get("dag_run")
                return resolve_week(
                    conf_week=self.week,
                    data_interval_start=context.get("data_interval_start"),
                    data_interval_end=context.get("data_interval_end"),
                    partition_key=getattr(dag_run, "partition_key", None),
                )
            if is_bigquery(source):
                return self.bigquery_source().window(source)
            return source_window(source, earliest)
        except WindowError as exc:
            raise AirflowFailException(str(exc)) from exc

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.data.ingest import IngestParams, ingest_reviews
        from reviewops.data.sources import SourceError
        from reviewops.data.windows import WindowError
        from reviewops.gcp.bigquery import is_bigquery

        settings = self.settings()
        try:
            window = self.resolve_window(context, settings.source, settings.earliest_review_date)
            self.log.info("ingesting %s from %s", window.key, settings.source)
            params = IngestParams(
                source=settings.source,
                data_root=settings.data_root,
                window=window,
                earliest=settings.earliest_review_date,
            )
            if is_bigquery(settings.source):
                return self.bigquery_source().ingest(params)
            return ingest_reviews(params)
        # An unreadable source, or a window wholly outside the plausible review dates,
        # does not get better by retrying.
        except (SourceError, WindowError) as exc:
            raise AirflowFailException(str(exc)) from exc

    def bigquery_source(self) -> BigQueryReviewSource:
        from reviewops_airflow.bigquery import BigQueryReviewSource

        return BigQueryReviewSource(gcp_conn_id=self.gcp_conn_id, columns=self.bigquery_columns)


class ValidateReviewsOperator(ReviewOpsOperator):
    """Split the raw batch into valid rows and quarantined rows with their reasons."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.data.validate import ValidateParams, validate_reviews

        settings = self.settings()
        raw = verified(upstream["raw"].output(ArtifactKind.RAW))
        params = ValidateParams(
            data_root=settings.data_root,
            batch_key=upstream["raw"].subject,
            max_text_chars=settings.max_text_chars,
            earliest=settings.earliest_review_date,
        )
        result = validate_reviews(params, raw)
        # The window travels on, so transform knows which week partitions to write, and
        # files rejected whole are reported beside the rows quarantined one by one.
        carried: dict[str, Any] = {
            k: upstream["raw"].metrics[k] for k in ("window", "files_rejected") if k in upstream["raw"].metrics
        }
        return dataclasses.replace(result, metrics={**result.metrics, **carried}), [raw]


class TransformReviewsOperator(ReviewOpsOperator):
    """Clean and deduplicate the valid rows into one curated partition per week. The
    batch's partitions are staged and become visible together once the task's lineage
    record is written: a failure (a full disk, a kill) leaves none of them visible."""

    _staged: StagedFiles | None = None

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.data.transform import TransformParams, stage_transform

        settings = self.settings()
        validated = verified(upstream["validated"].output(ArtifactKind.VALIDATED))
        window = _window_of(upstream["validated"])
        result, self._staged = stage_transform(TransformParams(data_root=settings.data_root, window=window), validated)
        return result, [validated]

    def publish_staged(self) -> None:
        if self._staged is not None:
            self._staged.publish()

    def discard_staged(self) -> None:
        if self._staged is not None:
            self._staged.discard()


class ScoreReviewsOperator(ReviewOpsOperator):
    """Score the week's curated partition with the champion, or a pinned model version."""

    template_fields = (*ReviewOpsOperator.template_fields, "model_version")

    def __init__(self, *, model_version: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_version = model_version

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.modeling.scoring import ScoreParams, score_week
        from reviewops.registry.store import RegistryError

        curated = upstream["curated"].outputs_of(ArtifactKind.CURATED)
        if len(curated) != 1:
            raise AirflowFailException(f"expected the curated partition of one week, got {len(curated)}")
        partition = verified(curated[0])
        params = ScoreParams(data_root=self.settings().data_root, model_version=self.model_version or None)
        try:
            return score_week(params, partition)
        except RegistryError as exc:
            raise AirflowFailException(str(exc)) from exc


class MonitorWeekOperator(ReviewOpsOperator):
    """Compute the week's monitoring metrics (volume, latency, class mix, drift, accuracy
    against arriving ratings, slices, unknown words, safety flags) and its HTML report."""

    template_fields = (*ReviewOpsOperator.template_fields, "thresholds")

    def __init__(self, *, thresholds: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.thresholds = thresholds

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.contracts import ArtifactKind
        from reviewops.monitoring.step import MonitoringError, MonitorParams, monitor_week
        from reviewops.monitoring.thresholds import Thresholds

        scored = upstream["predictions"]
        predictions = verified(scored.output(ArtifactKind.PREDICTIONS))
        curated = verified(next(a for a in scored.inputs if a.kind == ArtifactKind.CURATED))
        try:
            params = MonitorParams(
                data_root=self.settings().data_root,
                thresholds=Thresholds.from_overrides(_mapping(self.thresholds, "thresholds")),
            )
            return monitor_week(
                params, predictions, curated, scored.metrics.get("batch_seconds", []), scored.metrics["model_version"]
            )
        except (MonitoringError, ValueError) as exc:  # a setting or a missing model, not a transient fault
            raise AirflowFailException(str(exc)) from exc


class WeeklyGateBreached(AirflowFailException):
    """A monitoring threshold was breached; carries the breaches for alerting."""

    def __init__(self, message: str, breaches: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.breaches = breaches


class CheckWeekOperator(ReviewOpsOperator):
    """The monitoring gate: fail, without retry, when the week breached a threshold.
    The predictions stay written; the run shows red so the ops engineer looks."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.lineage.record import StepResult

        monitor = upstream["monitoring"]
        metrics_file = verified(monitor.outputs[0])
        breaches = monitor.metrics.get("breaches", [])
        if breaches:
            message = "; ".join(b["message"] for b in breaches)
            raise WeeklyGateBreached(f"{monitor.subject}: {message}", breaches)
        self.log.info("%s: every monitored metric is within its threshold", monitor.subject)
        return StepResult(subject=monitor.subject, outputs=(), metrics={"breaches": 0}), [metrics_file]


class SnapshotDatasetOperator(ReviewOpsOperator):
    """Snapshot all curated partitions into an immutable, content-addressed dataset version."""

    template_fields = (*ReviewOpsOperator.template_fields, "eval_fraction", "until_week")

    def __init__(self, *, eval_fraction: float | str = 0.2, until_week: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eval_fraction = eval_fraction
        self.until_week = until_week

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.data.datasets import DatasetError, SnapshotParams, snapshot_dataset

        params = SnapshotParams(
            data_root=self.settings().data_root,
            eval_fraction=float(self.eval_fraction),
            until_week=str(self.until_week) if self.until_week else None,
        )
        try:
            return snapshot_dataset(params)
        except DatasetError as exc:
            raise AirflowFailException(str(exc)) from exc


class PlanTrialsOperator(ReviewOpsOperator):
    """Expand the search space into trials. Airflow maps only over return values, so this
    task returns the trial list and pushes its lineage record under the XCom key
    ``lineage`` (it is in the lineage store too)."""

    template_fields = (*ReviewOpsOperator.template_fields, "search_space", "max_trials", "hyperparameters")

    def __init__(
        self,
        *,
        search_space: dict[str, list[Any]] | str | None = None,
        max_trials: int | str | None = None,
        hyperparameters: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.search_space = search_space
        self.max_trials = max_trials
        self.hyperparameters = hyperparameters

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.config import DEFAULT_MAX_TRIALS, DEFAULT_SEARCH_SPACE
        from reviewops.lineage.record import StepResult
        from reviewops.modeling.search import SearchSpaceError, plan_trials

        space = _mapping(self.search_space, "search_space") or dict(DEFAULT_SEARCH_SPACE)
        # Fixed hyperparameters override every trial (e.g. fewer epochs for a quick run).
        space.update({name: [value] for name, value in _mapping(self.hyperparameters, "hyperparameters").items()})
        budget = DEFAULT_MAX_TRIALS if self.max_trials in (None, "") else self.max_trials
        try:
            trials = plan_trials(space, budget)  # type: ignore[arg-type]  # plan_trials checks it is an int
        except (SearchSpaceError, ValueError) as exc:  # a bad space does not heal on retry
            raise AirflowFailException(str(exc)) from exc
        self.log.info("planned %d trials: %s", len(trials), "; ".join(t["label"] for t in trials))
        result = StepResult(
            subject=upstream["dataset"].subject,
            outputs=(),
            metrics={"trials": trials, "search_space": space, "max_trials": budget},
        )
        return result, []

    def return_value(self, context: Context, record: dict[str, Any]) -> Any:
        context["ti"].xcom_push(key="lineage", value=record)
        return record["metrics"]["trials"]


class TrainTrialOperator(ReviewOpsOperator):
    """One hyperparameter trial (mapped): cross-validated on the train split in ``folds``
    stratified folds. The UI labels each mapped instance with the trial."""

    template_fields = (*ReviewOpsOperator.template_fields, "folds")

    def __init__(self, *, trial: dict[str, Any], folds: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trial = trial
        self.folds = folds

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.config import DEFAULT_FOLDS
        from reviewops.modeling.crossval import CrossValidationError
        from reviewops.modeling.search import TrialParams, run_trial

        context["trial_label"] = self.trial["label"]  # type: ignore[typeddict-unknown-key]
        train_file = verified(upstream["dataset"].output_named("train.parquet"))
        folds = DEFAULT_FOLDS if self.folds in (None, "") else self.folds
        params = TrialParams(
            data_root=self.settings().data_root,
            dataset_dir=str(train_file.path.parent),
            trial=self.trial,
            folds=folds,  # type: ignore[arg-type]  # stratified_folds checks it is an int
        )
        try:
            return run_trial(params), [train_file]
        except CrossValidationError as exc:  # too few rows or a bad fold count: no retry helps
            raise AirflowFailException(str(exc)) from exc

    def effective_params(self) -> dict[str, Any]:
        return {**super().effective_params(), "trial": self.trial}


class SelectBestTrialOperator(ReviewOpsOperator):
    """Choose the trial with the best cross-validated macro-F1 and compare it with the
    standard baseline on the same folds (intervals and paired differences)."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.modeling.search import rank_trials, select_best, selection_report

        trials = [record.metrics for record in self.many["trials"]]
        best = select_best(trials)
        for trial in rank_trials(trials):
            self.log.info(
                "%-40s cross-validated macro-F1 %.4f accuracy %.4f%s",
                trial["label"],
                trial["cv_macro_f1"],
                trial["cv_accuracy"],
                "  <- best" if trial is best else "",
            )
        reports = {record.subject: record.outputs[0] for record in self.many["trials"]}
        best_report = verified(reports[best["label"]])
        train_file = verified(upstream["dataset"].output_named("train.parquet"))
        result = selection_report(self.settings().data_root, train_file.path.parent, trials, best_report.path)
        others = [a for record in self.many["trials"] for a in record.outputs if a is not best_report]
        return result, [best_report, train_file, *others]


class TrainModelOperator(ReviewOpsOperator):
    """Retrain the best trial's parameters on the whole train split (or, with
    ``warm_start``, fine-tune the champion on it)."""

    template_fields = (*ReviewOpsOperator.template_fields, "hyperparameters", "warm_start")

    def __init__(
        self,
        *,
        hyperparameters: dict[str, Any] | str | None = None,
        warm_start: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hyperparameters = hyperparameters
        self.warm_start = warm_start

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.modeling.training import CandidateParams, train_chosen_candidate
        from reviewops.registry.store import RegistryError

        manifest = verified(upstream["dataset"].output_named(MANIFEST_FILE))
        train_file = verified(upstream["dataset"].output_named("train.tfrecord"))
        if not isinstance(self.warm_start, bool):
            raise AirflowFailException(f"warm_start must be true or false, got {self.warm_start!r}")
        params = CandidateParams(
            data_root=self.settings().data_root,
            dataset_dir=str(manifest.path.parent),
            chosen=dict(upstream["best"].metrics["best"]["params"]) if "best" in upstream else {},
            overrides=_mapping(self.hyperparameters, "hyperparameters"),
            warm_start=self.warm_start,
            cross_validation=upstream["best"].metrics.get("cross_validation") if "best" in upstream else None,
        )
        try:
            result, warm_inputs = train_chosen_candidate(params)
        except RegistryError as exc:  # a champion to warm-start from that fails its check
            raise AirflowFailException(str(exc)) from exc
        return result, [manifest, train_file, *warm_inputs]


class EvaluateModelOperator(ReviewOpsOperator):
    """Evaluate the challenger and the current champion on the same eval split, beside
    the majority-class and TF-IDF + logistic regression baselines."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.modeling.evaluation import EvaluationError, evaluate_against_champion
        from reviewops.registry.store import RegistryError

        model = verified(upstream["candidate"].output_named(MODEL_FILE))
        eval_file = verified(upstream["dataset"].output_named("eval.parquet"))
        try:
            result, champion_inputs = evaluate_against_champion(
                self.settings().data_root, model.path, eval_file.path.parent, upstream["candidate"].subject
            )
        except (EvaluationError, RegistryError) as exc:  # incl. a model file that cannot be loaded
            raise AirflowFailException(str(exc)) from exc
        return result, [model, eval_file, *champion_inputs]


class GateModelOperator(ReviewOpsOperator):
    """Decide whether the challenger may replace the champion. A rejection is a
    decision, not an error: the task succeeds and its record says why."""

    template_fields = (*ReviewOpsOperator.template_fields, "min_macro_f1_gain", "max_recall_drop")

    def __init__(self, *, min_macro_f1_gain: float | str = 0.01, max_recall_drop: float | str = 0.05, **kwargs: Any):
        super().__init__(**kwargs)
        self.min_macro_f1_gain = min_macro_f1_gain
        self.max_recall_drop = max_recall_drop

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.modeling.promotion import GatePolicy, gate_candidate

        evaluation = verified(upstream["evaluation"].output(ArtifactKind.EVALUATION))
        try:
            policy = GatePolicy(self.min_macro_f1_gain, self.max_recall_drop)  # type: ignore[arg-type]
        except ValueError as exc:  # GatePolicy refuses margins outside [0, 1]
            raise AirflowFailException(str(exc)) from exc
        return gate_candidate(evaluation, policy), [evaluation]


class RegisterModelOperator(ReviewOpsOperator):
    """Publish the candidate as an immutable registry version with its model card, and
    promote it when the gate said so (and the champion is still the one it beat)."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.registry.store import RegisterParams, register_candidate

        model = verified(upstream["candidate"].output_named(MODEL_FILE, VERTEX_MODEL_FILE))
        evaluation = verified(upstream["evaluation"].output(ArtifactKind.EVALUATION))
        decision = verified(upstream["decision"].output(ArtifactKind.DECISION))
        manifest = verified(upstream["dataset"].output_named(MANIFEST_FILE))
        ti = context["ti"]
        params = RegisterParams(data_root=self.settings().data_root, actor=f"{ti.dag_id}/{ti.run_id}")
        result = register_candidate(params, model.path, evaluation.path, decision.path, manifest.path)
        return result, [model, evaluation, decision, manifest]


def _mapping(value: Any, name: str) -> dict[str, Any]:
    """An object Param as the DAG renders it natively (a dict; None or empty for none)."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise AirflowFailException(f"{name} must be a JSON object, got {type(value).__name__} {str(value)[:80]!r}")
    return dict(value)


def _window_of(record: LineageRecord) -> Window:
    from reviewops.data.windows import Window, parse_day

    window = record.metrics["window"]
    return Window(parse_day(window["start"], "start"), parse_day(window["end"], "end"))
