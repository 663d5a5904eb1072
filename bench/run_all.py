"""Run every benchmark, one after another, and write ``bench/RESULTS.md`` (``make bench``).

Each bench runs as its own process with a shared scratch folder: ``$BENCH_WORK`` when
set (kept), else a new temporary folder, deleted at the end unless ``BENCH_KEEP=1``. The load
average is recorded at the start, every 15 s while the benches run, and at the end.
A bench that fails is reported in RESULTS.md with the tail of its output, the others
still run, and the command exits non-zero.

    python -m bench.run_all [--only parse,scoring,dataplane,training,orchestration] [--skip-orchestration]
                            [--quick] [--output FILE]

Optional benches (OPTIONAL_BENCHES) run too when their module bench/bench_<name>.py exists;
the report shows their figures in a section of their own (see report._extra).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, load_average, machine
from bench.report import render

BENCHES = ("parse", "scoring", "dataplane", "training", "orchestration")
# Run when bench/bench_<name>.py exists, after the core benches: add a name here.
OPTIONAL_BENCHES: tuple[str, ...] = ("serving", "lineage")
# --quick: the same code paths on small sizes, to check the plumbing in a few minutes.
QUICK_ARGS = {
    "parse": ["--runs", "1"],
    "scoring": ["--sizes", "20000,50000", "--profile-rows", "20000", "--process-rows", "20000"],
    "dataplane": ["--sizes", "20000,50000", "--profile-rows", "20000"],
    "training": ["--rows", "5000"],
    "orchestration": ["--weeks", "3"],
    "serving": ["--quick"],
    "lineage": ["--sizes", "1000,10000", "--lookups", "50"],
}
RESULTS_MD = ROOT / "bench" / "RESULTS.md"


class LoadSampler(threading.Thread):
    """The 1-minute load average every ``every`` seconds, until stopped."""

    def __init__(self, every: float = 15) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(load_average()[0])
            self._halt.wait(self.every)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        samples = self.samples or [load_average()[0]]
        return {"samples": len(samples), "mean": round(sum(samples) / len(samples), 2), "max": round(max(samples), 2)}


def run_bench(name: str, env: dict[str, str], log: Path, args: list[str]) -> dict[str, Any]:
    """``python -m bench.bench_<name> args...``, its output teed to the terminal and ``log``."""
    started = time.monotonic()
    load = load_average()
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"bench.bench_{name}", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        in_json = False
        for line in proc.stdout:
            handle.write(line)
            # The final JSON dump and TensorFlow's start-up chatter stay in the log only.
            in_json = in_json or line.startswith("{")
            if not in_json and not line.startswith(("WARNING: All log", "I0000")):
                print(f"[{name}] {line}", end="", flush=True)
        proc.wait()
    return {
        "name": name,
        "returncode": proc.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "load_average_at_start": load,
        "log": str(log),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument(
        "--output", help=f"default: {RESULTS_MD.relative_to(ROOT)} (with --quick: in the scratch folder)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the plumbing (not the figures)")
    parser.add_argument(
        "--skip-orchestration",
        action="store_true",
        help="leave out the orchestration bench (about 15 min, PostgreSQL): RESULTS.md carries its last figures",
    )
    parser.add_argument("--render", metavar="DIR", help="only re-render from the results/ of a kept scratch folder")
    args = parser.parse_args(argv)
    if args.render:
        return rerender(Path(args.render) / "results", Path(args.output or RESULTS_MD))
    names = [n for n in args.only.split(",") if n and not (args.skip_orchestration and n == "orchestration")]
    unknown = sorted(set(names) - set(BENCHES) - set(OPTIONAL_BENCHES))
    if unknown:
        raise SystemExit(f"unknown bench(es) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    given = os.environ.get("BENCH_WORK")
    work = Path(given or tempfile.mkdtemp(prefix="reviewops-bench-"))
    output = Path(args.output or (work / "RESULTS.md" if args.quick else RESULTS_MD))
    keep = bool(given or args.quick or os.environ.get("BENCH_KEEP"))
    results = work / "results"
    results.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENCH_WORK": str(work), "BENCH_RESULTS": str(results), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started_at = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    context: dict[str, Any] = {
        "command": "make bench"
        if os.environ.get("MAKELEVEL") and not argv
        else " ".join(["python -m bench.run_all", *argv]),
        "quick": args.quick,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_start": load_average(),
    }
    print(f"benchmarks: {', '.join(names)}; scratch folder {work}; load average {context['load_average_start']}")
    sampler = LoadSampler()
    sampler.start()
    extra = [n for n in OPTIONAL_BENCHES if (ROOT / "bench" / f"bench_{n}.py").exists() and n not in names]
    names += extra
    runs = [
        run_bench(name, env, work / f"{name}.log", QUICK_ARGS.get(name, []) if args.quick else []) for name in names
    ]
    context["load_average_during"] = sampler.stop()
    context["load_average_end"] = load_average()
    context["total_seconds"] = round(time.monotonic() - started, 1)
    context["runs"] = runs
    figures = {}
    for name in names:
        path = results / f"{name}.json"
        if path.exists():
            figures[name] = json.loads(path.read_text())
    for run in runs:
        if run["returncode"] != 0:
            run["tail"] = Path(run["log"]).read_text(encoding="utf-8", errors="replace")[-4000:]
    (results / "context.json").write_text(json.dumps(context, indent=2, default=str) + "\n", encoding="utf-8")
    context["extra"] = [n for n in names if n in OPTIONAL_BENCHES]
    output.write_text(render(context, figures, context["extra"]), encoding="utf-8")
    print(f"benchmarks: done in {context['total_seconds'] / 60:.1f} min; wrote {output}")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


def rerender(results: Path, output: Path) -> int:
    context = json.loads((results / "context.json").read_text())
    known = (*BENCHES, *OPTIONAL_BENCHES)
    figures = {p.stem: json.loads(p.read_text()) for p in results.glob("*.json") if p.stem in known}
    output.write_text(render(context, figures, context.get("extra", [])), encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
