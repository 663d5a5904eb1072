"""Static checks of the container deployment: Dockerfile, docker-compose.yaml, .env.example, .dockerignore.

No Docker engine is needed: the files are parsed and checked for the properties the stack relies on.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.celery_settings import celery_environment, is_celery_setting

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
GITIGNORE = REPO_ROOT / ".gitignore"
REQUIREMENTS = REPO_ROOT / "requirements.txt"
DEV_REQUIREMENTS = REPO_ROOT / "requirements-dev.txt"

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
LONG_RUNNING_AIRFLOW_SERVICES = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-init")
ALL_SERVICES = ("postgres", "redis", *AIRFLOW_SERVICES)
SECRET_VARS = (
    "POSTGRES_PASSWORD",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API__SECRET_KEY",
)
PYTHONPATH = "/opt/airflow/include:/opt/airflow/plugins"
# Redis, the `redis` service, database 0: the broker of every Airflow service.
COMPOSE_BROKER_URL = "redis://:@redis:6379/0"
# The settings that name a server: the compose services here, the local servers in the test.
CELERY_ENDPOINTS = ("AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND")

# Compose interpolation: `$$` is a literal `$`; `${NAME...}` and `$NAME` are substituted.
_ESCAPED_DOLLAR = "\x00"
_BRACED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
_BARE_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_SECRET_CHECK = re.compile(r"# BEGIN secret-check\n(.*?)# END secret-check\n", re.DOTALL)


@functools.cache
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@functools.cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(compose_text())
    assert isinstance(data, dict), "docker-compose.yaml must be a mapping"
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"service {name!r} missing from docker-compose.yaml"
    svc = services[name]
    assert isinstance(svc, dict)
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or as a KEY=VALUE list."""
    env = svc.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolations(text: str) -> list[tuple[str, str]]:
    """(variable, modifier) for every compose interpolation in text, e.g. ("X", ":?msg") for ${X:?msg}."""
    unescaped = text.replace("$$", _ESCAPED_DOLLAR)
    found = [(m.group(1), m.group(2)) for m in _BRACED_VAR.finditer(unescaped)]
    found += [(m.group(1), "") for m in _BARE_VAR.finditer(_BRACED_VAR.sub("", unescaped))]
    return found


