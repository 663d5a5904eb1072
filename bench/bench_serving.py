"""Online serving under load: ``reviewops serve`` in its own process, locust in another
(headless, 127.0.0.1 only, each level bounded in time and in requests), against the same
model scored in process in batches (the limit a server could approach).

Levels: 1, 8, 32 and 64 concurrent closed-loop clients, each sending single reviews and
then batches of 32. For each: requests/s, reviews/s, p50/p95/p99 latency (locust's, whole
milliseconds), errors, and the rows the server put in a model call. Then a hot swap under
load: 32 clients while the champion is promoted to a second model and rolled back.

Targets (issue 14): at 32 concurrent single-review clients, p99 <= 100 ms and
throughput >= 0.5x the in-process limit (batches of 64, the server's largest model
call); zero errors during a hot swap under load.

    python -m bench.bench_serving [--quick] [--seconds S] [--out DIR]

``run(out_dir)`` returns the figures and writes ``serving.json`` and ``serving.md`` there;
``render_markdown(figures)`` is the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, champion_root, copy_registry, load_average, save_result, shipped_table, work_dir

LEVELS = ((1, 1), (8, 1), (32, 1), (64, 1), (1, 32), (8, 32), (32, 32), (64, 32))
QUICK_LEVELS = ((1, 1), (32, 1), (8, 32))
TARGET_CLIENTS = 32
TARGET_P99_MS = 100.0
TARGET_SHARE_OF_LIMIT = 0.5
LIMIT_BATCH = 64  # the server's max_batch_rows: the largest model call it makes
MAX_REQUESTS = 50_000  # a level's bound, whatever its duration
LOCUST = Path(sys.executable).with_name("locust")
LOCUSTFILE = ROOT / "bench" / "locustfile.py"
POLL_SECONDS = 1.0


def texts_for_load() -> list[str]:
    """The shipped reviews' texts (600), as clients would send them."""
    return [t for t in shipped_table().column("review").to_pylist() if t and t.strip()]


def second_version(root: Path) -> str:
    """A second registered model beside the champion (another seed, one epoch), for the
    hot swap; the champion stays champion."""
    from reviewops.contracts import MODEL_FILE
    from reviewops.modeling.training import TrainParams, TrainStepParams, train_candidate
    from reviewops.pipeline import evaluate_and_register
    from reviewops.registry.store import Registry
    from reviewops.storage.paths import Layout

    registry = Registry(str(root))
    champion = registry.require_champion()
    others = [m["version"] for m in registry.versions() if m["version"] != champion]
    if others:
        return str(others[-1])
    dataset_dir = Registry(str(root)).metadata(champion)["dataset_version"]
    dataset = Layout(root).datasets() / dataset_dir
    trained = train_candidate(TrainStepParams(str(root), str(dataset), TrainParams(epochs=1, seed=7)))
    evaluate_and_register(root, trained.output_named(MODEL_FILE).path, dataset, trained.subject, "bench")
    if registry.champion() != champion:
        registry.promote(champion, "bench: the first model stays champion", "bench")
    return str(trained.subject)


def in_process_limit(root: Path, texts: list[str], seconds: float) -> dict[str, Any]:
    """Reviews/s of the served model's own call (``ServedModel.score``: predict_proba and
    the safety scan) in batches of 1, 32 and 64, in this process with nothing else running."""
    from reviewops.data.parsing import clean_text
    from reviewops.registry.store import Registry
    from reviewops.serving.served import load_served_model

    model = load_served_model(str(root), Registry(str(root)).require_champion())
    cleaned = [clean_text(t) for t in texts]
    found = {}
    for batch in (1, 32, LIMIT_BATCH):
        model.score(cleaned[:batch])  # traced for this shape before the clock starts
        rows, calls, started = 0, 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            start = (calls * batch) % len(cleaned)
            chunk = (cleaned + cleaned)[start : start + batch]
            model.score(chunk)
            rows += len(chunk)
            calls += 1
        found[str(batch)] = round(rows / (time.perf_counter() - started), 1)
    return {"reviews_per_second_by_batch": found, "limit_reviews_per_second": found[str(LIMIT_BATCH)]}


