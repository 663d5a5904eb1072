"""One real ``airflow api-server`` and one headless Chromium for the browser tests.

The data comes from :mod:`tests.ui.build_data` (real DAG runs in the session's metadata DB,
about 1.5 to 2 minutes on two busy cores), built in its own process while the api-server
starts. Chromium is Debian's (``/usr/bin/chromium``, or ``$REVIEWOPS_CHROMIUM``), driven by
Playwright's Python client: ``playwright install`` needs the internet and is not used.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.system.airflow_stack import AIRFLOW, _die_with_parent, free_port, tail

CHROMIUM = Path(os.environ.get("REVIEWOPS_CHROMIUM", "/usr/bin/chromium"))
SKIP_ENV = "REVIEWOPS_SKIP_BROWSER_TESTS"
# Headless, and quiet on a machine without internet: no background fetches, updates or sync.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests may run as root (CI containers)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
SCREENSHOTS_ENV = "REVIEWOPS_UPDATE_SCREENSHOTS"  # =1: also write the README's docs/img/ui-*.png
DOCS_IMG = ROOT / "docs" / "img"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real Chromium against a real airflow api-server")


def require_chromium() -> Path:
    """The Chromium to launch; a failure saying what to install when it is missing (a skip
    only when the run says so with REVIEWOPS_SKIP_BROWSER_TESTS=1)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = (
        f"the browser tests need Chromium at {CHROMIUM}: install it with `apt-get install chromium` "
        f"(Debian/Ubuntu), or point REVIEWOPS_CHROMIUM at a Chromium binary; set {SKIP_ENV}=1 to skip them"
    )
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: {message}")
    pytest.fail(message, pytrace=False)


@dataclass(frozen=True)
class UiStack:
    url: str
    password: str
    data: dict[str, Any]  # what build_data printed: data_root, weeks, runs, champion, models

    def run_id(self, week: str) -> str:
        return str(self.data["runs"][week])


def _environment(home: Path, data_root: Path, port: int) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        {
            "REVIEWOPS_DATA_ROOT": str(data_root),
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(48),
        }
    )
    return env


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Checked first: without a browser, nothing else is worth building."""
    return require_chromium()


@pytest.fixture(scope="session")
def ui_stack(chromium: Path, airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    base = tmp_path_factory.mktemp("ui")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _environment(base, base / "data-root", port)
    started = time.monotonic()
    build_log = base / "build.log"
    with open(build_log, "wb") as log:
        build = subprocess.Popen(
            [sys.executable, "-m", "tests.ui.build_data", str(base)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            preexec_fn=_die_with_parent,  # SIGTERM it if the test process dies
        )
    server_log = base / "api-server.log"
    with open(server_log, "wb") as log:
        server = subprocess.Popen(
            [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: _stop signals its workers too
            preexec_fn=_die_with_parent,
        )
    try:
        out, _ = build.communicate(timeout=600)
        assert build.returncode == 0, f"building the UI data failed:\n{tail(build_log, 60)}"
        data = json.loads(out.decode().strip().splitlines()[-1])
        deadline = time.monotonic() + 120
        while not _answers(url):
            assert server.poll() is None, f"the api-server exited:\n{tail(server_log, 60)}"
            assert time.monotonic() < deadline, f"the api-server did not answer in 120 s:\n{tail(server_log, 60)}"
            time.sleep(0.5)
        password = json.loads((base / "passwords.json").read_text())["admin"]
        print(
            f"\nUI stack ready in {time.monotonic() - started:.1f} s (data built in {data['seconds']} s: {data['phases']})"
        )
        yield UiStack(url, password, data)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        _stop(server)


@pytest.fixture(scope="session")
def browser(chromium: Path, ui_stack: UiStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def dialogs() -> list[str]:
    """Every JavaScript dialog (alert, confirm, prompt) any page opened: none may."""
    return []


@pytest.fixture(scope="session")
def page(browser: Any, ui_stack: UiStack, dialogs: list[str]) -> Iterator[Any]:
    """One logged-in page for the whole session, through the real login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    logged_in = context.new_page()

    def record(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    logged_in.on("dialog", record)
    logged_in.goto(ui_stack.url + "/")
    logged_in.fill("input[name=username]", "admin")
    logged_in.fill("input[name=password]", ui_stack.password)
    logged_in.keyboard.press("Enter")
    logged_in.wait_for_url(ui_stack.url + "/")
    yield logged_in
    context.close()


def screenshot(target: Any, name: str, docs: bool = False) -> Path:
    """A test artifact under test-artifacts/ui/ (git-ignored); with REVIEWOPS_UPDATE_SCREENSHOTS=1
    also, for the ones the docs show (``docs``), the copy under docs/img/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    target.screenshot(path=str(path))
    if docs and os.environ.get(SCREENSHOTS_ENV) == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        target.screenshot(path=str(DOCS_IMG / f"ui-{name}.png"))
    return path