def strings(node: Any) -> list[str]:
    """Every string value in parsed YAML (what compose interpolates; comments and keys are not)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def compose_interpolations() -> list[tuple[str, str]]:
    return [found for value in strings(compose()) for found in interpolations(value)]


def env_example_vars() -> dict[str, str]:
    result: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            result[key.strip()] = value.strip()
    return result


def init_script() -> str:
    command = service("airflow-init")["command"]
    assert isinstance(command, list) and command[0] == "-c", "airflow-init must run `bash -c <script>`"
    script = command[1]
    assert isinstance(script, str)
    return script


def test_compose_yaml_parses() -> None:
    assert isinstance(compose()["services"], dict)
    assert "x-airflow-common" in compose()


def test_all_services_exist() -> None:
    assert set(ALL_SERVICES) <= set(compose()["services"]), sorted(compose()["services"])


def test_postgres_and_redis_images() -> None:
    assert service("postgres")["image"] == "postgres:16"
    assert str(service("redis")["image"]).startswith("redis:")


def _mapping_node(node: yaml.Node, key: str) -> yaml.Node:
    assert isinstance(node, yaml.MappingNode)
    for key_node, value_node in node.value:
        if key_node.value == key:
            return value_node
    raise AssertionError(f"key {key!r} not found")


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_uses_common_anchor(name: str) -> None:
    # At node level an alias is the very node its anchor names, so `<<: *airflow-common` can be checked.
    root = yaml.compose(compose_text())
    common = _mapping_node(root, "x-airflow-common")
    svc_node = _mapping_node(_mapping_node(root, "services"), name)
    merged = [v for k, v in svc_node.value if k.tag == "tag:yaml.org,2002:merge"]
    assert any(node is common for node in merged), f"{name} must merge <<: *airflow-common"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_builds_dockerfile_with_celery(name: str) -> None:
    svc = service(name)
    build = svc.get("build")
    assert build is not None and "image" not in svc, f"{name} must build the image, not pull one"
    context, dockerfile = (
        (build, "Dockerfile")
        if isinstance(build, str)
        else (
            build.get("context", "."),
            build.get("dockerfile", "Dockerfile"),
        )
    )
    assert (REPO_ROOT / context / dockerfile).resolve() == DOCKERFILE.resolve()
    env = environment(svc)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "false"),
        (
            "AIRFLOW__CORE__AUTH_MANAGER",
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        ),
        ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin"),
        (
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "http://airflow-apiserver:8080/execution/",
        ),
        ("REVIEWOPS_DATA_ROOT", "${REVIEWOPS_DATA_ROOT:-/opt/airflow/artifacts}"),
        ("REVIEWOPS_SOURCE", "${REVIEWOPS_SOURCE:-/opt/airflow/include/reviewops/data/reviews.tsv}"),
        ("REVIEWOPS_SCORING_BACKEND", "${REVIEWOPS_SCORING_BACKEND:-local}"),
        ("REVIEWOPS_TRAINING_BACKEND", "${REVIEWOPS_TRAINING_BACKEND:-local}"),
        ("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true"),
        ("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "120"),
        ("PYTHONPATH", PYTHONPATH),
    ],
)
def test_airflow_environment(key: str, expected: str) -> None:
    for name in AIRFLOW_SERVICES:
        assert environment(service(name)).get(key) == expected, f"{name}: {key}"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_celery_settings_are_the_shared_definition(name: str) -> None:
    """Executor, broker, result backend (the metadata DB, same driver), worker concurrency
    and broker options are exactly tests/deploy/celery_settings.py: nothing Celery-related
    is set in the compose file alone, where the system test would not run it."""
    env = environment(service(name))
    expected = celery_environment(
        metadata_db_url=env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        broker_url=COMPOSE_BROKER_URL,
    )
    found = {key: value for key, value in env.items() if is_celery_setting(key)}
    assert found == expected, name


def test_celery_endpoints_are_the_compose_services() -> None:
    broker = urlsplit(COMPOSE_BROKER_URL)
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)
    assert "6379" in [str(p) for p in service("redis")["expose"]]
    # The password is a compose interpolation (with `?` in it): split by hand, not as a URL.
    database = environment(compose()["x-airflow-common"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert database.startswith("postgresql+psycopg2://airflow:")
    assert database.rsplit("@", 1)[1] == "postgres/airflow"
    assert environment(service("postgres"))["POSTGRES_DB"] == "airflow"


def test_celery_system_test_runs_the_compose_settings(tmp_path: Path) -> None:
    """The stack tests/system/test_celery.py starts (built here, not started) sets the same
    Celery options to the same values, except the endpoints (its local Redis and its own
    PostgreSQL database, in the same form) and the broker key prefix that keeps parallel
    test runs on one Redis apart."""
    from tests.system.airflow_stack import AirflowStack

    local = AirflowStack(tmp_path, executor="CeleryExecutor").env
    deployed = environment(compose()["x-airflow-common"])
    local_celery = {k: v for k, v in local.items() if is_celery_setting(k)}
    deployed_celery = {k: v for k, v in deployed.items() if is_celery_setting(k)}
    isolation = {"AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"}
    assert local_celery.keys() - isolation == deployed_celery.keys()
    for key in deployed_celery.keys() - set(CELERY_ENDPOINTS):
        assert local_celery[key] == deployed_celery[key], key
    for env in (local, deployed):
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).scheme == "redis"
        # Workers reach the api-server through the Execution API.
        assert urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).path == "/execution/"


def test_service_commands() -> None:
    assert service("airflow-apiserver")["command"] == "api-server"
    assert "8080:8080" in [str(p) for p in service("airflow-apiserver")["ports"]]
    assert service("airflow-scheduler")["command"] == "scheduler"
    assert service("airflow-dag-processor")["command"] == "dag-processor"
    assert service("airflow-worker")["command"] == "celery worker"
    assert service("airflow-triggerer")["command"] == "triggerer"
    assert environment(service("airflow-init")).get("_AIRFLOW_DB_MIGRATE") == "true"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_mounts(name: str) -> None:
    volumes = [str(v) for v in service(name)["volumes"]]
    assert "./dags:/opt/airflow/dags" in volumes
    assert "./plugins:/opt/airflow/plugins" in volumes
    assert "./include:/opt/airflow/include" in volumes
    assert "reviewops-artifacts:/opt/airflow/artifacts" in volumes
    assert any(v.endswith(":/opt/airflow/logs") for v in volumes)
    assert "reviewops-artifacts" in compose()["volumes"]


def test_healthchecks_and_startup_order() -> None:
    for name in ("postgres", "redis", *LONG_RUNNING_AIRFLOW_SERVICES):
        assert service(name).get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in AIRFLOW_SERVICES:
        depends = service(name)["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    for name in LONG_RUNNING_AIRFLOW_SERVICES:
        depends = service(name)["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    assert service("airflow-worker")["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_no_all_admins() -> None:
    for name, svc in compose()["services"].items():
        assert not [k for k in environment(svc) if "ALL_ADMINS" in k.upper()], name
    assert "ALL_ADMINS" not in compose_text().upper()
    assert "ALL_ADMINS" not in ENV_EXAMPLE.read_text(encoding="utf-8").upper()


@pytest.mark.parametrize("var", SECRET_VARS)
def test_secret_is_required(var: str) -> None:
    modifiers = [mod for name, mod in compose_interpolations() if name == var]
    assert modifiers, f"{var} is never used in docker-compose.yaml"
    for mod in modifiers:
        assert mod.startswith(":?") and len(mod) > 2, f"${{{var}{mod}}} must be ${{{var}:?message}}"


def test_secrets_reach_services() -> None:
    common = environment(compose()["x-airflow-common"])
    for var in (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API__SECRET_KEY",
    ):
        assert common[var].startswith("${" + var + ":?"), var
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
    ):
        assert "${POSTGRES_PASSWORD:?" in common[key], key
    assert environment(service("postgres"))["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert environment(service("airflow-init"))["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_env_example_lists_every_compose_variable() -> None:
    referenced = {name for name, _ in compose_interpolations()}
    listed = env_example_vars()
    assert set(SECRET_VARS) <= referenced
    assert referenced <= set(listed), f"missing from .env.example: {sorted(referenced - set(listed))}"
    assert listed.get("AIRFLOW_UID") == "50000"


def test_env_example_has_only_placeholder_secrets() -> None:
    listed = env_example_vars()
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for var in SECRET_VARS:
        assert listed[var].startswith("change-me-"), var
    assert "Fernet.generate_key()" in text


def test_env_is_git_ignored() -> None:
    assert GITIGNORE.is_file(), ".gitignore is missing (it must ignore .env)"
    git = shutil.which("git")
    if git and (REPO_ROOT / ".git").exists():

        def ignored(path: str) -> bool:
            result = subprocess.run(
                [git, "check-ignore", "-q", "--no-index", path],
                cwd=REPO_ROOT,
                check=False,
                capture_output=True,
                timeout=10,
            )
            assert result.returncode in (0, 1), result.stderr
            return result.returncode == 0

        assert ignored(".env"), ".env must be git-ignored"
        assert not ignored(".env.example"), ".env.example must be committed, not ignored"
    else:
        lines = {line.strip() for line in GITIGNORE.read_text(encoding="utf-8").splitlines()}
        assert lines & {".env", "/.env"}, ".env must be listed in .gitignore"


def test_dockerfile_version_matches_lock() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    from_match = re.search(
        r"^FROM\s+apache/airflow:(\d+\.\d+\.\d+)-python3\.11\s*$",
        dockerfile,
        re.MULTILINE,
    )
    assert from_match, "Dockerfile must start FROM apache/airflow:<version>-python3.11"
    pin = re.search(
        r"^apache-airflow==(\S+)\s*$",
        REQUIREMENTS.read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    assert pin, "requirements.txt must pin apache-airflow=="
    assert from_match.group(1) == pin.group(1)


def test_dockerfile_installs_lock_as_airflow_without_copying_code_or_secrets() -> None:
    instructions = [
        line.strip()
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    copies = [line for line in instructions if re.match(r"(COPY|ADD)\b", line, re.IGNORECASE)]
    sources = [arg for line in copies for arg in line.split()[1:-1] if not arg.startswith("--")]
    assert sources == ["requirements.txt"], f"only requirements.txt may be copied, got {sources}"
    pip_index = next(i for i, line in enumerate(instructions) if "pip install" in line)
    assert "--no-cache-dir" in instructions[pip_index]
    assert re.search(r"-r\s+/?requirements\.txt", instructions[pip_index])
    users = [line.split()[1] for line in instructions[:pip_index] if line.upper().startswith("USER ")]
    assert users and users[-1] == "airflow", "pip must run as the airflow user"
    assert f"ENV PYTHONPATH={PYTHONPATH}" in instructions


def test_image_installs_the_runtime_lock_without_test_tools() -> None:
    """requirements.txt, the only file the image copies, is the runtime lock; the test and lint tools
    live in requirements-dev.txt."""
    pinned = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)
    runtime = set(pinned.findall(REQUIREMENTS.read_text(encoding="utf-8")))
    dev = set(pinned.findall(DEV_REQUIREMENTS.read_text(encoding="utf-8")))
    tools = {"pytest", "pytest-timeout", "hypothesis", "ruff", "mypy", "deptry", "import-linter"}
    assert tools <= dev
    assert not tools & runtime, "test and lint tools must stay out of the image's lock"


def test_dockerignore_excludes_local_state_and_secrets() -> None:
    entries = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    for entry in (".venv", ".airflow", "artifacts", ".git", ".env"):
        assert entry in entries or f"{entry}/" in entries, entry
    assert "__pycache__" in entries or "**/__pycache__" in entries


def test_init_checks_placeholders_before_anything_else() -> None:
    script = init_script()
    match = _SECRET_CHECK.search(script)
    assert match, "airflow-init must contain the BEGIN/END secret-check block"
    assert script.lstrip().startswith("# BEGIN secret-check"), "the secret check must run first"
    block = match.group(1)
    for var in SECRET_VARS:
        assert var in block, var
    assert "change-me" in block and "exit 1" in block


def _run_secret_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    block = _SECRET_CHECK.search(init_script())
    assert block
    assert not interpolations(block.group(1)), "the secret-check block must not use compose interpolation"
    shell = block.group(1).replace("$$", "$") + "echo secrets-ok\n"
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [bash, "-c", shell],
        check=False,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_init_secret_check_rejects_placeholders() -> None:
    env = {var: f"real-{var.lower()}-value" for var in SECRET_VARS}
    assert _run_secret_check(env).stdout.strip() == "secrets-ok"
    for var in SECRET_VARS:
        result = _run_secret_check({**env, var: env_example_vars()[var]})
        assert result.returncode != 0, var
        assert var in result.stderr and "secrets-ok" not in result.stdout
    missing = {k: v for k, v in env.items() if k != "AIRFLOW__API__SECRET_KEY"}
    assert _run_secret_check(missing).returncode != 0


def test_init_script_is_valid_bash() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    unescaped = init_script().replace("$$", _ESCAPED_DOLLAR)
    substituted = _BRACED_VAR.sub("compose-value", unescaped).replace(_ESCAPED_DOLLAR, "$")
    result = subprocess.run(
        [bash, "-n", "-c", substituted],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr


def test_init_creates_the_vertex_tuning_pool() -> None:
    """The scheduler never starts a task of a pool that does not exist: the stack must create
    the pool reviews_training's tune_model runs in."""
    from reviewops.config import VERTEX_TUNING_POOL

    lines = [line.strip() for line in init_script().splitlines()]
    assert any(line.startswith(f"/entrypoint airflow pools set {VERTEX_TUNING_POOL} 1 ") for line in lines), lines


