"""Security defaults that can be checked without running anything: no secrets in the
repository, no unpickling, models loaded in Keras safe mode, login never disabled."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

CODE_DIRS = ("include", "plugins", "dags", "bin")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def code_text() -> dict[str, str]:
    files = {}
    for path in tracked_files():
        if path.startswith(CODE_DIRS) and (path.endswith(".py") or path.startswith("bin/")):
            files[path] = (ROOT / path).read_text(encoding="utf-8", errors="replace")
    return files


def test_no_secrets_are_committed() -> None:
    files = tracked_files()
    assert ".env" not in files
    assert not [f for f in files if f.endswith(("passwords.json", ".pem", ".key", "credentials.json"))]
    secret = re.compile(r"(?i)(password|secret|fernet_key|jwt_secret|api_key)\s*[:=]\s*['\"][^'\"$\{<]{8,}['\"]")
    found = {path: secret.findall(text) for path, text in code_text().items() if secret.search(text)}
    assert found == {}


def test_nothing_unpickles_data() -> None:
    risky = re.compile(r"\b(pickle\.loads?|joblib\.load|allow_pickle\s*=\s*True|torch\.load|dill\.)")
    found = {path: risky.findall(text) for path, text in code_text().items() if risky.search(text)}
    assert found == {}


def test_models_are_loaded_only_in_keras_safe_mode() -> None:
    loads = []
    for path, text in code_text().items():
        for match in re.finditer(r"load_model\((?P<args>[^)]*)\)", text):
            if "keras.models.load_model" in text[max(0, match.start() - 20) : match.end()]:
                loads.append((path, match.group("args")))
    assert loads, "the model loader should be found"
    assert all("safe_mode=True" in args for _, args in loads), loads


def test_login_is_never_turned_off() -> None:
    for path in ["bin/env.sh", "docker-compose.yaml", "Makefile"]:
        text = (ROOT / path).read_text()
        assert not re.search(r"(?i)SIMPLE_AUTH_MANAGER_ALL_ADMINS[\"']?\s*[:=]\s*[\"']?true", text), path
    assert 'SIMPLE_AUTH_MANAGER_ALL_ADMINS="False"' in (ROOT / "bin" / "env.sh").read_text()


@pytest.mark.parametrize("left_by_an_older_setup", [False, True])
def test_the_generated_admin_password_is_readable_by_its_owner_only(
    tmp_path: Path, left_by_an_older_setup: bool
) -> None:
    home = tmp_path / "airflow-home"
    passwords = home / "passwords.json"
    if left_by_an_older_setup:
        home.mkdir()
        passwords.write_text("")
        passwords.chmod(0o644)
    init = "from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager as M; M().init()"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REVIEWOPS_"))}
    script = f'source bin/env.sh && umask 022 && python -c "{init}"'
    subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**environment, "REVIEWOPS_AIRFLOW_HOME": str(home)},
        check=True,
        capture_output=True,
        timeout=120,
    )

    assert "admin" in json.loads(passwords.read_text())  # Airflow generated the password into it
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
