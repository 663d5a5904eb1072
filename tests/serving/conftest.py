"""Fixtures of the serving tests: a registry with two real models, and a server on it.

Both models are trained once per session on the shipped reviews (a few epochs, no hidden
layer: these tests are about serving, not quality), about 25 s on two cores. The first is
the champion; the second is registered beside it, for the hot swap.
"""

from __future__ import annotations

import random
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from reviewops.contracts import MODEL_FILE
from reviewops.modeling.training import TrainParams, TrainStepParams, train_candidate
from reviewops.pipeline import build_champion, evaluate_and_register
from reviewops.registry.store import Registry
from reviewops.serving.server import BackgroundServer
from reviewops.serving.settings import ServeSettings

ACTOR = "tests/serving"
QUICK = TrainParams(epochs=2, hidden_units=0, max_tokens=2000)
# Small limits, so the 413 and 408 cases cost little; the rows and text limits are the real ones.
SETTINGS = ServeSettings(max_body_bytes=256 * 1024, max_rows=64, body_timeout_seconds=1.0, poll_seconds=0.2)


@dataclass(frozen=True)
class TwoModels:
    root: Path
    champion: str
    challenger: str  # registered, not champion
    dataset_dir: Path


_BUILT: list[TwoModels] = []  # once a session, also for modules that import the fixture (tests/system)


@pytest.fixture(scope="session")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> TwoModels:
    if not _BUILT:
        _BUILT.append(_build_two_models(tmp_path_factory))
    return _BUILT[0]


def _build_two_models(tmp_path_factory: pytest.TempPathFactory) -> TwoModels:
    root = tmp_path_factory.mktemp("serving-registry")
    champion, dataset_dir = build_champion(root, QUICK, ACTOR, promote_if_rejected=True)
    second = TrainParams(**{**QUICK.as_dict(), "seed": 7})
    trained = train_candidate(TrainStepParams(str(root), str(dataset_dir), second))
    evaluate_and_register(root, trained.output_named(MODEL_FILE).path, dataset_dir, trained.subject, ACTOR)
    registry = Registry(str(root))
    if registry.champion() != champion:  # the gate preferred the second: keep the first as champion
        registry.promote(champion, "tests/serving: the first model is the champion", ACTOR)
    assert trained.subject != champion
    return TwoModels(root, champion, trained.subject, Path(str(dataset_dir)))


@pytest.fixture(scope="session")
def token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def server(two_models: TwoModels, token: str) -> Iterator[BackgroundServer]:
    """A server on the session's registry, its champion loaded. Tests must not change
    that registry's champion (the hot swap test works on a copy)."""
    with BackgroundServer(str(two_models.root), token=token, settings=SETTINGS) as running:
        assert running.wait_ready(60), running.runtime.watcher.status()
        yield running


@pytest.fixture
def client(server: BackgroundServer, token: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        yield http


def shuffled_copy(dataset_dir: Path, target: Path, seed: int = 7) -> Path:
    """A copy of a dataset version whose training labels are shuffled: a model trained on
    it is a real model that has learnt nothing (the eval split is left as it was)."""
    import tensorflow as tf

    from reviewops.modeling.training import read_tfrecord

    shutil.copytree(dataset_dir, target)
    pairs = list(read_tfrecord(target / "train.tfrecord").as_numpy_iterator())
    labels = [int(y) for _, y in pairs]
    random.Random(seed).shuffle(labels)
    with tf.io.TFRecordWriter(str(target / "train.tfrecord")) as writer:
        for i, ((text, _), label) in enumerate(zip(pairs, labels, strict=True)):
            feature = {
                "review_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"s{i}".encode()])),
                "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text])),
                "label_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return target


def infer_body(texts: list[str]) -> dict[str, object]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


def outputs(response: httpx.Response) -> dict[str, list[object]]:
    """The response's output tensors by name (their data)."""
    assert response.status_code == 200, response.text
    return {tensor["name"]: tensor["data"] for tensor in response.json()["outputs"]}