# reviewops serve: stateless replicas on the same data root as Airflow


def test_serving_runs_as_replicas_on_the_airflow_data_root() -> None:
    serve = service("reviewops-serve")
    assert serve["command"][:4] == ["python", "-m", "reviewops.cli", "serve"]
    assert serve["command"][serve["command"].index("--host") + 1] == "0.0.0.0"  # inside its container
    replicas = str(serve["deploy"]["replicas"])
    assert replicas.startswith("${REVIEWOPS_SERVE_REPLICAS:-") and int(replicas.split(":-")[1].rstrip("}")) >= 2
    env = environment(serve)
    # The same registry and request log as the Airflow tasks: the data root, local or gs://.
    assert env["REVIEWOPS_DATA_ROOT"] == environment(compose()["x-airflow-common"])["REVIEWOPS_DATA_ROOT"]
    assert "reviewops-artifacts:/opt/airflow/artifacts" in serve["volumes"]
    assert "./include:/opt/airflow/include:ro" in serve["volumes"] and env["PYTHONPATH"] == "/opt/airflow/include"
    assert serve["healthcheck"]["test"][-1].endswith("/v2/health/ready")
    assert serve["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_serving_requires_its_token_and_publishes_on_loopback_only() -> None:
    serve = service("reviewops-serve")
    assert environment(serve)["REVIEWOPS_SERVE_TOKEN"].startswith("${REVIEWOPS_SERVE_TOKEN:?")
    assert env_example_vars()["REVIEWOPS_SERVE_TOKEN"].startswith("change-me-")  # refused by the server
    # A port range: each replica gets its own host port, bound to 127.0.0.1 only.
    assert [str(p) for p in serve["ports"]] == ["127.0.0.1:8081-8090:8081"]
