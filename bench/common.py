"""What the benchmarks share: the machine, peak memory, child processes, synthetic
reviews resampled from the shipped ones, a quickly trained champion, and profiles.

Synthetic reviews: every row is a shipped review (drawn with replacement, seeded), with
a new unique ``review_id`` and a date inside one chosen week. Its text gets three words
of the shipped reviews' own vocabulary inserted at the front (inside the scrape's
quotes); the three words spell the row number in base ``len(vocabulary)``, so every text
is distinct and the pipeline's deduplication (same product and text) keeps every row.
All of it is done with Arrow compute kernels on whole columns, no Python loop per row.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import json
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "include" / "reviewops" / "data" / "reviews.tsv"
SOURCE_COLUMNS = ("", "drugName", "condition", "review", "rating", "date", "usefulCount")
RESULT_MARK = "BENCH-RESULT "
# The week the synthetic reviews fall in (a Monday; inside the shipped data's last year).
BENCH_WEEK = dt.date(2017, 12, 11)
CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


# -- the machine ---------------------------------------------------------------------


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, Any]:
    """nproc, memory, CPU model, kernel and the versions of what is measured."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    meminfo = _proc_kb("/proc/meminfo", ("MemTotal", "MemAvailable"))
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(meminfo["MemTotal"] / 1024**2, 1),
        "memory_available_gb": round(meminfo["MemAvailable"] / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("apache-airflow", "tensorflow-cpu", "keras", "pyarrow", "pandas", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _proc_kb(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in keys:
                values[name] = int(rest.split()[0])
    return values


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), in MB."""
    return round(_proc_kb("/proc/self/status", ("VmHWM",))["VmHWM"] / 1024, 1)


def rss_mb() -> float:
    """This process's current resident set size (VmRSS), in MB."""
    return round(_proc_kb("/proc/self/status", ("VmRSS",))["VmRSS"] / 1024, 1)


# -- child processes -------------------------------------------------------------------


def emit(result: dict[str, Any]) -> None:
    """A child's result: one marked JSON line on stdout."""
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)


def venv_has_bytecode() -> bool:
    """Whether the venv holds compiled bytecode (``make install`` compiles it)."""
    import importlib.util

    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        return False
    origin = Path(spec.origin)
    return (origin.parent / "__pycache__" / f"{origin.stem}.{sys.implementation.cache_tag}.pyc").exists()


def pycache_dir() -> Path | None:
    """One bytecode cache for every child of a bench run, unless the venv has its own.

    Where the venv holds no compiled bytecode and PYTHONDONTWRITEBYTECODE is set, every
    fresh interpreter would compile TensorFlow from source again; children then write and
    reuse bytecode here instead, as a deployed image would ship it.
    """
    global _PYCACHE
    if _PYCACHE is None and not venv_has_bytecode():
        _PYCACHE = work_dir("pycache")
    return _PYCACHE


_PYCACHE: Path | None = None


def child_env(extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a child: ours, with a shared bytecode cache where the venv has
    none; a ``None`` value removes a key."""
    env = {**os.environ, **CHILD_ENV}
    cache = pycache_dir()
    if cache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_child(
    module: str, *args: str, timeout: float = 1800, env: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """``python -m module child args...`` in a fresh interpreter; its emitted result,
    with the wall time of the whole process (start-up included) added."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", module, "child", *args],
        cwd=ROOT,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"child {module} {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARK) :])
    result["process_seconds"] = round(time.monotonic() - started, 2)
    return result


def work_dir(name: str) -> Path:
    """The scratch folder ``$BENCH_WORK/<name>``. Without ``$BENCH_WORK``, a new temporary
    folder becomes it (for this process and its children; nothing deletes it)."""
    if not os.environ.get("BENCH_WORK"):
        os.environ["BENCH_WORK"] = tempfile.mkdtemp(prefix="reviewops-bench-")
    path = Path(os.environ["BENCH_WORK"]) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """Where each bench writes its JSON figures (``$BENCH_RESULTS``, else the scratch folder)."""
    if os.environ.get("BENCH_RESULTS"):
        path = Path(os.environ["BENCH_RESULTS"])
        path.mkdir(parents=True, exist_ok=True)
        return path
    return work_dir("results")


def save_result(name: str, payload: dict[str, Any]) -> Path:
    path = results_dir() / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


# -- synthetic reviews -------------------------------------------------------------------


def shipped_table() -> pa.Table:
    """The 600 shipped reviews, every column as the string found in the file."""
    return pacsv.read_csv(
        SHIPPED,
        parse_options=pacsv.ParseOptions(delimiter="\t", newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in SOURCE_COLUMNS}),
    )


