"""The model card: what a registered version was trained on, how well it does, and
what it is (not) for. Markdown, written into the version folder."""

from __future__ import annotations

from typing import Any

from reviewops.contracts import ModelKind, ModelMetadata


def render_model_card(meta: ModelMetadata, manifest: dict[str, Any]) -> str:
    metrics = meta["metrics"]
    train = manifest["splits"]["train"]
    evaluation = manifest["splits"]["eval"]
    lines = [
        f"# Model card: {meta['version']}",
        "",
        _what_it_is(meta),
        "",
        "## Data",
        "",
        f"- Dataset version `{manifest['version']}`: {manifest['rows']} curated reviews, weeks "
        f"{manifest['weeks']['first']} to {manifest['weeks']['last']}.",
        f"- Train split: {train['rows']} rows {_balance(train['class_counts'])}; eval split: "
        f"{evaluation['rows']} rows {_balance(evaluation['class_counts'])}.",
        f"- Split rule: `{manifest['split_rule']}`.",
    ]
    excluded = manifest.get("excluded", {})
    lines.append(
        "- Safety exclusions: "
        + (
            ", ".join(f"{count} {reason}" for reason, count in sorted(excluded.items()))
            if excluded
            else "none recorded"
        )
        + "."
    )
    lines += [
        "",
        "## Training",
        "",
        f"- Parameters: `{_params(meta['params'])}`.",
        f"- Warm start from: {meta.get('warm_start_from') or 'none (trained from scratch)'}.",
        f"- Code version `{meta['code_version']}`; trained in {meta['train_seconds']} s; {meta['size_bytes']} bytes.",
        "",
        "## Evaluation (eval split)",
        "",
        f"Accuracy **{metrics['accuracy']:.4f}**, macro-F1 **{metrics['macro_f1']:.4f}** on {metrics['rows']} reviews.",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, stats in metrics["per_class"].items():
        lines.append(
            f"| {name} | {stats['precision']:.4f} | {stats['recall']:.4f} | {stats['f1']:.4f} | {stats['support']} |"
        )
    lines += ["", "| compared with | accuracy | macro-F1 |", "|---|---|---|"]
    for name, baseline in meta["baselines"].items():
        lines.append(f"| {name} baseline | {baseline['accuracy']:.4f} | {baseline['macro_f1']:.4f} |")
    champion = meta.get("champion_at_evaluation")
    if champion:
        lines.append(
            f"| champion {champion['model_version']} | {champion['accuracy']:.4f} | {champion['macro_f1']:.4f} |"
        )
    lines += _uncertainty(meta.get("uncertainty") or {})
    gate = meta["gate"]
    lines += [
        "",
        f"Gate: **{gate['verdict']}**. " + "; ".join(gate["reasons"]) + ".",
        "",
        "## Intended use and limits",
        "",
        "- Intended use: weekly batch triage of incoming product reviews for ops dashboards and monitoring; "
        "not for decisions about individual customers or patients.",
        "- Trained on a small sample of English Drugs.com reviews: expect lower quality on other products, "
        "languages or writing styles, and on the rare `neutral` class.",
        "- Labels come from star ratings, which are a noisy proxy for sentiment.",
        "- Watch the weekly monitoring (drift, accuracy against arriving ratings and its estimate before they "
        "arrive, slices) before trusting it on new data.",
        "",
    ]
    return "\n".join(lines)


def _range(interval: list[float]) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def _bootstrap_table(comparison: dict[str, Any], subject: str) -> list[str]:
    level = round(100 * comparison["level"])
    lines = [
        f"| model | accuracy | {level}% interval | macro-F1 | {level}% interval |",
        "|---|---|---|---|---|",
    ]
    for name, scores in comparison["scores"].items():
        interval = comparison["intervals"][name]
        lines.append(
            f"| {name} | {scores['accuracy']:.4f} | {_range(interval['accuracy'])} | "
            f"{scores['macro_f1']:.4f} | {_range(interval['macro_f1'])} |"
        )
    lines += [
        "",
        f"| {subject} minus | accuracy | {level}% interval | macro-F1 | {level}% interval |",
        "|---|---|---|---|---|",
    ]
    for name, difference in comparison["differences"].items():
        accuracy, macro_f1 = difference["accuracy"], difference["macro_f1"]
        lines.append(
            f"| {name} | {accuracy['estimate']:+.4f} | {_range(accuracy['interval'])} | "
            f"{macro_f1['estimate']:+.4f} | {_range(macro_f1['interval'])} |"
        )
    return lines


def _uncertainty(uncertainty: dict[str, Any]) -> list[str]:
    """Intervals, paired differences and calibration (see docs/model-quality.md)."""
    lines: list[str] = []
    comparison = uncertainty.get("comparison")
    if comparison:
        lines += [
            "",
            f"Bootstrap over the {comparison['rows']} eval rows ({comparison['replicates']} replicates; every model "
            "on the same resampled rows, so a paired difference is narrower than two separate intervals):",
            "",
            *_bootstrap_table(comparison, "challenger"),
        ]
    cv = uncertainty.get("cross_validation")
    if cv:
        lines += [
            "",
            f"## Cross-validation (train split, {cv['folds']} stratified folds, {cv['rows']} rows)",
            "",
            f"Trial `{cv['trial']}` chosen on the out-of-fold mean of accuracy and macro-F1; the standard baseline "
            f"(`{_params(cv['baseline'])}`) on the same folds:",
            "",
            *_bootstrap_table(cv, "chosen"),
        ]
    calibration = uncertainty.get("calibration")
    if calibration:
        lines += [
            "",
            "## Calibration",
            "",
            f"- Decision rule: offsets {calibration['offsets']} added to the log-probabilities (classes in order), "
            f"temperature {calibration['temperature']}; both chosen on out-of-fold predictions and baked into the "
            "output layer, so the model's probabilities are the calibrated ones.",
            f"- Expected calibration error (10 confidence bins) on the eval split: "
            f"{calibration['eval_ece_before']:.4f} before the temperature, {calibration['eval_ece_after']:.4f} after"
            + (
                f"; out of fold, where the temperature was fitted: {calibration['ece_before']:.4f} before, "
                f"{calibration['ece_after']:.4f} after."
                if calibration.get("ece_before") is not None
                else "."
            ),
        ]
    return lines


def _what_it_is(meta: ModelMetadata) -> str:
    vertex = meta.get("vertex")
    if meta.get("kind") == ModelKind.VERTEX and vertex:
        return (
            f"A Gemini model tuned on Vertex AI (supervised fine-tuning of `{vertex['source_model']}`) that "
            "answers the class of a product review (`negative`, `neutral`, `positive`) in one word, given the "
            f"review rendered with prompt `{vertex['prompt_ref']}` (sha256 `{vertex['prompt_sha256']}`). "
            f"Tuned model `{vertex['tuned_model_name']}`, endpoint `{vertex['endpoint']}`; it scores on "
            "Vertex AI (batch prediction), not on the Airflow workers."
        )
    return (
        "A TensorFlow/Keras classifier of product-review sentiment (`negative`, `neutral`, `positive`) "
        "that takes the raw review text; its text vectoriser is part of the saved model."
    )


def _balance(counts: dict[str, int]) -> str:
    return "(" + ", ".join(f"{name} {count}" for name, count in counts.items()) + ")"


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
