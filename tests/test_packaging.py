"""Packaging: the built wheel stands on its own, and the requirements name what the code imports.

The wheel is built from a copy of the sources (the repository is left as it is) with the lock's
setuptools and no network, unpacked into a fresh directory, and used by a separate Python that
cannot see the source tree: the prompt templates, the SQL and the shipped data load through the
code's own loaders, and every DAG file parses with Airflow's DagBag.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

# What the wheel is built from: the project metadata and the two import roots.
BUILD_INPUTS = ("pyproject.toml", "requirements.in", "LICENSE", "include", "plugins")
# Import roots in the source tree, by the top-level package they hold.
PACKAGES = {"reviewops": ROOT / "include" / "reviewops", "reviewops_airflow": ROOT / "plugins" / "reviewops_airflow"}
CODE_DIRS = (ROOT / "include", ROOT / "plugins", ROOT / "dags")
# Import namespaces shared by several distributions: deptry (make lint) maps an import to a
# distribution by its top-level name only, so it cannot tell these distributions apart.
SHARED_NAMESPACES = ("airflow", "google")

# Runs in a separate Python whose sys.path starts with the unpacked wheel. The editable install of the
# project (a meta path finder over include/ and plugins/) is switched off first, as if the wheel were
# installed into a fresh environment; the report lists where every reviewops module came from.
PROBE = """
import datetime as dt, json, sys
from pathlib import Path

sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
dags_folder = sys.argv[1]

from airflow.dag_processing.dagbag import DagBag

import reviewops
from reviewops.config import SHIPPED_REVIEWS
from reviewops.data.safety import load_toxic_terms
from reviewops.data.windows import Window
from reviewops.gcp import bigquery, prompts

templates = prompts.list_templates()
latest = prompts.load_template(prompts.DEFAULT_PROMPT)
config = bigquery.BigQuerySourceConfig()
week = bigquery.week_query("project.dataset.reviews", Window.week(dt.date(2017, 11, 27)), config)
extent = bigquery.extent_query("project.dataset.reviews", config, dt.date(2017, 12, 4))
bag = DagBag(dag_folder=dags_folder)

print(json.dumps({
    "package": reviewops.__file__,
    "templates": {t.ref: {"path": t.path, "sha256": t.sha256} for t in templates},
    "latest": latest.ref,
    "sql_dir": str(bigquery.SQL_DIR),
    "week_sql": week.sql,
    "extent_sql": extent.sql,
    "shipped_reviews": str(SHIPPED_REVIEWS) if SHIPPED_REVIEWS.is_file() else None,
    "toxic_terms": len(load_toxic_terms()),
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "modules": {
        name: getattr(module, "__file__", None)
        for name, module in sorted(sys.modules.items())
        if name.partition(".")[0] in ("reviewops", "reviewops_airflow")
    },
    "sys_path": sys.path,
}))
"""


def _ignored(_directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))]


def _source_files(package_dir: Path) -> Iterator[Path]:
    for path in sorted(package_dir.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(package_dir).parts)
        if path.is_file() and not hidden and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built without network by the locked setuptools (about 3 s)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=_ignored)
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    # --no-build-isolation: the lock's setuptools builds it, with no download.
    pip_wheel = ["pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check"]
    build = subprocess.run(
        [sys.executable, "-m", *pip_wheel, "--wheel-dir", str(dist), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = dist.glob("reviewops-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_dir(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked into a fresh directory: a pure-Python wheel installs by unpacking."""
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_wheel_holds_every_file_of_both_packages(wheel: Path) -> None:
    """Modules, prompt templates, SQL, the shipped reviews and toxic terms, their READMEs."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {
        f"{package}/{path.relative_to(package_dir).as_posix()}"
        for package, package_dir in PACKAGES.items()
        for path in _source_files(package_dir)
    }
    assert expected - names == set(), "files of the source tree missing from the wheel"
    data = {n for n in expected if not n.endswith(".py")}
    for kind in (".toml", ".sql", ".tsv", ".txt", "README.md"):
        assert any(n.endswith(kind) for n in data), f"no {kind} file in the package data: {sorted(data)}"


def test_wheel_metadata_names_license_and_requirements(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n) for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        license_text = next(archive.read(n) for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
    text = metadata.decode("utf-8")
    assert "License-Expression: Apache-2.0" in text
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in license_text and b"Version 2.0, January 2004" in license_text
    required = {_name(line.partition(":")[2]) for line in text.splitlines() if line.startswith("Requires-Dist:")}
    assert required == _declared(ROOT / "requirements.in")


@pytest.mark.integration
def test_wheel_alone_loads_prompts_sql_and_parses_the_dags(wheel_dir: Path, tmp_path: Path) -> None:
    """A separate Python with the wheel first on sys.path and the source tree out of reach
    (about 10 s: Airflow and the DAG files' imports)."""
    airflow_home = tmp_path / "airflow"
    empty_plugins = tmp_path / "plugins"
    airflow_home.mkdir()
    empty_plugins.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(wheel_dir),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        # Airflow puts its plugins folder on sys.path: the repository's plugins/ would hide a gap in the wheel.
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(empty_plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # No metadata DB: parsing must not need one (tests/dags/test_dag_integrity.py).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
    }
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "dags")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])

    def in_wheel(path: str | None) -> bool:
        return path is not None and Path(path).resolve().is_relative_to(wheel_dir.resolve())

    assert in_wheel(report["package"]), report["package"]
    outside = {name: path for name, path in report["modules"].items() if not in_wheel(path)}
    assert outside == {}, "reviewops modules loaded from outside the wheel"
    for code_dir in (ROOT / "include", ROOT / "plugins"):
        assert str(code_dir) not in report["sys_path"]

    shipped_templates = sorted((PACKAGES["reviewops"] / "gcp" / "prompt_templates").glob("*/v*.toml"))
    assert len(report["templates"]) == len(shipped_templates) >= 2
    for path in shipped_templates:
        loaded = report["templates"][f"{path.parent.name}@{path.stem}"]
        assert in_wheel(loaded["path"])
        assert loaded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report["latest"] in report["templates"]

    assert in_wheel(report["sql_dir"])
    assert "FROM `project.dataset.reviews`" in report["week_sql"] and "@window_start" in report["week_sql"]
    assert "FROM `project.dataset.reviews`" in report["extent_sql"] and "@until" in report["extent_sql"]
    assert in_wheel(report["shipped_reviews"]) and report["toxic_terms"] > 0

    assert report["import_errors"] == {}
    assert report["dag_ids"] == sorted(path.stem for path in (ROOT / "dags").glob("*.py"))


