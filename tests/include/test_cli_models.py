"""`reviewops models promote|rollback|history` on a registry of hand-built versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reviewops.cli import main
from reviewops.contracts import MODEL_FILE
from reviewops.registry.store import Registry


def build(root: Path, *versions: str) -> Registry:
    registry = Registry(str(root))
    for i, version in enumerate(versions):
        folder = registry.candidates() / version
        folder.mkdir(parents=True)
        (folder / MODEL_FILE).write_bytes(version.encode())
        meta = {"version": version, "registered_at": f"2024-06-0{i + 1}T00:00:00+00:00", "dataset_version": "ds-x"}
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
