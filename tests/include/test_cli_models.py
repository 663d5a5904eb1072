"""`reviewops models promote|rollback|history` on a registry of hand-built versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reviewops.cli import main
from reviewops.contracts import MODEL_FILE
from reviewops.registry.store import CHAMPION_FILE, Registry
from tests.conftest import SHIPPED


def build(root: Path, *versions: str) -> Registry:
    registry = Registry(str(root))
    for i, version in enumerate(versions):
        folder = registry.candidates() / version
        folder.mkdir(parents=True)
        (folder / MODEL_FILE).write_bytes(version.encode())
        meta = {
            "version": version,
            "registered_at": f"2024-06-0{i + 1}T00:00:00+00:00",
            "dataset_version": "ds-x",
            "classes": ["negative", "neutral", "positive"],
        }
        registry.register(folder, meta)
    return registry


def test_promote_by_hand_then_rollback_and_read_the_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = build(tmp_path, "m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb")
    root = ["--data-root", str(tmp_path)]

    assert main([*root, "models", "promote", "m-aaaaaaaaaaaa", "--reason", "first"]) == 0
    assert main([*root, "models", "promote", "m-bbbbbbbbbbbb", "--reason", "better on week 2024-06-03"]) == 0
    assert main([*root, "models", "rollback", "--reason", "b misreads neutral reviews"]) == 0
    assert registry.champion() == "m-aaaaaaaaaaaa"
    capsys.readouterr()

    assert main([*root, "models", "history", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [(e["action"], e["version"], e["reason"]) for e in history] == [
        ("promote", "m-aaaaaaaaaaaa", "first"),
        ("promote", "m-bbbbbbbbbbbb", "better on week 2024-06-03"),
        ("rollback", "m-aaaaaaaaaaaa", "b misreads neutral reviews"),
    ]
    assert all("reviewops CLI" in e["actor"] for e in history)

    assert main([*root, "models", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "rollback" in lines[2] and "b misreads neutral reviews" in lines[2]


def test_promoting_an_unknown_version_fails_with_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(tmp_path, "m-aaaaaaaaaaaa")
    assert main(["--data-root", str(tmp_path), "models", "promote", "m-nope", "--reason", "x"]) == 2
    assert "registered: m-aaaaaaaaaaaa" in capsys.readouterr().err


def test_a_reason_is_required(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--data-root", str(tmp_path), "models", "rollback"])


def test_promoting_a_path_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build(tmp_path, "m-aaaaaaaaaaaa")
    elsewhere = tmp_path / "elsewhere" / "m"
    elsewhere.mkdir(parents=True)
    (elsewhere / "metadata.json").write_text(json.dumps({"version": "m-aaaaaaaaaaaa"}))

    code = main(["--data-root", str(tmp_path), "models", "promote", "../../elsewhere/m", "--reason", "x"])

    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "reviewops: '../../elsewhere/m' is not a model version id: use m- and lowercase letters, digits and "
        "hyphens, as 'reviewops models' lists them (e.g. m-0123456789ab)"
    )
    assert Registry(str(tmp_path)).champion() is None


def test_a_champion_pointer_that_is_not_json_stops_score_in_one_line_and_promote_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = build(tmp_path, "m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb")
    registry.promote("m-aaaaaaaaaaaa", "first", "test")
    (registry.root / CHAMPION_FILE).write_text('{"version": "m-aaaa')  # a copy cut short
    root = ["--data-root", str(tmp_path)]

    assert main([*root, "score", "--input", str(SHIPPED), "--output", str(tmp_path / "p.parquet")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "champion pointer" in line and "is damaged (not valid JSON" in line and "models promote VERSION" in line

    assert main([*root, "models", "promote", "m-bbbbbbbbbbbb", "--reason", "repair the pointer"]) == 0
    assert "champion: (damaged pointer) -> m-bbbbbbbbbbbb" in capsys.readouterr().out
    assert registry.champion() == "m-bbbbbbbbbbbb"
    assert registry.history()[-1]["previous"] == "m-aaaaaaaaaaaa"


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04"])
def test_score_with_a_damaged_model_file_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: bytes
) -> None:
    registry = build(tmp_path, "m-aaaaaaaaaaaa")
    registry.promote("m-aaaaaaaaaaaa", "first", "test")
    (registry.path("m-aaaaaaaaaaaa") / MODEL_FILE).write_bytes(damage)  # truncated

    code = main(["--data-root", str(tmp_path), "score", "--input", str(SHIPPED), "--output", str(tmp_path / "p.pq")])

    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("reviewops: model file file://") and "is not the file registered" in line
    assert not (tmp_path / "p.pq").exists()
