"""DAG parse time: each file of dags/ parsed alone in a fresh interpreter, timed after
``import airflow`` (which every parse pays anyway), as tests/dags/test_parse_cost.py parses
them; the median of a few runs, since one parse is a fraction of a second.

    python -m bench.bench_parse [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from bench.common import ROOT, child_env, save_result

RUNS = 3
TARGET_SECONDS = 1.0
PROBE = """
import json, sys, time
import airflow  # noqa: F401  (paid by every parse; not what this measures)
from airflow.dag_processing.dagbag import DagBag

started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "dags": sorted(bag.dag_ids), "errors": len(bag.import_errors)}))
"""


def parse_once(path: str, home: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, path],
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env({"AIRFLOW_HOME": home}),
        cwd=ROOT,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"parsing {path} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    files: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="reviewops-parse-") as home:
        os.chmod(home, 0o700)
        for path in sorted((ROOT / "dags").glob("*.py")):
            runs = [parse_once(str(path), home) for _ in range(args.runs)]
            seconds = statistics.median(r["seconds"] for r in runs)
            files[path.name] = {
                "seconds": round(seconds, 3),
                "runs": [round(r["seconds"], 3) for r in runs],
                "dags": runs[0]["dags"],
                "import_errors": runs[0]["errors"],
                "met": seconds < TARGET_SECONDS and not runs[0]["errors"],
            }
            print(f"parse: {path.name} {seconds:.3f}s", flush=True)
    result = {"files": files, "target_seconds": TARGET_SECONDS, "met": all(f["met"] for f in files.values())}
    save_result("parse", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2, default=str))