def test_requirements_name_the_distribution_of_every_shared_namespace_import() -> None:
    """What deptry cannot see: `airflow.providers.google` and `google.cloud.bigquery` are both in
    namespaces that many distributions share; each must come from a distribution requirements.in
    names (or one that a named meta-package pins exactly, like apache-airflow's core and task SDK)."""
    declared = _declared(ROOT / "requirements.in")
    for name in list(declared):
        requires = importlib.metadata.distribution(name).requires or []
        declared |= {_name(r) for r in requires if "==" in r and ";" not in r}
    owners = _namespace_file_owners()
    undeclared: dict[str, str] = {}
    for module in sorted(_shared_namespace_imports()):
        owner = _owner(module, owners)
        assert owner is not None, f"no installed distribution provides {module}"
        if owner not in declared:
            undeclared[module] = owner
    assert undeclared == {}, "add these distributions to requirements.in (then make lock)"


def test_locks_agree() -> None:
    """`make install` syncs both locks at once: a package in both must have one version. The image
    installs the runtime lock only (tests/deploy/test_docker_compose.py)."""
    runtime = _pins(ROOT / "requirements.txt")
    dev = _pins(ROOT / "requirements-dev.txt")
    assert "-c requirements.txt" in (ROOT / "requirements-dev.in").read_text(encoding="utf-8").splitlines()
    assert {p: (runtime[p], dev[p]) for p in runtime.keys() & dev.keys() if runtime[p] != dev[p]} == {}
    assert _declared(ROOT / "requirements.in") <= runtime.keys()
    assert _declared(ROOT / "requirements-dev.in") <= dev.keys()


def _name(requirement: str) -> str:
    """The normalized distribution name of a requirement line."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _declared(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {_name(line) for line in lines if line and not line.startswith("-")}


def _pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
    return {_name(name): version for name, version in found}


def _shared_namespace_imports() -> set[str]:
    """Dotted names imported in include/, plugins/ and dags/ under a shared namespace, lazy imports
    included; `from a.b import c` gives `a.b.c`, which _owner resolves to `a.b` when c is no module."""
    found: set[str] = set()
    for code_dir in CODE_DIRS:
        for path in code_dir.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.partition(".")[0] in SHARED_NAMESPACES}


def _namespace_file_owners() -> dict[str, str]:
    """Installed file (relative to site-packages) -> the distribution that installed it."""
    owners: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        paths = [line.split(",", 1)[0] for line in (dist.read_text("RECORD") or "").splitlines()]
        shared = [path for path in paths if path.partition("/")[0] in SHARED_NAMESPACES]
        if shared:
            name = _name(dist.metadata["Name"])
            owners.update(dict.fromkeys(shared, name))
    return owners


def _owner(module: str, owners: dict[str, str]) -> str | None:
    """The distribution of a module, or of the package holding it; None when it is not installed."""
    parts = module.split(".")
    while parts:
        stem = "/".join(parts)
        for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
            if candidate in owners:
                return owners[candidate]
        parts.pop()
        if len(parts) == 1:  # the bare namespace (`google`, `airflow`) belongs to nobody in particular
            break
    return None
