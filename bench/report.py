"""Render ``bench/RESULTS.md`` from the figures the benches wrote.

Every number in the file comes from this run's figures; the explanations of missed
targets name the project's code by file and line, found in the checkout at render time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bench.common import ROOT

Row = Sequence[Any]
MARK_DUPLICATES_CLEAN = '+ frame["text"].fillna("").map(clean_text)'


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
            f"**These figures were taken on a shared, loaded machine**: other engineers' test suites ran "
            f"at the same time (1-min load mean {during['mean']} on {m['nproc']} CPUs). Absolute times are "
            "slower and noisier than on an idle machine; each ratio compares two measurements taken minutes "
            "apart under the same kind of load, so ratios are the figures to read, and even they move by "
            "roughly ±10-20% from run to run.",
        ]
    return "\n".join(lines)


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def summary_section(figures: dict[str, Any]) -> str:
    rows: list[Row] = []
    s = figures.get("scoring")
    if s:
        sizes = s["sizes"]
        ratios = ", ".join(f"{num(int(k), 0)}: {v['throughput_ratio']:.2f}" for k, v in sizes.items())
        rows.append(
            (
                "1. Scoring",
                f"score_week / bare model.predict throughput ({ratios})",
                f"{s['throughput_ratio_min']:.2f}",
                ">= 0.8",
                verdict(s["throughput_met"]),
            )
        )
        if "rss_ratio" in s:
            rows.append(
                (
                    "1. Scoring",
                    f"peak RSS of score_week, {_size(max(sizes, key=int))} / {_size(min(sizes, key=int))}",
                    f"{s['rss_ratio']:.2f}x",
                    "<= 1.25x",
                    verdict(s["rss_met"]),
                )
            )
    d = figures.get("dataplane")
    if d:
        rows.append(
            (
                "2. Data plane",
                f"ingest+validate+transform / bare pyarrow TSV->Parquet throughput, {_size(d['rows'])} rows",
                f"{d['ratio']:.3f}",
                ">= 0.3",
                verdict(d["met"]),
            )
        )
    o = figures.get("orchestration")
    if o and "backfill" in o:
        b = o["backfill"]
        rows.append(
            (
                "3. Orchestration",
                f"{b['weeks']}-week backfill: reviews_weekly / noop_weekly time",
                f"{b['ratio']:.2f}x",
                "<= 3x",
                verdict(b["met"]),
            )
        )
    if o and "tf_off_tasks" in o:
        ok = o["tf_off_tasks"]["all_true"]
        rows.append(
            (
                "3. Orchestration",
                "TensorFlow stays off ingest/validate/transform and DAG parsing",
                "yes" if ok else "NO",
                "yes",
                verdict(ok),
            )
        )
    t = figures.get("training")
    if t:
        for name, value in t.items():
            rows.append(
                (
                    "4. Training",
                    f"train_candidate, defaults, {name} ({num(value['train']['train_rows'], 0)} train rows)",
                    f"{value['train']['seconds']} s, {num(value['train']['peak_rss_mb'], 0)} MB peak",
                    "(none)",
                    "-",
                )
            )
    return "## Summary\n\n" + table(("stage", "measure", "figure", "target", ""), rows)


def scoring_section(s: dict[str, Any]) -> str:
    sizes = s["sizes"]
    rows = []
    for rows_n, v in sizes.items():
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
    large = sizes[max(sizes, key=int)]
    sw, bare = large["score_week"], large["bare_predict"]
    scan = sw["split_seconds"]["scan_texts"]
    without_scan = bare["seconds"] / (sw["seconds"] - scan)
    parts = [
        "## 1. Scoring",
        "",
        "`reviewops.modeling.scoring.score_week` on a curated week partition (written in `CURATED_SCHEMA` with "
        "`storage.write_parquet`, as transform writes it) against `model.predict` of the same registered "
        "model (Keras, TF-IDF vectoriser inside) on the same texts already in memory, batch size 4096 for both. "
        "Each side runs in a fresh interpreter with TensorFlow imported before the clock starts; `score_week` is "
        "timed whole (registry lookup, model load, Parquet read, predict, safety flags, Parquet write). The split "
        "column times the functions `score_table_batches` calls, by wrapping them.",
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
        "",
        f"- Throughput ratio (the lower of the sizes): **{s['throughput_ratio_min']:.2f}**, target >= 0.8: "
        f"{verdict(s['throughput_met'])}.",
    ]
    if "rss_ratio" in s:
        small = sizes[min(sizes, key=int)]["score_week"]["peak_rss_mb"]
        parts.append(
            f"- Peak RSS of `score_week` at {_size(max(sizes, key=int))} / at {_size(min(sizes, key=int))}: "
            f"{num(sw['peak_rss_mb'], 0)} / {num(small, 0)} MB = "
            f"**{s['rss_ratio']:.2f}x**, target <= 1.25x: {verdict(s['rss_met'])}. Scoring streams record batches "
            "and appends each to a `ParquetWriter`, so memory does not grow with the week "
            f"(the bare `model.predict` holds all texts: {num(bare['peak_rss_mb'], 0)} MB at {_size(max(sizes, key=int))})."
        )
    if not s["throughput_met"]:
        profile = s.get("profile", {})
        pre = s.get("prefilter", {})
        parts += [
            "",
            "### Why scoring misses its throughput target",
            "",
            (
                f"The model is not the problem: at {num(int(max(sizes, key=int)), 0)} rows the project's "
                f"`predict_proba` took {sw['split_seconds']['predict_proba']:.1f} s where `model.predict` on the same "
                f"texts took {bare['seconds']:.1f} s (it calls one traced function per batch, without Keras' "
                "predict loop). "
                if sw["split_seconds"]["predict_proba"] <= bare["seconds"]
                else f"At {num(int(max(sizes, key=int)), 0)} rows the project's `predict_proba` took "
                f"{sw['split_seconds']['predict_proba']:.1f} s and `model.predict` {bare['seconds']:.1f} s. "
            )
            + "The gap is the **safety scan**: `reviewops.data.safety.scan_texts`, called on every batch at "
            f"`{where('include/reviewops/scoring.py', 'flags = scan_texts(texts)')}`, took {scan:.1f} s, "
            f"**{pct(scan, sw['seconds'])} of `score_week`**. It runs `scan_text` "
            f"(`{where('include/reviewops/safety.py', 'def scan_text(')}`) in Python once per review: for the toxic "
            f"lexicon `_toxic_in` lists every word of the lowercased text with `_WORD.findall` and intersects them "
            f"with the lexicon's last words (`{where('include/reviewops/safety.py', '_WORD.findall(lowered)')}`"
            + (
                f": `findall` {pct(_profile_share(profile, 'findall'), 1)} and `frozenset.isdisjoint` "
                f"{pct(_profile_share(profile, 'isdisjoint'), 1)} of the profiled run"
                if profile
                else ""
            )
            + "), and the phone and URL hint regexes run on every text"
            + (f" (`re.Pattern.search` {pct(_profile_share(profile, 'search'), 1)})" if profile else "")
            + f". Without the scan, `score_week` would reach a ratio of about {without_scan:.2f}.",
            "",
            "**Proposed fix** (not applied: `include/` is not this issue's to change): in `scan_texts`, find for the "
            "whole batch at once, with Arrow's RE2 kernels (`pyarrow.compute.match_substring[_regex]` on the batch's "
            "`text` column and its `utf8_lower`), the texts that hold any hint of a category (an `@`, a `+`, "
            "`_PHONE_HINT`, `_URL_HINT`, the lexicon's own pattern), and run the Python `scan_text` only on those; "
            "every other text gets empty flags. `score_table_batches` already holds the batch as Arrow, so it can "
            "pass the column instead of the Python list.",
        ]
        if pre:
            fixed = sw["seconds"] - scan + scan * pre["prefiltered_seconds"] / pre["scan_texts_seconds"]
            parts += [
                "",
                f"Measured here on the {num(pre['rows'], 0)}-row week: `scan_texts` {pre['scan_texts_seconds']:.2f} s, "
                f"the prefiltered scan {pre['prefiltered_seconds']:.2f} s "
                f"({pre['scan_texts_seconds'] / pre['prefiltered_seconds']:.1f}x faster; {num(pre['candidates'], 0)} "
                f"texts needed the full scan) with **identical flags: {pre['identical']}**. Scaled to the "
                f"{num(int(max(sizes, key=int)), 0)}-row run, `score_week` would take about {fixed:.0f} s instead of "
                f"{sw['seconds']:.0f} s: a ratio of about **{bare['seconds'] / fixed:.2f}**.",
            ]
        if profile:
            parts += [
                "",
                f"Profile of `score_week` on {num(int(min(sizes, key=int)), 0)} rows:",
                "",
                profile_tables(profile),
            ]
    return "\n".join(parts)


def dataplane_section(d: dict[str, Any]) -> str:
    p, bare, one = d["pipeline"], d["bare"], d["bare_one_thread"]
    sec = p["seconds"]
    rows = [
        ("ingest_reviews", num(sec["ingest"], 1), "", ""),
        ("validate_reviews", num(sec["validate"], 1), "", ""),
        ("transform_reviews", num(sec["transform"], 1), "", ""),
        ("**pipeline total**", num(p["total_seconds"], 1), num(p["rows_per_second"], 0), num(p["peak_rss_mb"], 0)),
        (
            "bare read_csv + write_table (threads)",
            f"{bare['read_seconds']:.2f} + {bare['write_seconds']:.2f}",
            num(bare["rows_per_second"], 0),
            num(bare["peak_rss_mb"], 0),
        ),
        (
            "bare, one thread",
            f"{one['read_seconds']:.2f} + {one['write_seconds']:.2f}",
            num(one["rows_per_second"], 0),
            num(one["peak_rss_mb"], 0),
        ),
    ]
    parts = [
        "## 2. Data plane",
        "",
        f"{num(d['rows'], 0)} synthetic reviews in one week, one TSV file of {d['source_bytes'] / 1e6:.0f} MB in the "
        "shipped file's layout (generated in "
        f"{d['generate_seconds']} s). The pipeline is `ingest_reviews` -> `validate_reviews` -> `transform_reviews` "
        "over the week's window, as the weekly DAG's operators call them, in one fresh interpreter. The bare side "
        "reads the same file with `pyarrow.csv.read_csv` (every column a string, `newlines_in_values` as the "
        "project reads it) and writes it with `pyarrow.parquet.write_table` (zstd, as the project writes).",
        "",
        table(("step", "seconds", "rows/s", "peak RSS MB"), rows),
        "",
        f"- Rows: {num(p['rows_read'], 0)} read, {num(p['rows_valid'], 0)} valid, {num(p['rows_quarantined'], 0)} "
        f"quarantined, {num(p['rows_curated'], 0)} curated.",
        f"- Throughput ratio: **{d['ratio']:.3f}** (against one-thread pyarrow: {d['ratio_one_thread']:.3f}), "
        f"target >= 0.3: {verdict(d['met'])}.",
    ]
    if not d["met"]:
        clean = p.get("clean_text", {})
        profile = d.get("profile", {})
        needed = bare["total_seconds"] / 0.3
        parts += [
            "",
            "### Why the data plane misses its target",
            "",
            f"Missed by a factor of **{0.3 / d['ratio']:.0f}**: the target allows {needed:.0f} s for what took "
            f"{p['total_seconds']:.0f} s. validate and transform are row-at-a-time Python over pandas `object` "
            "columns, where the bare side is Arrow's C++ end to end.",
        ]
        if clean:
            est = clean["calls_per_row"] * clean["one_pass_seconds"]
            parts += [
                "",
                f"**Hot spot 1: `reviewops.data.parsing.clean_text`, three times per row.** One pass over the "
                f"{num(clean['rows'], 0)} texts takes about {clean['one_pass_seconds']:.1f} s (timed on "
                f"{num(clean.get('sample_rows', clean['rows']), 0)} of them after the run, scaled), and the pipeline "
                "makes three: "
                f"`validate_frame` (`{where('include/reviewops/validate.py', 'cleaned = text.map(clean_text)')}`), "
                f"`_mark_duplicates` again for the content key "
                f"(`{where('include/reviewops/validate.py', MARK_DUPLICATES_CLEAN)}`), and `curate_frame` a third time "
                f"(`{where('include/reviewops/transform.py', 'map(clean_text)')}`): about {est:.0f} s, "
                f"**~{pct(est, p['total_seconds'])} of the pipeline**"
                + (
                    f" (cProfile: {pct(_profile_share(profile, 'parsing.py', 'cumtime'), 1)} cumulative in `clean_text`)"
                    if profile
                    else ""
                )
                + ". Inside it, the whitespace collapse "
                f"`_WHITESPACE.sub(' ', text).strip()` (`{where('include/reviewops/parsing.py', '_WHITESPACE.sub')}`) "
                "is the cost"
                + (
                    f": `re.Pattern.sub` is {pct(_profile_share(profile, 'sub'), 1)} of the profiled run's own time"
                    if profile
                    else ""
                )
                + " (Python's `re` steps through every character of a ~500-character review for `\\s+`; "
                "`html.unescape` is the smaller part).",
                "",
                "**Proposed fixes** (not applied): (a) in `clean_text`, `text = ' '.join(text.split())` instead of the "
                "regex: `str.split()` and `re`'s `\\s` both split on exactly the characters `str.isspace()` accepts, "
                f"so the result is the same; measured on the same texts: {clean['one_pass_seconds']:.1f} s -> "
                f"{clean['split_join_seconds']:.1f} s, **identical output: {clean['split_join_identical']}**. "
                "(b) Clean each text once: pass `cleaned` from `validate_frame` into `_mark_duplicates`, and write it "
                "into the validated batch (a `text_clean` column, or clean there and keep the raw text only in the "
                "quarantine) so `curate_frame` does not clean again. With both, the three passes "
                f"(~{est:.0f} s) become one of ~{clean['split_join_seconds']:.0f} s: the pipeline would take about "
                f"{p['total_seconds'] - est + clean['split_join_seconds']:.0f} s, a ratio of about "
                f"{bare['total_seconds'] / (p['total_seconds'] - est + clean['split_join_seconds']):.3f}: better, "
                "still far from 0.3.",
            ]
        parts += [
            "",
            "**What else stands between the pipeline and 0.3.** The rest is spread over per-row Python in "
            "`validate_frame` (`Series.map` with `parse_label`, `_safe_count`, `has_control_characters`, the date "
            "lambdas and `monday_of` per row), pandas string and `groupby` work for the duplicate checks "
            "(`factorize`), the Arrow <-> pandas conversions between the steps, and five zstd Parquet writes of "
            "the batch (raw, validated, quarantine, curated, duplicates) where the bare side writes one. "
            "Reaching 0.3 (a whole week of a million reviews in a few seconds) means doing validate and transform in Arrow: "
            "`pyarrow.compute` for trimming, label mapping (`index_in`), count and date parsing (`strptime` per "
            "accepted format, `coalesce`), `match_substring_regex` for control characters, `hash_` + `group_by` "
            "for duplicates, with Python only for the rows that need `html.unescape`. That is a rewrite of "
            "`validate_frame` and `curate_frame` with the same reasons and the same tests, not a one-line fix.",
            "",
            f"Peak RSS is {num(p['peak_rss_mb'], 0)} MB for a {d['source_bytes'] / 1e6:.0f} MB file "
            f"(bare: {num(bare['peak_rss_mb'], 0)} MB); there is no memory target here, and memory was not profiled.",
        ]
        if profile:
            parts += [
                "",
                f"Profile of the pipeline on {num(d['profile_rows'], 0)} rows (same data, smaller batch):",
                "",
                profile_tables(profile),
            ]
    return "\n".join(parts)


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
    for name, v in t.items():
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
    params = next(iter(t.values()))["train"]["params"]
    return "\n".join(
        [
            "## 4. Training",
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
            "No target was set for training; these are the figures to compare later runs with.",
            *_reference_note(t),
        ]
    )


def _reference_note(t: dict[str, Any]) -> list[str]:
    """Where the peak RSS of the largest training run comes from, when write_reference makes it."""
    name, largest = max(t.items(), key=lambda item: item[1]["train"]["train_rows"])
    train = largest["train"]
    reference = train.get("write_reference") or {}
    before = reference.get("peak_rss_before_mb")
    if not before or train["peak_rss_mb"] < 1.5 * before:
        return []
    return [
        "",
        f"**Memory hot spot** ({name}): the peak RSS before `write_reference` was {num(before, 0)} MB (fit included); "
        f"`write_reference` ({reference['seconds']} s) took it to {num(train['peak_rss_mb'], 0)} MB. It predicts every "
        "training text in one call (`predict_labels(model, texts)` at "
        f"`{where('include/reviewops/training.py', 'predict_labels(model, texts)')}`), so the TF-IDF layer "
        f"materialises a dense {num(train['train_rows'], 0)} x {num(train['vocabulary_size'], 0)} float matrix "
        f"({train['train_rows'] * train['vocabulary_size'] * 4 / 1e9:.1f} GB) and its intermediates at once. "
        "**Proposed fix** (not applied): predict in batches of a few thousand texts, as scoring does, which "
        "bounds that memory by the batch size rather than the dataset.",
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


def render(context: dict[str, Any], figures: dict[str, Any]) -> str:
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
        summary_section(figures),
        "",
        machine_section(context),
    ]
    for name, render_section in (
        ("scoring", scoring_section),
        ("dataplane", dataplane_section),
        ("orchestration", orchestration_section),
        ("training", training_section),
    ):
        if name in figures:
            sections += ["", render_section(figures[name])]
    failures = failures_section(context["runs"])
    if failures:
        sections += ["", failures]
    sections += [
        "",
        "## Running them",
        "",
        "`make bench` runs all four (PostgreSQL must accept user `postgres` at 127.0.0.1:5432 for the orchestration "
        "bench); one at a time: `.venv/bin/python -m bench.bench_scoring` (or `bench_dataplane`, `bench_training`, "
        "`bench_orchestration`), each printing its figures as JSON; `python -m bench.run_all --only scoring,training` "
        "renders a partial RESULTS.md. `BENCH_WORK=DIR` keeps the scratch data in DIR (with `BENCH_KEEP=1`, "
        "run_all does not delete it).",
        "",
    ]
    return "\n".join(sections)
