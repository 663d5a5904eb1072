"""Prompt evaluation: several prompt templates, one model, the same eval split, scored
with our own metrics (``reviewops.modeling.evaluation``), and the best template named.

- :func:`plan_prompts` fixes the dataset version (empty: the newest) and the templates
  (empty: every version of the default prompt) once for the run;
- each template's eval split goes through Vertex AI batch prediction
  (``reviewops.gcp.batch``), then :func:`score_prompt` scores its predictions;
- :func:`select_prompt` names the best and writes the report.

A review the model did not classify (blocked, unparseable, error, missing) counts as a
wrong answer: it lowers accuracy and the recall of its true class, so a template that
gets blocked more cannot look better by answering less. The same figures over answered
reviews only are reported beside (``answered_*``), with the coverage.

The best template: highest macro-F1; ties go to fewer blocked reviews, then to the
newer version. This module never imports Airflow.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reviewops.config import VertexSettings
from reviewops.contracts import ArtifactKind
from reviewops.data.schema import CLASSES
from reviewops.gcp.batch import dataset_input
from reviewops.gcp.gemini import BLOCKED, ERROR, MISSING, OK, UNPARSEABLE
from reviewops.gcp.prompts import load_template, parse_ref, versions
from reviewops.lineage.record import Artifact, StepResult
from reviewops.modeling.evaluation import classification_metrics
from reviewops.storage.io import write_json
from reviewops.storage.paths import Layout, StoragePath

log = logging.getLogger(__name__)

NO_ANSWER = "(no answer)"
REPORT_FILE = "report.json"


class PromptEvaluationError(RuntimeError):
    """Nothing to evaluate, or results that cannot be compared."""


@dataclass(frozen=True)
class PlanParams:
    data_root: str
    dataset: str = ""  # empty: the newest dataset version
    prompts: tuple[str, ...] = ()  # empty: every version of the default prompt


def default_prompts() -> list[str]:
    """Every version of the configured default prompt, oldest first."""
    name, _ = parse_ref(VertexSettings.from_env().prompt)
    return [f"{name}@v{v}" for v in versions(name)]


def plan_prompts(params: PlanParams) -> tuple[StepResult, list[Artifact]]:
    """Fix the run's dataset version and templates (each loaded, so a bad name fails
    here, before any job). Metrics: ``dataset_version``, ``prompts`` (refs, in order) and
    each template's sha256."""
    refs = [p.strip() for p in params.prompts if p and p.strip()] or default_prompts()
    templates = [load_template(ref) for ref in refs]
    unique = list(dict.fromkeys(t.ref for t in templates))
    if not unique:
        raise PromptEvaluationError("no prompt template to evaluate")
    eval_split = dataset_input(params.data_root, params.dataset, "eval")
    version = eval_split.path.parent.name
    result = StepResult(
        subject=version,
        outputs=(),
        metrics={
            "dataset_version": version,
            "eval_rows": eval_split.rows,
            "prompts": unique,
            "prompt_sha256": {t.ref: t.sha256 for t in templates},
        },
    )
    return result, [eval_split]


def evaluate_predictions(table: pa.Table, classes: Sequence[str] = CLASSES) -> dict[str, Any]:
    """Our metrics of a Vertex predictions table against its ``label`` column: accuracy,
    macro-F1, per-class precision/recall/F1 over every review (a non-answer is wrong),
    the same over answered reviews, and the count of each response status."""
    labels = table.column("label").to_pylist()
    predicted = table.column("predicted_label").to_pylist()
    statuses = table.column("response_status").to_pylist()
    answered_at = [i for i, p in enumerate(predicted) if p is not None]
    everything = classification_metrics(labels, [p or NO_ANSWER for p in predicted], [*classes, NO_ANSWER])
    per_class = {name: everything["per_class"][name] for name in classes}
    macro_f1 = round(sum(float(per_class[name]["f1"]) for name in classes) / len(classes), 4) if labels else 0.0
    answered = classification_metrics([labels[i] for i in answered_at], [predicted[i] for i in answered_at], classes)
    counts = {status: statuses.count(status) for status in (OK, BLOCKED, UNPARSEABLE, ERROR, MISSING)}
    return {
        "rows": len(labels),
        "accuracy": everything["accuracy"],
        "macro_f1": macro_f1,
        "per_class": per_class,
        "per_class_recall": {name: per_class[name]["recall"] for name in classes},
        "confusion_matrix": everything["confusion_matrix"],
        "confusion_classes": everything["classes"],
        "answered": len(answered_at),
        "coverage": round(len(answered_at) / len(labels), 4) if labels else 0.0,
        "answered_accuracy": answered["accuracy"],
        "answered_macro_f1": answered["macro_f1"],
        "blocked": counts[BLOCKED],
        "unparseable": counts[UNPARSEABLE],
        "errors": counts[ERROR],
        "missing": counts[MISSING],
        "by_status": {k: v for k, v in counts.items() if v},
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]+", "-", text)


