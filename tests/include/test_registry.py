"""The model registry: version ids, immutable version folders and the champion pointer.

Versions are fake folders built by hand (a model file and a metadata.json): no model is
trained here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from reviewops.contracts import METADATA_FILE, MODEL_FILE
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageStore
from reviewops.registry.store import (
    CHAMPION_FILE,
    ChampionPointerError,
    ModelFileError,
    Registry,
    RegistryError,
    model_version_id,
)

PARAMS = {"epochs": 5, "max_tokens": 20_000, "seed": 42}


def metadata(version: str, registered_at: str = "2024-06-03T10:00:00+00:00", **extra: Any) -> dict[str, Any]:
    return {"version": version, "registered_at": registered_at, "dataset_version": "ds-0123456789ab", **extra}


def staged(registry: Registry, name: str, model_bytes: bytes) -> Path:
    folder = registry.staging() / name
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(model_bytes)
    return folder


def registered(registry: Registry, version: str, registered_at: str = "2024-06-03T10:00:00+00:00") -> Path:
    folder, published = registry.register(staged(registry, version, version.encode()), metadata(version, registered_at))
    assert published
    return folder


def test_model_version_id_is_stable_for_the_same_inputs() -> None:
    first = model_version_id("ds-0123456789ab", PARAMS, "git:abc")

    assert first == model_version_id("ds-0123456789ab", dict(reversed(PARAMS.items())), "git:abc")
    assert first.startswith("m-") and len(first) == len("m-") + 12
    int(first.removeprefix("m-"), 16)


@pytest.mark.parametrize(
    ("dataset", "params", "code"),
    [
        ("ds-ba9876543210", PARAMS, "git:abc"),
        ("ds-0123456789ab", {**PARAMS, "epochs": 6}, "git:abc"),
        ("ds-0123456789ab", {**PARAMS, "dropout": 0.1}, "git:abc"),
        ("ds-0123456789ab", PARAMS, "git:abd"),
    ],
    ids=["dataset", "param value", "extra param", "code"],
)
def test_model_version_id_changes_with_each_input(dataset: str, params: dict[str, Any], code: str) -> None:
    assert model_version_id(dataset, params, code) != model_version_id("ds-0123456789ab", PARAMS, "git:abc")


def test_register_publishes_a_copy_of_the_candidate_with_its_metadata(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    stage = staged(registry, "m-aaaaaaaaaaaa", b"weights")

    folder, published = registry.register(stage, metadata("m-aaaaaaaaaaaa"))

    assert published
    assert folder == registry.path("m-aaaaaaaaaaaa")
    assert (stage / MODEL_FILE).read_bytes() == b"weights"  # the candidate stays, for audit
    assert (folder / MODEL_FILE).read_bytes() == b"weights"
    assert registry.metadata("m-aaaaaaaaaaaa") == {
        **metadata("m-aaaaaaaaaaaa"),
        "sha256": {MODEL_FILE: hashlib.sha256(b"weights").hexdigest()},
    }
    assert [m["version"] for m in registry.versions()] == ["m-aaaaaaaaaaaa"]


def test_register_of_an_existing_version_keeps_the_registered_copy(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    folder = registered(registry, "m-aaaaaaaaaaaa")
    original = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = staged(registry, "m-aaaaaaaaaaaa-retry", b"other weights")

    second, published = registry.register(again, metadata("m-aaaaaaaaaaaa", "2024-06-04T10:00:00+00:00"))

    assert (second, published) == (folder, False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == original
    assert not list(registry.staging().glob("*.staging"))  # the discarded copy leaves nothing behind


def test_versions_are_listed_oldest_first(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    registered(registry, "m-bbbbbbbbbbbb", "2024-06-05T00:00:00+00:00")
    registered(registry, "m-aaaaaaaaaaaa", "2024-06-04T00:00:00+00:00")

    assert [m["version"] for m in registry.versions()] == ["m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb"]


def test_resolve_of_an_unknown_version_lists_the_known_ones(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    registered(registry, "m-aaaaaaaaaaaa", "2024-06-04T00:00:00+00:00")
    registered(registry, "m-bbbbbbbbbbbb", "2024-06-05T00:00:00+00:00")

    with pytest.raises(RegistryError) as raised:
        registry.resolve("m-cccccccccccc")

    assert str(raised.value) == (
        "model version m-cccccccccccc is not registered (registered: m-aaaaaaaaaaaa, m-bbbbbbbbbbbb)"
    )


def test_resolve_in_an_empty_registry_says_none_are_registered(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"\(registered: none\)"):
        Registry(str(tmp_path)).resolve("m-cccccccccccc")


def test_resolve_without_a_version_needs_a_champion(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    registered(registry, "m-aaaaaaaaaaaa")

    with pytest.raises(RegistryError, match=r"no champion model .* run the reviews_training DAG first"):
        registry.resolve(None)
    assert registry.promote("m-aaaaaaaaaaaa", "test", "tester", expected=None)
    assert registry.resolve(None) == "m-aaaaaaaaaaaa"
    assert registry.resolve("m-aaaaaaaaaaaa") == "m-aaaaaaaaaaaa"


def test_a_version_the_gate_rejected_cannot_be_pinned_until_promoted_by_hand(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    stage = staged(registry, "m-bbbbbbbbbbbb", b"weights")
    gate = {"promote": False, "verdict": "reject", "reasons": ["macro_f1 0.30 vs champion 0.50"]}
    registry.register(stage, metadata("m-bbbbbbbbbbbb", gate=gate))

    with pytest.raises(RegistryError, match=r"m-bbbbbbbbbbbb was not promoted \(macro_f1 0.30 vs champion 0.50\)"):
        registry.resolve("m-bbbbbbbbbbbb")
    registry.promote("m-bbbbbbbbbbbb", "ops override: known-good on last week", "alice")
    assert registry.resolve("m-bbbbbbbbbbbb") == "m-bbbbbbbbbbbb"


def test_promote_with_an_expected_champion_is_compare_and_swap(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    for version in ("m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb", "m-cccccccccccc"):
        registered(registry, version)

    assert registry.promote("m-aaaaaaaaaaaa", "first", "run-1", expected=None)
    assert not registry.promote("m-bbbbbbbbbbbb", "evaluated against nothing", "run-2", expected=None)
    assert registry.promote("m-cccccccccccc", "beat m-aaaaaaaaaaaa", "run-3", expected="m-aaaaaaaaaaaa")
    assert registry.champion() == "m-cccccccccccc"
    pointer = json.loads((registry.root / CHAMPION_FILE).read_text())
    assert (pointer["version"], pointer["reason"], pointer["actor"]) == (
        "m-cccccccccccc",
        "beat m-aaaaaaaaaaaa",
        "run-3",
    )


def test_history_records_every_change_and_rollback_walks_back(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    for version in ("m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb", "m-cccccccccccc"):
        registered(registry, version)
    registry.promote("m-aaaaaaaaaaaa", "first", "run-1")
    registry.promote("m-bbbbbbbbbbbb", "better", "run-2")
    registry.promote("m-cccccccccccc", "better still", "run-3")

    assert registry.rollback("c is wrong on week 2024-06-03", "alice") == "m-bbbbbbbbbbbb"
    assert registry.rollback("b too", "alice") == "m-aaaaaaaaaaaa"
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback("and a", "alice")

    history = registry.history()
    assert [(e["action"], e["version"], e["previous"]) for e in history] == [
        ("promote", "m-aaaaaaaaaaaa", None),
        ("promote", "m-bbbbbbbbbbbb", "m-aaaaaaaaaaaa"),
        ("promote", "m-cccccccccccc", "m-bbbbbbbbbbbb"),
        ("rollback", "m-bbbbbbbbbbbb", "m-cccccccccccc"),
        ("rollback", "m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb"),
    ]
    assert history[3]["actor"] == "alice" and history[3]["reason"] == "c is wrong on week 2024-06-03"
    assert registry.champion() == "m-aaaaaaaaaaaa"


@pytest.mark.parametrize("attempt", range(5))
def test_concurrent_promotions_against_the_same_champion_make_exactly_one_winner(attempt: int, tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    versions = [f"m-{i:012x}" for i in range(8)]
    for version in versions:
        registered(registry, version)
    start = threading.Barrier(len(versions))
    won: dict[str, bool] = {}

    def promote(version: str) -> None:
        start.wait()
        won[version] = registry.promote(version, f"attempt {attempt}", "test", expected=None)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    winners = [v for v, ok in won.items() if ok]
    assert len(won) == len(versions)
    assert len(winners) == 1
    assert registry.champion() == winners[0]
    assert [e["version"] for e in registry.history()] == winners
    assert not list(registry.root.glob(".*.tmp")), "no temporary file is left behind"


def test_a_folder_without_metadata_is_not_a_registered_version(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    folder = registered(registry, "m-aaaaaaaaaaaa")

    (folder / METADATA_FILE).unlink()

    assert registry.versions() == []
    with pytest.raises(RegistryError):
        registry.resolve("m-aaaaaaaaaaaa")


@pytest.mark.parametrize(
    "version",
    [
        "../../elsewhere/m",
        "m-../../x",
        "m-a/b",
        "/etc/passwd",
        "m-a.b",
        "M-AAAAAAAAAAAA",
        "m-",
        "m--a",
        "m-" + "a" * 63,
    ],
)
def test_a_version_that_is_not_a_registry_id_never_becomes_a_path(tmp_path: Path, version: str) -> None:
    registry = Registry(str(tmp_path))
    elsewhere = tmp_path / "elsewhere" / "m"
    elsewhere.mkdir(parents=True)
    (elsewhere / METADATA_FILE).write_text(json.dumps(metadata("m-aaaaaaaaaaaa")))

    with pytest.raises(RegistryError, match="is not a model version id: use m- and lowercase letters"):
        registry.path(version)
    with pytest.raises(RegistryError, match="is not a model version id"):
        registry.resolve(version)
    with pytest.raises(RegistryError, match="is not a model version id"):
        registry.promote(version, "test", "tester")
    assert registry.champion() is None


def test_hand_made_ids_of_the_same_shape_are_versions(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    assert registry.path("m-keras-old") == registry.root / "m-keras-old"
    assert registry.path("m-0123456789ab") == registry.root / "m-0123456789ab"


def test_registration_records_the_sha256_of_every_file(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    stage = staged(registry, "m-aaaaaaaaaaaa", b"weights")
    (stage / "model_card.md").write_text("card")

    registry.register(stage, metadata("m-aaaaaaaaaaaa"))

    assert registry.metadata("m-aaaaaaaaaaaa")["sha256"] == {
        MODEL_FILE: hashlib.sha256(b"weights").hexdigest(),
        "model_card.md": hashlib.sha256(b"card").hexdigest(),
    }


@pytest.mark.parametrize("damage", ["changed", "truncated", "missing"])
def test_a_model_file_that_is_not_the_registered_one_is_refused_with_what_to_do(tmp_path: Path, damage: str) -> None:
    registry = Registry(str(tmp_path))
    folder = registered(registry, "m-aaaaaaaaaaaa")
    model = folder / MODEL_FILE
    assert registry.keras_model("m-aaaaaaaaaaaa") == model
    if damage == "changed":
        model.write_bytes(b"m-aaaaaaaaaaab")  # same size, still "loadable"
    elif damage == "truncated":
        model.write_bytes(model.read_bytes()[:5])
    else:
        model.unlink()

    with pytest.raises(ModelFileError) as raised:
        registry.keras_model("m-aaaaaaaaaaaa")

    message = str(raised.value)
    assert "\n" not in message and "m-aaaaaaaaaaaa" in message and "reviewops models promote" in message
    assert ("is missing" if damage == "missing" else "is not the file registered (sha256") in message


def _legacy_version(registry: Registry, version: str) -> Path:
    """A version registered before metadata held hashes."""
    folder = registered(registry, version)
    meta = json.loads((folder / METADATA_FILE).read_text())
    del meta["sha256"]
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    return folder


def test_a_version_registered_before_hashes_is_checked_against_its_lineage_record(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    folder = _legacy_version(registry, "m-aaaaaaaaaaaa")
    model = folder / MODEL_FILE
    with pytest.raises(ModelFileError, match="registered before the registry recorded file hashes, and no lineage"):
        registry.keras_model("m-aaaaaaaaaaaa")

    LineageStore(str(tmp_path)).write(
        LineageRecord(
            "r" * 32,
            "reviews_training",
            "run",
            "register_model",
            1,
            "m-aaaaaaaaaaaa",
            "git:x",
            {},
            (),
            (Artifact.of_file(model, "model"),),
            (),
            {},
            "2024-06-03T10:00:00+00:00",
            "2024-06-03T10:00:00+00:00",
        )
    )
    assert registry.keras_model("m-aaaaaaaaaaaa") == model
    model.write_bytes(b"tampered")
    with pytest.raises(ModelFileError, match="is not the file registered"):
        registry.keras_model("m-aaaaaaaaaaaa")


@pytest.mark.parametrize("pointer", ["{not json", '{"champion": "m-aaaaaaaaaaaa"}', '{"version": "../../x"}', "[]"])
def test_a_damaged_champion_pointer_says_how_to_repair_it_and_a_promotion_by_hand_does(
    tmp_path: Path, pointer: str
) -> None:
    registry = Registry(str(tmp_path))
    registered(registry, "m-aaaaaaaaaaaa")
    registered(registry, "m-bbbbbbbbbbbb")
    registry.promote("m-aaaaaaaaaaaa", "first", "run-1")
    (registry.root / CHAMPION_FILE).write_text(pointer)

    with pytest.raises(
        ChampionPointerError, match=r"champion pointer .* is damaged .*reviewops models promote VERSION"
    ):
        registry.resolve(None)
    with pytest.raises(ChampionPointerError):  # a training run's gate never overwrites what it cannot read
        registry.promote("m-bbbbbbbbbbbb", "gate", "run-2", expected="m-aaaaaaaaaaaa")

    assert registry.promote("m-aaaaaaaaaaaa", "repair the pointer", "alice")
    assert registry.champion() == "m-aaaaaaaaaaaa"
    assert [(e["version"], e["previous"]) for e in registry.history()][-1] == ("m-aaaaaaaaaaaa", "m-aaaaaaaaaaaa")