def vocabulary(texts: list[str]) -> pa.Array:
    """The distinct lowercase words (3+ letters) of the shipped texts, sorted."""
    words = sorted({w for text in texts for w in re.findall(r"[a-z]{3,}", text.lower())})
    return pa.array(words, pa.string())


def _spell(numbers: np.ndarray, words: pa.Array) -> pa.Array:
    """Each number as three words (its digits in base ``len(words)``), space-separated."""
    base = len(words)
    if base**3 <= int(numbers.max(initial=0)):
        raise ValueError(f"{base} words spell at most {base**3} rows")
    digits = [words.take(pa.array((numbers // base**k) % base)) for k in range(3)]
    return pc.binary_join_element_wise(*digits, " ")


def _perturbed(texts: pa.ChunkedArray | pa.Array, prefix: pa.Array) -> pa.Array:
    """``prefix`` inserted at the front of each text, inside a leading quote if any."""
    quoted = pc.starts_with(texts, '"')
    inside = pc.binary_join_element_wise('"', prefix, " ", pc.utf8_slice_codeunits(texts, 1), "")
    before = pc.binary_join_element_wise(prefix, texts, " ")
    return pc.if_else(quoted, inside, before)


def _week_dates(monday: dt.date, days: np.ndarray, fmt: Callable[[dt.date], str]) -> pa.Array:
    week = pa.array([fmt(monday + dt.timedelta(days=d)) for d in range(7)], pa.string())
    return week.take(pa.array(days))


def synthetic_source(n: int, monday: dt.date = BENCH_WEEK, seed: int = 0, id_offset: int = 0) -> pa.Table:
    """``n`` reviews in the shipped file's layout (all strings), dated inside the week."""
    base = shipped_table()
    rng = np.random.default_rng(seed)
    rows = base.take(pa.array(rng.integers(0, base.num_rows, n)))
    numbers = np.arange(id_offset, id_offset + n, dtype=np.int64)
    words = vocabulary(base.column("review").to_pylist())
    ids = pc.binary_join_element_wise("9", pc.cast(pa.array(numbers + 10**9), pa.string()), "")
    dates = _week_dates(monday, rng.integers(0, 7, n), lambda d: f"{d:%B} {d.day}, {d.year}")
    return pa.table(
        {
            "": ids,
            "drugName": rows.column("drugName"),
            "condition": rows.column("condition"),
            "review": _perturbed(rows.column("review"), _spell(numbers, words)),
            "rating": rows.column("rating"),
            "date": dates,
            "usefulCount": rows.column("usefulCount"),
        }
    )


def write_source_tsv(table: pa.Table, path: Path) -> Path:
    """Write a source table as TSV the way the shipped file is written (quoted text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(delimiter="\t", quoting_style="needed"))
    return path


def synthetic_curated(n: int, monday: dt.date = BENCH_WEEK, seed: int = 0, id_offset: int = 0) -> pa.Table:
    """``n`` reviews as the curated partition of the week (``CURATED_SCHEMA``): cleaned text,
    typed dates, as transform writes them. Cleaning runs on the 600 shipped texts only."""
    from reviewops.data.parsing import clean_text, parse_label
    from reviewops.data.schema import CURATED_SCHEMA

    base = shipped_table()
    rng = np.random.default_rng(seed)
    pick = pa.array(rng.integers(0, base.num_rows, n))
    numbers = np.arange(id_offset, id_offset + n, dtype=np.int64)
    cleaned = pa.array([clean_text(t) for t in base.column("review").to_pylist()], pa.string())
    labels = pa.array([parse_label(v) for v in base.column("rating").to_pylist()], pa.string())
    counts = pa.array([int(v) if v.strip() else None for v in base.column("usefulCount").to_pylist()], pa.int64())
    conditions = pa.array([v.strip() or None for v in base.column("condition").to_pylist()], pa.string())
    days = rng.integers(0, 7, n)
    week_days = pa.array([monday + dt.timedelta(days=d) for d in range(7)], pa.date32())
    return pa.table(
        {
            "review_id": pc.binary_join_element_wise("9", pc.cast(pa.array(numbers + 10**9), pa.string()), ""),
            "product": base.column("drugName").take(pick),
            "condition": conditions.take(pick),
            "text": _perturbed(cleaned.take(pick), _spell(numbers, vocabulary(cleaned.to_pylist()))),
            "label": labels.take(pick),
            "review_date": week_days.take(pa.array(days)),
            "week": pa.repeat(pa.scalar(monday, pa.date32()), n),
            "useful_count": counts.take(pick),
            "source_file": pa.repeat(pa.scalar("synthetic", pa.string()), n),
            "source_row": pa.array(numbers + 1),
        },
        schema=CURATED_SCHEMA,
    )


# -- a champion model -------------------------------------------------------------------


def only_output(artifacts: Any, kind: str) -> Any:
    (artifact,) = [a for a in artifacts if a.kind == kind]
    return artifact


def build_champion(data_root: Path, epochs: int = 3) -> str:
    """The shipped reviews curated, snapshotted, trained on (``TrainParams`` defaults but
    ``epochs``), evaluated, gated and registered; a model the gate rejects is promoted by
    hand so there is a champion. Returns it (an existing champion is kept)."""
    from reviewops.modeling.training import TrainParams
    from reviewops.pipeline import build_champion as build
    from reviewops.registry.store import Registry

    champion = Registry(str(data_root)).champion()
    if champion:
        return champion
    return build(data_root, TrainParams(epochs=epochs), "bench", promote_if_rejected=True)[0]


def copy_registry(source_root: Path, target_root: Path) -> None:
    """Give another data root the same registered models and champion."""
    shutil.copytree(source_root / "models", target_root / "models", dirs_exist_ok=True)


def champion_root() -> Path:
    """A data root with a registered champion, built once per ``$BENCH_WORK``."""
    root = work_dir("champion") / "data-root"
    root.mkdir(parents=True, exist_ok=True)
    build_champion(root)
    return root


# -- profiles ---------------------------------------------------------------------------


def profile_call(fn: Callable[[], Any], top: int = 15) -> dict[str, Any]:
    """Run ``fn`` under cProfile; the top entries by own time and by cumulative time."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(fn)
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": _where(file, line, name),
                "ncalls": ncalls,
                "tottime": round(tottime, 3),
                "cumtime": round(cumtime, 3),
            }
        )
    by_own = sorted(rows, key=lambda r: -r["tottime"])[:top]
    by_cum = sorted((r for r in rows if "reviewops/" in r["function"]), key=lambda r: -r["cumtime"])[:top]
    for row in (*by_own, *by_cum):
        row["share_own"] = round(row["tottime"] / total, 3) if total else 0.0
        row["share_cum"] = round(row["cumtime"] / total, 3) if total else 0.0
    return {
        "profiled_seconds": round(wall, 2),
        "total_tt": round(total, 2),
        "by_own_time": by_own,
        "by_cumulative": by_cum,
    }


def _where(file: str, line: int, name: str) -> str:
    if file == "~":
        return name
    for marker in ("include/reviewops/", "site-packages/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker.startswith("include"):
                file = "reviewops/" + file
            break
    return f"{file}:{line}({name})"
