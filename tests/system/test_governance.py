"""Model governance with real training: a worse challenger never replaces the champion,
a registered version reproduces, warm start fine-tunes the champion, and concurrent
promotions from separate processes leave one consistent champion."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reviewops.contracts import MODEL_FILE
from reviewops.modeling.reproduce import reproduce
from reviewops.modeling.training import TrainParams, TrainStepParams, train_candidate
from reviewops.pipeline import curate_and_snapshot, evaluate_and_register
from reviewops.registry.store import Registry, RegistryError
from tests.serving.conftest import shuffled_copy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_root = tmp_path_factory.mktemp("governance")
    dataset_dir = curate_and_snapshot(data_root)
    trained = train_candidate(TrainStepParams(str(data_root), str(dataset_dir), TrainParams()))
    first = evaluate_and_register(data_root, trained.outputs[0].path, dataset_dir, trained.subject, "test")
    assert first["promoted"], first
    yield {"data_root": data_root, "dataset_dir": dataset_dir, "champion": trained.subject}


def test_a_challenger_trained_on_shuffled_labels_is_rejected_and_cannot_score(
    governed: dict[str, Any], tmp_path: Path
) -> None:
    shuffled_dir = shuffled_copy(governed["dataset_dir"], tmp_path / "ds-shuffled")
    data_root = governed["data_root"]
    worse = train_candidate(TrainStepParams(str(data_root), str(shuffled_dir), TrainParams(seed=7)))

    # Evaluated on the champion's dataset: the same held-out eval split.
    outcome = evaluate_and_register(data_root, worse.outputs[0].path, governed["dataset_dir"], worse.subject, "test")

    assert outcome["gate"] == "reject" and outcome["promoted"] is False
    registry = Registry(str(data_root))
    assert registry.champion() == governed["champion"]
    assert [e["version"] for e in registry.history()] == [governed["champion"]]
    with pytest.raises(RegistryError, match="was not promoted"):
        registry.resolve(worse.subject)
    card = (registry.path(worse.subject) / "model_card.md").read_text()
    assert "Gate: **reject**" in card


def test_a_registered_version_reproduces_from_its_lineage(governed: dict[str, Any]) -> None:
    import subprocess
    import sys

    command = [str(Path(sys.executable).parent / "reviewops"), "--data-root", str(governed["data_root"])]
    done = subprocess.run([*command, "reproduce", governed["champion"], "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["within_tolerance"] and result["dataset_version"] == governed["dataset_dir"].name
    assert set(result["differences"]) == {"accuracy", "macro_f1"}
    # A tolerance no reproduction can meet is reported as a failure, not hidden.
    strict = reproduce(str(governed["data_root"]), governed["champion"], tolerance=-1.0)
    assert not strict.within_tolerance


def test_warm_start_fine_tunes_the_champion_keeping_its_vocabulary(governed: dict[str, Any]) -> None:
    from reviewops.modeling.training import load_model

    data_root = governed["data_root"]
    champion = governed["champion"]
    tuned = train_candidate(
        TrainStepParams(str(data_root), str(governed["dataset_dir"]), TrainParams(epochs=3), warm_start_from=champion)
    )
    summary = json.loads((tuned.outputs[0].path.parent / "training.json").read_text())
    assert summary["warm_start_from"] == champion
    assert tuned.subject != champion
    vocabulary = load_model(tuned.outputs[0].path).get_layer("vectorizer").get_vocabulary()
    original = load_model(Registry(str(data_root)).path(champion) / MODEL_FILE).get_layer("vectorizer").get_vocabulary()
    assert vocabulary == original


def _promote_from_process(data_root: str, version: str, expected: str, results: Any) -> None:
    results[version] = Registry(data_root).promote(version, "race", f"process {version}", expected=expected)


def test_two_promotions_at_once_from_separate_processes_leave_one_champion(
    governed: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "race"
    shutil.copytree(governed["data_root"] / "models", root / "models")
    registry = Registry(str(root))
    champion = registry.champion()
    assert champion is not None
    contenders = []
    for name in ("m-race00000001", "m-race00000002"):
        folder = registry.path(name)
        shutil.copytree(registry.path(champion), folder)
        meta = json.loads((folder / "metadata.json").read_text())
        (folder / "metadata.json").write_text(json.dumps({**meta, "version": name}))
        contenders.append(name)
    with multiprocessing.Manager() as manager:
        results = manager.dict()
        processes = [
            multiprocessing.get_context("spawn").Process(
                target=_promote_from_process, args=(str(root), v, champion, results)
            )
            for v in contenders
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        outcome = dict(results)
    assert sorted(outcome.values()) == [False, True]
    winner = next(v for v, ok in outcome.items() if ok)
    assert registry.champion() == winner
    assert [e["version"] for e in registry.history()][-1] == winner
    assert len(registry.history()) == 2
