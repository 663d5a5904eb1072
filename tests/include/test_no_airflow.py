"""The domain package never imports Airflow: it imports, whole, where Airflow cannot be."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import reviewops

INCLUDE = Path(reviewops.__file__).resolve().parent.parent

# Run in a fresh interpreter: a meta path finder refuses ``airflow`` (installed in this
# environment) before anything is imported, then every reviewops module is imported.
PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    class NoAirflow:
        def find_spec(self, name, path=None, target=None):
            if name == "airflow" or name.startswith("airflow."):
                raise ImportError(f"{name} is blocked: reviewops must not import airflow")
            return None

    sys.meta_path.insert(0, NoAirflow())
    try:
        import airflow  # noqa: F401
        blocked = False
    except ImportError:
        blocked = True

    import reviewops

    imported, failed = [], {}
    for module in pkgutil.walk_packages(reviewops.__path__, "reviewops."):
        try:
            importlib.import_module(module.name)
            imported.append(module.name)
        except Exception as exc:
            failed[module.name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps({
        "blocked": blocked,
        "package": reviewops.__file__,
        "imported": imported,
        "failed": failed,
        "airflow_loaded": sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow.")),
    }))
    """
)


@pytest.fixture(scope="module")
def probe() -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def module_names() -> list[str]:
    package = INCLUDE / "reviewops"
    return sorted(
        ".".join(("reviewops", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for p in package.rglob("*.py")
        if p.name != "__init__.py" or p.parent != package
    )


def test_every_reviewops_module_imports_without_airflow(probe: dict[str, object]) -> None:
    assert probe["blocked"], "the probe did not manage to hide airflow"
    assert probe["failed"] == {}
    assert Path(str(probe["package"])).resolve() == INCLUDE / "reviewops" / "__init__.py"
    assert sorted(probe["imported"]) == module_names()  # type: ignore[arg-type]
    assert probe["airflow_loaded"] == []


def airflow_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(INCLUDE)}:{node.lineno}: {name}"
            for name in names
            if name == "airflow" or name.startswith("airflow.")
        ]
    return found


def test_no_file_under_include_imports_airflow() -> None:
    files = sorted(INCLUDE.rglob("*.py"))

    assert len(files) >= len(module_names())
    assert [line for path in files for line in airflow_imports(path)] == []
