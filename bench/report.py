"""Render ``bench/RESULTS.md`` from the figures the benches wrote.

Every number in the file comes from this run's figures; the explanations of missed
targets name the project's code by file and line, found in the checkout at render time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bench.common import ROOT

Row = Sequence[Any]


def where(path: str, snippet: str) -> str:
    """``path:line`` of the first line of ``path`` (under the checkout) holding ``snippet``."""
    try:
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return path
    for number, line in enumerate(lines, start=1):
        if snippet in line:
            return f"{path}:{number}"
    return path


def table(header: Row, rows: Iterable[Row]) -> str:
    out = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _size(rows: int | str) -> str:
    rows = int(rows)
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1000 == 0:
        return f"{rows // 1000}k"
    return str(rows)


def pct(part: float, whole: float) -> str:
    """A share in percent (capped at 100: cProfile's own overhead can push a caller's
    cumulative time a little past the profile's total)."""
    return f"{min(100.0, 100 * part / whole):.0f}%" if whole else "n/a"


def verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[met]


def profile_tables(profile: dict[str, Any], top: int = 12) -> str:
    own = [
        (f"`{r['function']}`", num(r["ncalls"], 0), num(r["tottime"], 2), pct(r["tottime"], profile["total_tt"]))
        for r in profile["by_own_time"][:top]
    ]
    cum = [
        (f"`{r['function']}`", num(r["ncalls"], 0), num(r["cumtime"], 2), pct(r["cumtime"], profile["total_tt"]))
        for r in profile["by_cumulative"][:top]
    ]
    return (
        f"cProfile, {num(profile['profiled_seconds'], 1)} s profiled. Top entries by own time:\n\n"
        + table(("function", "calls", "own s", "share"), own)
        + "\n\nThe project's functions by cumulative time:\n\n"
        + table(("function", "calls", "cumulative s", "share"), cum)
    )


def _profile_share(profile: dict[str, Any], needle: str, key: str = "tottime") -> float:
    rows = [r for r in profile.get("by_own_time", []) + profile.get("by_cumulative", []) if needle in r["function"]]
    return rows[0][key] / profile["total_tt"] if rows and profile.get("total_tt") else 0.0


# -- sections ------------------------------------------------------------------------


def machine_section(context: dict[str, Any]) -> str:
    m = context["machine"]
    start, end = context["load_average_start"], context["load_average_end"]
    during = context["load_average_during"]
    loaded = max(start[0], during["mean"]) > 0.5 * (m["nproc"] or 1)
    lines = [
        "## Machine and run",
        "",
        f"- Command: `{context['command']}`, started {context['started_at']} (UTC); "
        f"total {num(context['total_seconds'] / 60, 1)} min.",
        f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB memory ({m['memory_available_gb']} GB available at start), "
        f"Linux {m['kernel']}, Python {m['python']}.",
        "- " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        f"- Load average (1, 5, 15 min) at start {_load(start)}, at end {_load(end)}; "
        f"1-min load sampled every 15 s while the benches ran: mean {during['mean']}, max {during['max']}.",
        "- Per bench: "
        + "; ".join(
            f"{r['name']} {num(r['seconds'] / 60, 1)} min (load at start {num(r['load_average_at_start'][0], 2)})"
            for r in context["runs"]
        )
        + ".",
    ]
    if loaded:
        lines += [
            "",
            f"**These figures were taken on a loaded machine** (1-min load mean {during['mean']} on "
            f"{m['nproc']} CPUs, the benches' own processes included: the orchestration bench runs a scheduler, "
            "an API server and its workers, the serving bench a server and its load generator). Absolute times "
            "are slower and noisier than on an idle machine; each ratio compares two measurements taken minutes "
            "apart under the same kind of load, so ratios are the figures to read, and even they move by "
            "roughly ±10-20% from run to run.",
        ]
    return "\n".join(lines)


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


# The orchestration bench needs the PostgreSQL scheduler and takes about 15 minutes: run_all
# --skip-orchestration carries these, the last measured figures (docs/benchmarks.md), with their date.
CARRIED_ORCHESTRATION: dict[str, Any] = {
    "measured_on": "2026-11-29",
    "command": "make bench: python -m bench.bench_orchestration --weeks 26,52 (LocalExecutor, PostgreSQL)",
    "backfills": [
        {"weeks": 26, "noop_seconds": 78.72, "weekly_seconds": 141.39, "ratio": 1.8},
        {"weeks": 52, "noop_seconds": 140.9, "weekly_seconds": 273.86, "ratio": 1.94},
    ],
    "target": 3.0,
}


def _target_rows(figures: dict[str, Any]) -> list[Row]:
    """One row per ratio with a target: (stage, measure, figure, target, verdict)."""
    return [*_scoring_rows(figures.get("scoring")), *_dataplane_rows(figures), *_orchestration_rows(figures)]


def _scoring_rows(s: dict[str, Any] | None) -> list[Row]:
    rows: list[Row] = []
    if s:
        for size, v in s["sizes"].items():
            rows.append(
                (
                    "Scoring",
                    f"score_week / bare model.predict throughput, {_size(size)} rows",
                    f"{v['throughput_ratio']:.2f}",
                    ">= 0.8",
                    verdict(v["throughput_ratio"] >= s["throughput_target"]),
                )
            )
        if "rss_ratio" in s:
            sizes = s["sizes"]
            rows.append(
                (
                    "Scoring",
                    f"peak RSS of score_week, {_size(max(sizes, key=int))} / {_size(min(sizes, key=int))}",
                    f"{s['rss_ratio']:.2f}x",
                    "<= 1.25x",
                    verdict(s["rss_met"]),
                )
            )
        if "process" in s:
            pr = s["process"]
            rows.append(
                (
                    "Scoring",
                    f"`reviewops score` of {_size(pr['rows'])} reviews / bare process (pandas, Keras, Parquet), "
                    "throughput",
                    f"{pr['ratio']:.2f}",
                    ">= 0.8",
                    verdict(pr["met"]),
                )
            )
    return rows


def _dataplane_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    d = figures.get("dataplane")
    if d:
        for size, v in d["sizes"].items():
            rows.append(
                (
                    "Data plane",
                    f"ingest+validate+transform / bare pyarrow read_csv+write_table throughput, {_size(size)} rows",
                    f"{v['ratio']:.3f}",
                    ">= 0.3",
                    verdict(v["ratio"] >= d["target"]),
                )
            )
        rows.append(
            (
                "Data plane",
                f"peak RSS, pipeline / bare pyarrow, {_size(d['rss_rows'])} rows",
                f"{d['rss_ratio']:.2f}x",
                "<= 2x",
                verdict(d["rss_met"]),
            )
        )
    t = figures.get("training")
    if t and "peak_ratio" in t:
        r = t["peak_ratio"]
        rows.append(
            (
                "Training",
                f"peak RSS of train_candidate / the fit's own peak, {_size(r['rows'])} rows",
                f"{r['ratio']:.2f}x",
                "<= 1.25x",
                verdict(r["met"]),
            )
        )
    return rows


def _orchestration_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, f in (figures.get("parse") or {}).get("files", {}).items():
        rows.append(
            (
                "DAG parse",
                f"`dags/{name}`, fresh interpreter after `import airflow`",
                f"{f['seconds']:.3f} s",
                "< 1 s",
                verdict(f["met"]),
            )
        )
    o = figures.get("orchestration")
    if o and "backfill" in o:
        for b in o.get("backfills") or [o["backfill"]]:
            rows.append(
                (
                    "Orchestration",
                    f"{b['weeks']}-week backfill: reviews_weekly / noop_weekly time",
                    f"{b['ratio']:.2f}x",
                    "<= 3x",
                    verdict(b["met"]),
                )
            )
    elif not o:
        c = CARRIED_ORCHESTRATION
        for b in c["backfills"]:
            rows.append(
                (
                    "Orchestration",
                    f"{b['weeks']}-week backfill: reviews_weekly / noop_weekly time (carried: measured {c['measured_on']})",
                    f"{b['ratio']:.2f}x",
                    "<= 3x",
                    verdict(b["ratio"] <= c["target"]),
                )
            )
    if o and "tf_off_tasks" in o:
        ok = o["tf_off_tasks"]["all_true"]
        rows.append(
            (
                "Orchestration",
                "TensorFlow stays off ingest/validate/transform and DAG parsing",
                "yes" if ok else "NO",
                "yes",
                verdict(ok),
            )
        )
    return rows


def summary_section(figures: dict[str, Any], extra_rows: Sequence[Row] = ()) -> str:
    rows = [*_target_rows(figures), *extra_rows]
    return "## Every ratio and its target\n\n" + table(("stage", "measure", "figure", "target", ""), rows)


def scoring_section(s: dict[str, Any]) -> str:
    rows = []
    for rows_n, v in s["sizes"].items():
        sw, bare = v["score_week"], v["bare_predict"]
        split = sw["split_seconds"]
        rows.append(
            (
                num(int(rows_n), 0),
                num(sw["seconds"], 1),
                num(sw["rows_per_second"], 0),
                num(bare["seconds"], 1),
                num(bare["rows_per_second"], 0),
                f"{v['throughput_ratio']:.2f}",
                f"{split['predict_proba']:.1f} / {split['scan_texts']:.1f} / {split['load_model']:.1f} / {split['other']:.1f}",
                num(sw["peak_rss_mb"], 0),
                num(bare["peak_rss_mb"], 0),
            )
        )
    parts = [
        "## Scoring",
        "",
        "`score_week` on a curated week partition against `model.predict` of the same registered model on the same "
        "texts already in memory (batch size 4096), each in a fresh interpreter with TensorFlow imported before the "
        "clock. `score_week` is timed whole (registry lookup, model load, Parquet read, predict, safety flags, "
        "Parquet write); the split times the functions it calls.",
        "",
        table(
            (
                "rows",
                "score_week s",
                "rows/s",
                "model.predict s",
                "rows/s",
                "ratio",
                "predict / safety scan / model load / rest (s)",
                "peak RSS score_week MB",
                "peak RSS model.predict MB",
            ),
            rows,
        ),
    ]
    if "process" in s:
        pr = s["process"]
        parts += [
            "",
            f"Whole process on a {num(pr['rows'], 0)}-review TSV ({num(pr['source_bytes'] / 1e6, 0)} MB), each a fresh "
            "process timed from start to exit, imports included: `reviewops score` (read, validate, clean, load, "
            f"predict, write) {pr['reviewops_score']['seconds']:.1f} s; the bare process (pandas `read_csv`, Keras "
            f"`predict` of the same model, pyarrow Parquet write) {pr['bare_process']['seconds']:.1f} s: "
            f"**{pr['ratio']:.2f}** (target >= 0.8: {verdict(pr['met'])}).",
        ]
    if s.get("profile"):
        parts += [
            "",
            f"Profile of `score_week` on {num(s.get('profile_rows'), 0)} rows:",
            "",
            profile_tables(s["profile"]),
        ]
    return "\n".join(parts)


def dataplane_section(d: dict[str, Any]) -> str:
    rows = []
    for size, v in d["sizes"].items():
        p, bare, one = v["pipeline"], v["bare"], v["bare_one_thread"]
        sec = p["seconds"]
        rows.append(
            (
                num(int(size), 0),
                f"{sec['ingest']:.1f} / {sec['validate']:.1f} / {sec['transform']:.1f}",
                num(p["total_seconds"], 1),
                num(bare["total_seconds"], 2),
                num(one["total_seconds"], 2),
                f"{v['ratio']:.3f} ({v['ratio_one_thread']:.3f})",
                f"{num(v['floor']['total_seconds'], 2)} ({v['floor_ratio']:.3f})" if "floor" in v else "-",
                f"{num(p['peak_rss_mb'], 0)} / {num(bare['peak_rss_mb'], 0)} = {v['rss_ratio']:.2f}x",
            )
        )
    missed = [what for what, met in (("throughput", d.get("met")), ("peak RSS", d.get("rss_met"))) if not met]
    why = (
        f"Why the {' and the '.join(missed)} target{'s are' if len(missed) > 1 else ' is'} missed, and what each step "
        "costs"
        if missed
        else "What each step costs"
    )
    parts = [
        "## Data plane",
        "",
        "`ingest_reviews`, `validate_reviews` and `transform_reviews` over the bench week's window (as "
        "reviews_initial_load runs them) against a bare pyarrow `read_csv` of the same TSV (every column a string, "
        "threads on; one thread in brackets) and `write_table` with zstd. Each side in its own fresh process, so "
        "each peak RSS (VmHWM) is its own. The I/O floor is the pipeline's input and output alone, in a fresh "
        "process: the source parsed and hashed, then three Parquet writes and two reads of the batch, as the three "
        "steps write and read it, one after another, with no check (`child_floor`); in brackets, the bare time over "
        "it: the ratio that I/O alone reaches when nothing overlaps.",
        "",
        table(
            (
                "rows",
                "ingest / validate / transform s",
                "pipeline s",
                "bare s",
                "bare, one thread s",
                "ratio (one thread)",
                "I/O floor s (best ratio)",
                "peak RSS pipeline / bare MB",
            ),
            rows,
        ),
        "",
        f"{why}: [docs/benchmarks.md](../docs/benchmarks.md#the-data-plane).",
    ]
    if d.get("profile"):
        parts += ["", f"Profile of the pipeline on {num(d['profile_rows'], 0)} rows:", "", profile_tables(d["profile"])]
    return "\n".join(parts)


def parse_section(p: dict[str, Any]) -> str:
    rows = [
        (f"`dags/{name}`", ", ".join(f["dags"]), f"{f['seconds']:.3f}", ", ".join(f"{r:.3f}" for r in f["runs"]))
        for name, f in p["files"].items()
    ]
    return "\n".join(
        [
            "## DAG parse time",
            "",
            "Each DAG file parsed alone (`DagBag(dag_folder=file)`) in a fresh interpreter, timed after `import "
            "airflow` (paid by every parse), as `tests/dags/test_parse_cost.py` parses them; the median of the runs.",
            "",
            table(("file", "DAGs", "median s", "runs s"), rows),
        ]
    )


def carried_orchestration_section() -> str:
    c = CARRIED_ORCHESTRATION
    rows = [
        (b["weeks"], num(b["noop_seconds"], 2), num(b["weekly_seconds"], 2), f"{b['ratio']:.2f}x")
        for b in c["backfills"]
    ]
    return "\n".join(
        [
            "## Orchestration (carried, not measured in this run)",
            "",
            f"This run skipped the orchestration bench (`--skip-orchestration`). The last measured figures, of "
            f"{c['measured_on']} (`{c['command']}`, from docs/benchmarks.md):",
            "",
            table(("weeks", "noop_weekly s", "reviews_weekly s", "ratio (target <= 3x)"), rows),
        ]
    )


def orchestration_section(o: dict[str, Any]) -> str:
    parts = ["## 3. Orchestration", ""]
    b = o.get("backfill")
    if b:
        noop, real = b["noop_weekly"], b["reviews_weekly"]
        tasks = ["ingest", "validate", "transform", "score", "monitor", "check_week"]
        parts += [
            f"A backfill of {b['weeks']} weeks ({b['from_week']} .. {b['to_week']}, the last weeks of the shipped "
            f"reviews) of `noop_weekly`, then of `reviews_weekly` over the same weeks, by the same running scheduler: "
            f"{b['executor']} on a fresh PostgreSQL database, scheduler + dag-processor + api-server started by "
            f"`tests/system/airflow_stack.py` (parallelism {b['parallelism']}), DAGs parsed from a temporary folder holding "
            "`dags/reviews_weekly.py` and `bench/dags/noop_weekly.py`. Both backfills: "
            f"`airflow backfill create --max-active-runs {b['max_active_runs']}`; `reviews_weekly` with conf "
            f"`{b['conf']}` (the weekly gate opened wide: weeks of history hold a few reviews each). The champion "
            "is a quick model trained beforehand; TensorFlow and the task modules were compiled into the stack's "
            "bytecode cache before the clock started. Time is from the backfill's creation to the end of its last run.",
            "",
            table(
                (
                    "DAG",
                    "runs",
                    "backfill s",
                    "s per week",
                    "first start -> last end s",
                    "median run s",
                    "task-seconds",
                    *[f"{t} median s" for t in tasks],
                ),
                [
                    (
                        f"`{name}`",
                        f"{v['runs']} ({', '.join(v['states'])})",
                        num(v["backfill_seconds"], 1),
                        num(v["seconds_per_run"], 2),
                        num(v["makespan_seconds"], 1),
                        num(v["run_seconds_median"], 1),
                        num(v["task_seconds_total"], 0),
                        *[num(v["task_seconds_median"].get(t), 1) for t in tasks],
                    )
                    for name, v in (("noop_weekly", noop), ("reviews_weekly", real))
                ],
            ),
            "",
            f"- Ratio reviews_weekly / noop_weekly: **{b['ratio']:.2f}x** (first start to last end: "
            f"{b['makespan_ratio']:.2f}x), target <= 3x: {verdict(b['met'])}. Stack start-up (not timed): "
            f"{b['stack_ready_seconds']} s.",
        ]
        extra = {t: real["task_seconds_median"].get(t, 0) - noop["task_seconds_median"].get(t, 0) for t in tasks}
        worst = max(extra, key=lambda t: extra[t])
        parts.append(
            "- Where the extra time goes (median task duration over the no-op's): "
            + ", ".join(f"{t} {extra[t]:+.1f} s" for t in tasks)
            + f". The largest is `{worst}`"
            + (": the only task that imports TensorFlow and loads the model (see below)." if worst == "score" else ".")
        )
        if not b["met"]:
            parts.append(
                f"- **Missed** by {b['ratio'] / 3:.2f}x over the 3x allowance; the per-task medians above show which "
                "tasks carry it."
            )
        for other in (o.get("backfills") or [b])[1:]:
            parts.append(
                f"- {other['weeks']} weeks ({other['from_week']} .. {other['to_week']}), on a fresh stack the same "
                f"way: `noop_weekly` {num(other['noop_weekly']['backfill_seconds'], 1)} s, `reviews_weekly` "
                f"{num(other['reviews_weekly']['backfill_seconds'], 1)} s: **{other['ratio']:.2f}x** (first start to last "
                f"end: {other['makespan_ratio']:.2f}x), target <= 3x: {verdict(other['met'])}."
            )
    tf = o.get("tf_import")
    if tf:
        cold, warm = tf["cold"], tf["warm"]
        parts += [
            "",
            "### TensorFlow's cost per task",
            "",
            table(
                ("`import tensorflow` in a fresh interpreter", "seconds", "RSS added MB", "RSS after MB"),
                [
                    (
                        "cold: no compiled bytecode (an empty `PYTHONPYCACHEPREFIX`)",
                        num(cold["seconds"], 2),
                        num(cold["rss_added_mb"], 0),
                        num(cold["rss_after_mb"], 0),
                    ),
                    (
                        "warm: bytecode compiled (as in a built image); median of 3",
                        num(warm["seconds"], 2),
                        num(warm["rss_added_mb"], 0),
                        num(warm["rss_after_mb"], 0),
                    ),
                ],
            ),
            "",
            "Every Airflow task is a new Python process, so each task that imports TensorFlow pays this again: "
            f"{warm['seconds']:.1f} s and ~{warm['rss_added_mb']:.0f} MB with bytecode, {cold['seconds']:.1f} s "
            "without. (Without compiled bytecode and with `PYTHONDONTWRITEBYTECODE=1`, as in this machine's shell, "
            "every task would compile TensorFlow again: `make install` compiles the venv's bytecode, the "
            "system-test stack caches it in `PYTHONPYCACHEPREFIX`, and an image should ship it.)",
        ]
    off = o.get("tf_off_tasks")
    if off:
        parts += [
            "",
            "**What the project does to keep it off tasks that do not need it**: TensorFlow is imported only inside "
            "the functions that train, evaluate or score (`reviewops.modeling.training`'s functions, "
            "`reviewops.modeling.scoring.score_table_batches`, `reviewops.data.datasets._write_tfrecord`), never at module level; "
            "the operators import the domain modules inside `run_step`, and the DAG files import only the operators. "
            "Checked in a fresh interpreter that runs the weekly steps' domain functions on a week of the shipped "
            "reviews:",
            "",
            table(
                ("step", "`tensorflow` not imported"), [(k, "yes" if v else "**NO**") for k, v in off["checks"].items()]
            ),
            "",
            "(The last line is the control: the check does see TensorFlow once a step imports it.) Per weekly run, "
            "only `score` pays the import; `ingest`, `validate`, `transform`, `monitor` and `check_week` do not.",
        ]
        if tf and b:
            spared = 5 * b["weeks"] * tf["warm"]["seconds"]
            parts.append("")
            parts.append(
                f"Were TensorFlow imported at module level, those five tasks of each of the {b['weeks']} weeks would "
                f"each pay ~{tf['warm']['seconds']:.1f} s and ~{tf['warm']['rss_added_mb']:.0f} MB more: about "
                f"{spared:.0f} s of CPU per backfill (and DAG parsing would pay it on every parse)."
            )
    return "\n".join(parts)


def training_section(t: dict[str, Any]) -> str:
    rows = []
    runs = {name: v for name, v in t.items() if name != "peak_ratio"}
    for name, v in runs.items():
        ds, tr = v["dataset"], v["train"]
        rows.append(
            (
                name,
                num(tr["train_rows"], 0),
                num(tr["vocabulary_size"], 0),
                num(tr["seconds"], 1),
                num(tr["fit_seconds"], 1),
                num(tr["peak_rss_mb"], 0),
                num(tr["rss_before_mb"], 0),
                f"{ds['curate_seconds']} + {ds['snapshot_seconds']}",
            )
        )
    params = next(iter(runs.values()))["train"]["params"]
    return "\n".join(
        [
            "## Training",
            "",
            "One `train_candidate` run (default `TrainParams`: "
            + ", ".join(
                f"{k}={v}"
                for k, v in params.items()
                if k in ("representation", "max_tokens", "ngrams", "hidden_units", "epochs", "batch_size")
            )
            + ") per dataset, in a fresh interpreter (TensorFlow imported before the clock). `train_candidate` "
            "includes the fit, saving the model and `write_reference` (predicting the training texts for the "
            "monitoring reference). The dataset versions are built first and not timed as training.",
            "",
            table(
                (
                    "dataset",
                    "train rows",
                    "vocabulary",
                    "train_candidate s",
                    "of which fit s",
                    "peak RSS MB",
                    "RSS before MB",
                    "dataset build s (curate + snapshot)",
                ),
                rows,
            ),
            "",
            *_reference_note(t),
        ]
    )


def _reference_note(t: dict[str, Any]) -> list[str]:
    r = t.get("peak_ratio")
    if not r:
        return []
    return [
        "",
        f"At {_size(r['rows'])} rows: peak RSS of the whole step {num(r['step_peak_mb'], 0)} MB against "
        f"{num(r['fit_peak_mb'], 0)} MB when the model was fitted and saved (before `write_reference`): "
        f"**{r['ratio']:.2f}x**, target <= 1.25x: {verdict(r['met'])}.",
    ]


def failures_section(runs: list[dict[str, Any]]) -> str:
    failed = [r for r in runs if r["returncode"] != 0]
    if not failed:
        return ""
    parts = ["## Failures", ""]
    for run in failed:
        parts += [
            f"`{run['name']}` exited {run['returncode']}; the end of its output:",
            "",
            "```",
            run.get("tail", ""),
            "```",
            "",
        ]
    return "\n".join(parts)


# Benches beyond the core ones (run_all.OPTIONAL_BENCHES, e.g. the serving load test): their
# module may define report_rows(figures) -> rows for the targets table (stage, measure,
# figure, target, verdict) and report_section(figures) -> Markdown; without them the
# figures are shown as JSON.
def _extra(name: str, figures: dict[str, Any]) -> tuple[list[Row], str]:
    import importlib
    import json

    try:
        module = importlib.import_module(f"bench.bench_{name}")
    except ImportError:
        module = None
    rows = list(module.report_rows(figures)) if hasattr(module, "report_rows") else []
    if hasattr(module, "report_section"):
        return rows, str(module.report_section(figures))
    return rows, f"## {name}\n\n```json\n{json.dumps(figures, indent=2, default=str)}\n```"


def render(context: dict[str, Any], figures: dict[str, Any], extra: Sequence[str] = ()) -> str:
    extras = {name: _extra(name, figures[name]) for name in extra if name in figures}
    sections = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run_all.py`); do not edit by hand. Synthetic reviews are the 600 shipped "
        "reviews resampled (seeded) with new unique ids, dates inside one week (2017-12-11 .. 12-17) and three words "
        "of the shipped vocabulary inserted into each text so that every text is distinct (`bench/common.py`).",
        "",
        *(
            ["**A `--quick` run: small sizes to check the plumbing; these figures are not the benchmark.**", ""]
            if context.get("quick")
            else []
        ),
        summary_section(figures, [row for rows, _ in extras.values() for row in rows]),
        "",
        machine_section(context),
    ]
    for name, render_section in (
        ("scoring", scoring_section),
        ("dataplane", dataplane_section),
        ("training", training_section),
        ("parse", parse_section),
        ("orchestration", orchestration_section),
    ):
        if name in figures:
            sections += ["", render_section(figures[name])]
    if "orchestration" not in figures:
        sections += ["", carried_orchestration_section()]
    for _, section in extras.values():
        sections += ["", section]
    failures = failures_section(context["runs"])
    if failures:
        sections += ["", failures]
    sections += [
        "",
        "## Running them",
        "",
        "`make bench` runs them all (PostgreSQL must accept user `postgres` at 127.0.0.1:5432 for the orchestration "
        "bench; `python -m bench.run_all --skip-orchestration` carries its last measured figures instead); one at a "
        "time: `.venv/bin/python -m bench.bench_scoring` (or `bench_dataplane`, `bench_training`, `bench_parse`, "
        "`bench_orchestration`), each printing its figures as JSON; `python -m bench.run_all --only scoring,training` "
        "renders a partial RESULTS.md. `BENCH_WORK=DIR` keeps the scratch data in DIR (with `BENCH_KEEP=1`, "
        "run_all does not delete it).",
        "",
    ]
    return "\n".join(sections)