def evaluation_folder(data_root: str, dataset_version: str, model_version: str) -> StoragePath:
    """``prompt_evaluation/<dataset>/<model>/``: the model part of the model id (the
    prompt varies inside the folder)."""
    model = model_version.rsplit("+", 1)[0]
    return Layout(data_root).prompt_evaluation(dataset_version, _slug(model))


def score_prompt(
    data_root: str, predictions: Artifact, collected: Mapping[str, Any]
) -> tuple[StepResult, list[Artifact]]:
    """Score one template's predictions of the eval split; write
    ``prompt_evaluation/<dataset>/<model>/<prompt ref>.json``. ``collected``: the
    collect step's metrics (prompt, model, response summary)."""
    data = predictions.path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != predictions.sha256:
        raise PromptEvaluationError(f"{predictions.uri} changed since it was written: {found} != {predictions.sha256}")
    table = pq.read_table(pa.BufferReader(data))
    metrics = evaluate_predictions(table)
    subject = str(collected["subject"])
    dataset_version = subject.split("/", 1)[0]
    prompt = str(collected["prompt_template"])
    report = {
        "dataset_version": dataset_version,
        "split": subject.split("/", 1)[-1],
        "prompt_template": prompt,
        "prompt_sha256": collected["prompt_sha256"],
        "model_version": collected["model_version"],
        "vertex_model": collected.get("vertex_model"),
        **metrics,
        "response_summary": collected.get("response_summary", {}),
    }
    folder = evaluation_folder(data_root, dataset_version, str(collected["model_version"]))
    path = write_json(report, folder / f"{prompt}.json")
    log.info(
        "%s on %s: accuracy %.4f macro-F1 %.4f, %d blocked, %d unparseable",
        prompt,
        subject,
        metrics["accuracy"],
        metrics["macro_f1"],
        metrics["blocked"],
        metrics["unparseable"],
    )
    return StepResult(
        subject=prompt, outputs=(Artifact.of_file(path, ArtifactKind.PROMPT_EVALUATION),), metrics=report
    ), [predictions]


def rank_key(result: Mapping[str, Any]) -> tuple[float, int, int]:
    """Higher is better: macro-F1, then fewer blocked, then the newer version."""
    _, version = parse_ref(str(result["prompt_template"]))
    return (float(result["macro_f1"]), -int(result["blocked"]), version or 0)


def select_prompt(data_root: str, results: Sequence[Mapping[str, Any]]) -> StepResult:
    """Name the best template of one dataset and model and write ``report.json`` beside
    the per-template reports."""
    if not results:
        raise PromptEvaluationError("no template was scored")
    datasets = {r["dataset_version"] for r in results}
    models = {str(r["model_version"]).rsplit("+", 1)[0] for r in results}
    if len(datasets) != 1 or len(models) != 1:
        raise PromptEvaluationError(f"results of several datasets {sorted(datasets)} or models {sorted(models)}")
    ranking = sorted(results, key=rank_key, reverse=True)
    best = ranking[0]
    keys = ("accuracy", "macro_f1", "per_class_recall", "coverage", "blocked", "unparseable", "errors", "missing")
    report = {
        "dataset_version": best["dataset_version"],
        "model": best.get("vertex_model"),
        "model_version": str(best["model_version"]).rsplit("+", 1)[0],
        "rule": "highest macro-F1; ties: fewer blocked, then the newer version",
        "best": best["prompt_template"],
        "best_sha256": best["prompt_sha256"],
        "ranking": [
            {"prompt_template": r["prompt_template"], "prompt_sha256": r["prompt_sha256"], **{k: r[k] for k in keys}}
            for r in ranking
        ],
    }
    path = write_json(
        report, evaluation_folder(data_root, str(best["dataset_version"]), str(best["model_version"])) / REPORT_FILE
    )
    for r in ranking:
        log.info(
            "%-28s macro-F1 %.4f accuracy %.4f blocked %d",
            r["prompt_template"],
            r["macro_f1"],
            r["accuracy"],
            r["blocked"],
        )
    log.info("best prompt on %s: %s", best["dataset_version"], best["prompt_template"])
    return StepResult(
        subject=str(best["dataset_version"]),
        outputs=(Artifact.of_file(path, ArtifactKind.PROMPT_EVALUATION),),
        metrics=report,
    )
