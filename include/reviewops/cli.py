"""The ``reviewops`` command: the same domain code the Airflow operators call."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from reviewops.config import Settings
from reviewops.data.parsing import prepare_check_texts
from reviewops.data.sources import SourceError, read_source
from reviewops.data.validate import validate_frame, validate_table
from reviewops.lineage.store import LineageNotFound
from reviewops.modeling.scoring import score_table_batches
from reviewops.registry.store import ChampionPointerError, Registry, RegistryError
from reviewops.storage.io import atomic_path
from reviewops.storage.paths import StoragePath, as_path, sort_paths


def _score(args: argparse.Namespace) -> int:
    settings = Settings.from_env(data_root=args.data_root)
    registry = Registry(settings.data_root)
    version = registry.resolve(args.model)
    classes = tuple(registry.metadata(version)["classes"])
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as preparing:
        prepared = preparing.submit(prepare_check_texts)  # the text checks load while the source is read
        raw = read_source(args.input)
        prepared.result()
    today = dt.datetime.now(dt.UTC).date()
    outcome = validate_table(raw, settings.max_text_chars, today, settings.earliest_review_date)
    for reason, count in outcome.reasons.items():
        print(f"not scored: {count} row(s) {reason}", file=sys.stderr)
    valid = outcome.valid_table
    table = valid.select(["review_id", "text"])  # valid rows hold the cleaned text
    output = as_path(args.output)
    with atomic_path(output) as tmp:
        stats = score_table_batches(
            table.to_batches(max_chunksize=4096),
            registry.keras_model(version),  # a Vertex AI model is refused, with what to do
            version,
            classes,
            tmp,
            with_context=False,
        )
    print(
        f"scored {stats['rows_scored']} of {raw.num_rows} rows with model {version} -> {output}"
        f" ({outcome.quarantined_table.num_rows} not scored)",
        file=sys.stderr,
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    """Validate a file or folder like the pipeline does, without writing to the data root."""
    from reviewops.data.sources import RejectedFile, scan_source
    from reviewops.data.validate import check_conservation, validation_report, write_quarantined

    settings = Settings.from_env(data_root=args.data_root)
    tables, rejected = [], []
    for item in scan_source(args.input):
        if isinstance(item, RejectedFile):
            rejected.append(item)
        else:
            tables.append(item.table)
    raw = pa.concat_tables(tables).to_pandas()
    outcome = validate_frame(
        raw, settings.max_text_chars, dt.datetime.now(dt.UTC).date(), settings.earliest_review_date
    )
    check_conservation(len(raw), outcome)
    report = {"input": args.input, **validation_report(raw, outcome), "files_rejected": [r.as_dict() for r in rejected]}
    if args.quarantine_out:
        report["quarantine_out"] = str(write_quarantined(outcome, as_path(args.quarantine_out)))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'read':>8} {'valid':>8} {'quarantined':>11}  file (reasons)")
    for entry in [*report["files"], {**report, "file": "total"}]:
        reasons = ", ".join(f"{k}={v}" for k, v in entry["reasons"].items())
        counts = f"{entry['rows_read']:8} {entry['rows_valid']:8} {entry['rows_quarantined']:11}"
        print(f"{counts}  {entry['file']}" + (f" ({reasons})" if reasons else ""))
    for item in rejected:
        print(f"rejected: {item.error}")
    if args.quarantine_out:
        print(f"quarantined rows and their reasons: {report['quarantine_out']}")
    return 0


def _models(args: argparse.Namespace) -> int:
    registry = Registry(Settings.from_env(data_root=args.data_root).data_root)
    champion = registry.champion()
    versions = [
        {
            "version": m["version"],
            "champion": m["version"] == champion,
            "dataset_version": m["dataset_version"],
            "registered_at": m["registered_at"],
            "accuracy": m["metrics"]["accuracy"],
            "macro_f1": m["metrics"]["macro_f1"],
        }
        for m in registry.versions()
    ]
    if args.json:
        print(json.dumps({"champion": champion, "versions": versions}, indent=2))
        return 0
    if not versions:
        print(f"no models registered under {registry.root}: run the reviews_training DAG (make demo)")
        return 0
    print(f"{'':2}{'version':16} {'dataset':16} {'accuracy':>8} {'macro_f1':>8}  registered_at")
    for v in versions:
        mark = "* " if v["champion"] else "  "
        print(
            f"{mark}{v['version']:16} {v['dataset_version']:16} {v['accuracy']:8.4f} {v['macro_f1']:8.4f}  {v['registered_at']}"
        )
    print("* champion")
    return 0


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(Settings.from_env(data_root=args.data_root).data_root)


def _actor() -> str:
    import getpass

    return f"{getpass.getuser()} (reviewops CLI)"


def _promote(args: argparse.Namespace) -> int:
    """Also the repair of a damaged champion pointer: it is replaced, with a warning."""
    registry = _registry(args)
    try:
        previous = registry.champion()
    except ChampionPointerError:
        previous = "(damaged pointer)"
    if not registry.promote(args.version, args.reason, _actor()):
        print(f"{args.version} is already the champion: nothing changed")
        return 0
    print(f"champion: {previous} -> {args.version} ({args.reason})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    previous = registry.champion()
    version = registry.rollback(args.reason, _actor())
    print(f"champion: {previous} -> {version} (rollback: {args.reason})")
    return 0


def _history(args: argparse.Namespace) -> int:
    history = _registry(args).history()
    if args.json:
        print(json.dumps(history, indent=2))
        return 0
    if not history:
        print("no promotions yet")
        return 0
    for entry in history:
        print(
            f"{entry['at']}  {entry['action']:8} {entry['previous'] or '-':16} -> {entry['version']:16} "
            f"by {entry['actor']}: {entry['reason']}"
        )
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from reviewops.modeling.reproduce import TOLERANCE, reproduce

    result = reproduce(_registry(args).data_root, args.version, args.tolerance or TOLERANCE)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        for metric, recorded in result.recorded.items():
            print(
                f"{metric:9} recorded {recorded:.4f}  reproduced {result.reproduced[metric]:.4f}"
                f"  difference {result.differences[metric]:+.4f}"
            )
        verdict = "within" if result.within_tolerance else "OUTSIDE"
        print(f"{args.version} on {result.dataset_version}: {verdict} the tolerance of {result.tolerance}")
    return 0 if result.within_tolerance else 1


def _lineage(args: argparse.Namespace) -> int:
    from reviewops.lineage.store import LineageStore, impact
    from reviewops.lineage.tree import lineage_tree, render
    from reviewops.storage.paths import to_uri

    index = LineageStore(Settings.from_env(data_root=args.data_root).data_root).index()
    if args.down:
        target = args.target
        path = as_path(target)
        uris = [to_uri(p) for p in _files_under(path)] if "://" not in target or path.is_dir() else [target.rstrip("/")]
        records = index.downstream(uris)
        built = impact(records)
        if args.json:
            print(json.dumps({"target": target, "impact": built, "records": [r.to_dict() for r in records]}, indent=2))
            return 0
        print(f"built from {target}:")
        for kind, names in built.items():
            print(f"  {kind:12} {len(names):4}  {', '.join(names) if names else '-'}")
        return 0
    start = index.resolve(args.target)
    if args.json:
        chain = index.upstream(start)
        print(json.dumps({"target": args.target, "records": [r.to_dict() for r in chain]}, indent=2))
        return 0
    for line in render(lineage_tree(index, start)):
        print(line)
    return 0


def _files_under(path: StoragePath) -> list[StoragePath]:
    if path.is_dir():
        return sort_paths(p for p in path.rglob("*") if p.is_file())
    if not path.exists():
        raise LineageNotFound(f"{path}: no such file or folder")
    return [path]


def _serve(args: argparse.Namespace) -> int:
    from reviewops.serving.server import ServeError, serve
    from reviewops.serving.settings import ServeSettings

    logging.getLogger("reviewops.serving").setLevel(logging.INFO)  # swaps and load failures
    given = {"max_batch_rows": args.max_batch_rows, "max_wait_ms": args.max_wait_ms, "poll_seconds": args.poll_seconds}
    try:
        settings = ServeSettings(**{name: value for name, value in given.items() if value is not None})
        serve(args.host, args.port, data_root=args.data_root, allow_open=args.open, settings=settings)
    except (ServeError, ValueError) as exc:
        print(f"reviewops: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reviewops", description=__doc__)
    parser.add_argument("--data-root", help="root of all artifacts (default: $REVIEWOPS_DATA_ROOT or ./artifacts)")
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="score a file of reviews with the champion (or --model)")
    score.add_argument("--input", required=True, help="file, folder or glob of CSV/TSV/JSONL/Parquet reviews")
    score.add_argument("--output", required=True, help="Parquet file to write")
    score.add_argument("--model", help="model version (default: the champion)")
    score.set_defaults(func=_score)
    validate = sub.add_parser(
        "validate", help="validate a file or folder of reviews like the pipeline, loading nothing"
    )
    validate.add_argument("--input", required=True, help="file, folder or glob of CSV/TSV/JSONL/Parquet reviews")
    validate.add_argument(
        "--quarantine-out", help="write the quarantined rows and their reasons here (Parquet; CSV if it ends in .csv)"
    )
    validate.add_argument("--json", action="store_true", help="print JSON: counts and reasons, in total and per file")
    validate.set_defaults(func=_validate)
    models = sub.add_parser("models", help="list registered model versions (or promote, rollback, history)")
    actions = models.add_subparsers(dest="action")
    promote = actions.add_parser("promote", help="make VERSION the champion by hand")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True, help="why (kept in the promotion history)")
    promote.set_defaults(func=_promote)
    rollback = actions.add_parser("rollback", help="make the previous champion the champion again")
    rollback.add_argument("--reason", required=True, help="why (kept in the promotion history)")
    rollback.set_defaults(func=_rollback)
    history = actions.add_parser("history", help="every promotion and rollback: who, why, when")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(func=_history)
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(func=_models)
    reproduce = sub.add_parser("reproduce", help="retrain a version from its recorded lineage and compare metrics")
    reproduce.add_argument("version")
    reproduce.add_argument("--tolerance", type=float, help="largest metric difference accepted (default 0.02)")
    reproduce.add_argument("--json", action="store_true", help="print JSON")
    reproduce.set_defaults(func=_reproduce)
    lineage = sub.add_parser("lineage", help="trace an artifact to its sources, or (--down) to what was built from it")
    lineage.add_argument("target", help="artifact path or URI (a file or a partition folder), or a record id")
    lineage.add_argument("--json", action="store_true", help="print JSON: {'records': [...]} in chain order")
    lineage.add_argument("--down", action="store_true", help="list the datasets, models and predictions built from it")
    lineage.set_defaults(func=_lineage)
    serving = sub.add_parser("serve", help="serve the champion over HTTP (Open Inference Protocol v2)")
    serving.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serving.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serving.add_argument(
        "--open", action="store_true", help="no token, loopback only (default: $REVIEWOPS_SERVE_TOKEN required)"
    )
    serving.add_argument("--max-batch-rows", type=int, help="rows one model call takes at most (default 64)")
    serving.add_argument("--max-wait-ms", type=float, help="how long a model call waits for more requests (default 5)")
    serving.add_argument("--poll-seconds", type=float, help="how often the champion pointer is read (default 5)")
    serving.set_defaults(func=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (SourceError, RegistryError, LineageNotFound) as exc:
        print(f"reviewops: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