class ServerProcess:
    """``reviewops serve`` on a free port of 127.0.0.1, in its own process."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.token = secrets.token_urlsafe(24)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        env = {
            **os.environ,
            "REVIEWOPS_DATA_ROOT": str(self.root),
            "REVIEWOPS_SERVE_TOKEN": self.token,
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        command = [sys.executable, "-m", "reviewops.cli", "serve", "--port", str(self.port)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*command, "--poll-seconds", str(POLL_SECONDS)], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited {self.proc.returncode}: see {self.log}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the server was not ready within 180 s: see {self.log}")

    def cpu_seconds(self) -> float:
        """User and system CPU the server process has used so far (all its threads)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stats(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/v2/models/reviews/stats", headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        response.raise_for_status()
        entry: dict[str, Any] = response.json()["model_stats"][0]
        return entry

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: uvicorn stops gracefully, the request log is flushed
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def locust_level(
    server: ServerProcess, clients: int, rows: int, seconds: float, work: Path, name: str = ""
) -> dict[str, Any]:
    """One level: ``clients`` closed-loop locust users for ``seconds`` (or MAX_REQUESTS)."""
    prefix = work / (name or f"u{clients}-r{rows}")
    versions_file = prefix.with_suffix(".versions.json")
    env = {
        **os.environ,
        "BENCH_TOKEN": server.token,
        "BENCH_ROWS": str(rows),
        "BENCH_MAX_REQUESTS": str(MAX_REQUESTS),
        "BENCH_TEXTS": str(work / "texts.json"),
        "BENCH_VERSIONS_FILE": str(versions_file),
    }
    command = [str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--only-summary", "--loglevel", "WARNING"]
    command += ["-u", str(clients), "-r", str(clients), "-t", f"{seconds:g}s", "-s", "5"]
    command += ["--host", server.url, "--csv", str(prefix), "--exit-code-on-error", "0"]
    before, cpu_before = server.stats(), server.cpu_seconds()
    load = load_average()[0]
    client_before = _children_cpu_seconds()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"locust exited {done.returncode}: {done.stderr[-3000:]}")
    client_cpu = _children_cpu_seconds() - client_before  # locust's (the server is not waited for yet)
    after, cpu = server.stats(), server.cpu_seconds() - cpu_before
    with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
        (total,) = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    calls = after["execution_count"] - before["execution_count"]
    requests = int(total["Request Count"])
    per_second = float(total["Requests/s"])
    return {
        "clients": clients,
        "rows_per_request": rows,
        "requests": requests,
        "errors": int(total["Failure Count"]),
        "requests_per_second": round(per_second, 1),
        "reviews_per_second": round(per_second * rows, 1),
        "p50_ms": float(total["50%"]),
        "p95_ms": float(total["95%"]),
        "p99_ms": float(total["99%"]),
        "rows_per_model_call": round((after["inference_count"] - before["inference_count"]) / calls, 1)
        if calls
        else None,
        # What a request costs the server, model and all: the figure that caps one process.
        "server_cpu_ms_per_request": round(1000 * cpu / requests, 2) if requests else None,
        # What a request costs the load generator, on the same cores (start-up included).
        "client_cpu_ms_per_request": round(1000 * client_cpu / requests, 2) if requests else None,
        "load_average": round(load, 1),
        "versions": json.loads(versions_file.read_text()) if versions_file.exists() else {},
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def hot_swap_under_load(server: ServerProcess, second: str, seconds: float, work: Path) -> dict[str, Any]:
    """32 single-review clients while the champion is promoted to ``second`` (a third of
    the way in) and rolled back (two thirds)."""
    from reviewops.registry.store import Registry

    registry = Registry(str(server.root))
    first = registry.require_champion()
    swaps_before = server.stats()["swaps"]

    def change() -> None:
        time.sleep(seconds / 3)
        registry.promote(second, "bench: hot swap under load", "bench")
        time.sleep(seconds / 3)
        registry.rollback("bench: hot swap under load, back", "bench")

    changer = threading.Thread(target=change)
    changer.start()
    level = locust_level(server, TARGET_CLIENTS, 1, seconds, work, name="hot-swap")
    changer.join()
    return {
        **level,
        "from": first,
        "to": second,
        "swaps": server.stats()["swaps"] - swaps_before,
        "met": level["errors"] == 0 and set(level["versions"]) == {first, second},
    }


def run(out_dir: Path, quick: bool = False, seconds: float | None = None) -> dict[str, Any]:
    """Every level and the hot swap; the figures, also written to ``out_dir`` as
    ``serving.json`` and ``serving.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = seconds or (4.0 if quick else 10.0)
    root = work_dir("serving") / "data-root"
    if not (root / "models").exists():
        copy_registry(champion_root(), root)
        shutil.copytree(champion_root() / "datasets", root / "datasets", dirs_exist_ok=True)
    second = second_version(root)
    texts = texts_for_load()
    (out_dir / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    limit = in_process_limit(root, texts, seconds / 2)
    figures: dict[str, Any] = {"seconds_per_level": seconds, "load_average_start": load_average(), **limit}
    with ServerProcess(root, out_dir / "server.log") as server:
        figures["levels"] = [
            locust_level(server, clients, rows, seconds, out_dir)
            for clients, rows in (QUICK_LEVELS if quick else LEVELS)
        ]
        figures["hot_swap"] = hot_swap_under_load(server, second, max(seconds, 9.0), out_dir)
        figures["server_stats"] = server.stats()
    figures["load_average_end"] = load_average()
    figures["targets"] = targets(figures)
    (out_dir / "serving.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    (out_dir / "serving.md").write_text(render_markdown(figures), encoding="utf-8")
    return figures


def targets(figures: dict[str, Any]) -> dict[str, Any]:
    """Each target of issue 14, met or missed, and why: the figures that decide it and,
    for the throughput, the CPU a request cost the server and locust on this machine's
    cores, which bounds what any run here can reach."""
    level = next(
        (lv for lv in figures["levels"] if (lv["clients"], lv["rows_per_request"]) == (TARGET_CLIENTS, 1)), None
    )
    limit = figures["limit_reviews_per_second"]
    if level is None:
        return {}
    share = level["reviews_per_second"] / limit if limit else None
    p99_met = level["p99_ms"] <= TARGET_P99_MS
    share_met = share is not None and share >= TARGET_SHARE_OF_LIMIT
    cores = os.cpu_count() or 1
    load = level.get("load_average", figures["load_average_start"][0])
    p99_reason = (
        f"p50 / p95 / p99 {_ms(level['p50_ms'])} / {_ms(level['p95_ms'])} / {_ms(level['p99_ms'])} ms at "
        f"{level['requests_per_second']:,.0f} requests/s, load average {load:g} on {cores} cores"
    )
    if not p99_met:
        p99_reason += ": the tail is requests waiting for a core, the server's threads sharing them with locust "
        p99_reason += "and everything else running"
    server_ms, client_ms = level.get("server_cpu_ms_per_request"), level.get("client_cpu_ms_per_request")
    needed = limit * TARGET_SHARE_OF_LIMIT
    share_reason = f"{level['reviews_per_second']:,.0f} reviews/s of the {needed:,.0f} needed"
    if server_ms and client_ms:
        ceiling = cores * 1000 / (server_ms + client_ms)
        share_reason += (
            f"; a request cost the server {server_ms:g} ms of CPU (model included) and locust {client_ms:g} ms, "
            f"so {cores} cores running nothing else would serve at most {ceiling:,.0f} requests/s "
            f"(load average {load:g})"
        )
        if not share_met and ceiling < needed:
            share_reason += ": out of reach on this machine with the client on the same cores"
    return {
        "p99_ms": level["p99_ms"],
        "p99_met": p99_met,
        "p99_reason": p99_reason,
        "share_of_limit": round(share, 3) if share is not None else None,
        "share_met": share_met,
        "share_reason": share_reason,
        "hot_swap_met": figures["hot_swap"]["met"],
        "hot_swap_reason": f"{figures['hot_swap']['errors']} errors of {figures['hot_swap']['requests']:,} requests, "
        f"answers by version {figures['hot_swap']['versions']}",
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def render_markdown(figures: dict[str, Any]) -> str:
    """The load test as Markdown: the levels, the in-process limit, the targets."""
    limit = figures["limit_reviews_per_second"]
    lines = [
        "| clients x reviews a request | requests/s | reviews/s | share of limit | p50 / p95 / p99 ms | errors "
        "| rows a model call | server / locust CPU ms a request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lv in figures["levels"]:
        share = lv["reviews_per_second"] / limit if limit else 0
        lines.append(
            f"| {lv['clients']} x {lv['rows_per_request']} | {lv['requests_per_second']:,.0f} | "
            f"{lv['reviews_per_second']:,.0f} | {share:.2f}x | {_ms(lv['p50_ms'])} / {_ms(lv['p95_ms'])} / "
            f"{_ms(lv['p99_ms'])} | {lv['errors']} of {lv['requests']:,} | {_ms(lv['rows_per_model_call'])} "
            f"| {_ms(lv['server_cpu_ms_per_request'])} / {_ms(lv.get('client_cpu_ms_per_request'))} |"
        )
    by_batch = ", ".join(f"{v:,.0f} in batches of {k}" for k, v in figures["reviews_per_second_by_batch"].items())
    swap = figures["hot_swap"]
    met = figures["targets"]
    verdict = {True: "met", False: "missed"}
    lines += [
        "",
        f"In process (the limit): {by_batch} reviews/s. Locust {figures['seconds_per_level']:g} s a level, "
        f"closed loop, on the same machine as the server; load average {figures['load_average_start'][0]:.1f} "
        f"at the start, {figures['load_average_end'][0]:.1f} at the end.",
        "",
        f"- p99 at {TARGET_CLIENTS} single-review clients <= {TARGET_P99_MS:g} ms: "
        f"**{verdict[met['p99_met']]}** ({_ms(met['p99_ms'])} ms): {met['p99_reason']}",
        f"- throughput at {TARGET_CLIENTS} single-review clients >= {TARGET_SHARE_OF_LIMIT}x the in-process limit "
        f"({limit:,.0f} reviews/s): **{verdict[met['share_met']]}** ({met['share_of_limit']}x): "
        f"{met['share_reason']}",
        f"- hot swap under load ({swap['clients']} clients, {swap['from']} -> {swap['to']} -> back, "
        f"{swap['swaps']} swaps): **{verdict[swap['met']]}**: {met['hot_swap_reason']}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three levels of 4 s: the plumbing, not the figures")
    parser.add_argument("--seconds", type=float, help="seconds a level (default 10; quick 4)")
    parser.add_argument("--out", help="where serving.json and serving.md go (default: the bench's scratch folder)")
    args = parser.parse_args(argv)
    figures = run(Path(args.out) if args.out else work_dir("serving-results"), args.quick, args.seconds)
    save_result("serving", figures)
    print(render_markdown(figures))
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])


def report_rows(figures: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The load test's targets for RESULTS.md's table (bench/report.py, optional benches)."""
    met = targets(figures)
    if not met:
        return []
    verdict = {True: "met", False: "missed"}
    return [
        (
            "serving",
            f"p99 at {TARGET_CLIENTS} single-review clients",
            f"{_ms(met['p99_ms'])} ms",
            f"<= {TARGET_P99_MS:g} ms",
            verdict[met["p99_met"]],
        ),
        (
            "serving",
            f"throughput at {TARGET_CLIENTS} single-review clients / in-process limit",
            f"{met['share_of_limit']}x",
            f">= {TARGET_SHARE_OF_LIMIT}x",
            verdict[met["share_met"]],
        ),
        (
            "serving",
            "errors during a hot swap under load",
            f"{figures['hot_swap']['errors']} of {figures['hot_swap']['requests']:,}",
            "0",
            verdict[met["hot_swap_met"]],
        ),
    ]


def report_section(figures: dict[str, Any]) -> str:
    """RESULTS.md's section for the load test."""
    return "## Online serving: the load test (bench/bench_serving.py)\n\n" + render_markdown(figures)
