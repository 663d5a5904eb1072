"""Online and batch answers agree: every shipped review, sent raw to the server, gets the
label, probabilities and safety flags the pipeline gives it (ingest, validate, transform,
then ``reviewops.modeling.scoring``) and those ``reviewops score`` gives it.

Probabilities agree as ``predict_proba`` agrees with itself across batch sizes
(tests/include/test_predict.py): a row's float32 result may differ in the last bit with
the batch it was computed in (the kernels block a matrix product by its row count), and
online batches are not the batch job's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.cli import main as reviewops_main
from reviewops.config import SHIPPED_REVIEWS, Settings
from reviewops.data.safety import load_toxic_terms
from reviewops.data.sources import read_source
from reviewops.data.validate import validate_frame
from reviewops.modeling.scoring import score_table_batches
from reviewops.registry.store import Registry

from .conftest import SETTINGS, TwoModels, infer_body, outputs

# A real server over two models trained for the session (about 30 s once, shared by the
# three modules that need it): integration, like the other tests that train.
pytestmark = pytest.mark.integration


CLASSES = ("negative", "neutral", "positive")


@pytest.fixture(scope="module")
def online(two_models: TwoModels, client_factory: Any) -> dict[str, dict[str, Any]]:
    """The server's answer for every valid shipped review, sent as the source holds it."""
    raw = read_source(str(SHIPPED_REVIEWS)).to_pandas()
    valid = validate_frame(raw, Settings().max_text_chars, dt.datetime.now(dt.UTC).date()).valid
    ids, texts = valid["review_id"].tolist(), valid["text"].tolist()
    answers: dict[str, dict[str, Any]] = {}
    with client_factory() as http:
        for start in range(0, len(texts), SETTINGS.max_rows):
            data = outputs(
                http.post("/v2/models/reviews/infer", json=infer_body(texts[start : start + SETTINGS.max_rows]))
            )
            for i, review_id in enumerate(ids[start : start + SETTINGS.max_rows]):
                answers[review_id] = {
                    "label": data["label"][i],
                    "probabilities": data["probabilities"][i * 3 : i * 3 + 3],
                    "categories": data["safety_categories"][i],
                    "score": data["safety_score"][i],
                    "version": data["model_version"][i],
                }
    assert len(answers) == len(valid) > 500
    return answers


@pytest.fixture(scope="module")
def client_factory(server: Any, token: str) -> Any:
    return lambda: httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def compare(online: dict[str, dict[str, Any]], batch: pa.Table) -> int:
    """Assert that every batch row's label and probabilities are the online ones; returns the rows compared."""
    rows = batch.to_pylist()
    for row in rows:
        answer = online[row["review_id"]]
        assert answer["label"] == row["predicted_label"], row["review_id"]
        expected = np.array([row[f"prob_{name}"] for name in CLASSES], np.float32)
        np.testing.assert_allclose(
            np.array(answer["probabilities"], np.float32), expected, rtol=1e-5, atol=1e-6, err_msg=row["review_id"]
        )
        assert answer["version"] == row["model_version"]
    return len(rows)


def test_online_answers_are_the_pipelines_scores(
    online: dict[str, dict[str, Any]], two_models: TwoModels, tmp_path: Path
) -> None:
    curated = pa.concat_tables(
        pq.read_table(path, columns=["review_id", "week", "text", "label"])
        for path in sorted((two_models.root / "curated").glob("week=*/*.parquet"))
    )
    registry = Registry(str(two_models.root))
    out = tmp_path / "predictions.parquet"
    score_table_batches(
        curated.to_batches(max_chunksize=4096),
        registry.keras_model(two_models.champion),
        two_models.champion,
        CLASSES,
        out,
    )
    batch = pq.read_table(out)
    assert compare(online, batch) == curated.num_rows > 500
    for row in batch.select(["review_id", "safety_categories", "safety_score"]).to_pylist():
        answer = online[row["review_id"]]
        assert answer["categories"] == ",".join(row["safety_categories"]), row["review_id"]
        assert answer["score"] == row["safety_score"], row["review_id"]


def test_safety_flags_online_are_the_ones_batch_scoring_writes(
    client_factory: Any, two_models: TwoModels, tmp_path: Path
) -> None:
    """The shipped reviews hold no flagged text: hand-made ones, one per category and a clean one."""
    texts = [
        "Call me at (555) 123-4567 about it",
        "Mail someone@example.com",
        "See www.example.com/reviews",
        f"This {load_toxic_terms()[0]} pill did nothing",
        "Helped my migraines",
    ]
    with client_factory() as http:
        data = outputs(http.post("/v2/models/reviews/infer", json=infer_body(texts)))
    table = pa.table(
        {
            "review_id": [f"s{i}" for i in range(len(texts))],
            "week": pa.array([dt.date(2020, 1, 6)] * len(texts), pa.date32()),
            "text": texts,
            "label": ["neutral"] * len(texts),
        }
    )
    out = tmp_path / "flags.parquet"
    model = Registry(str(two_models.root)).keras_model(two_models.champion)
    score_table_batches(table.to_batches(), model, two_models.champion, CLASSES, out)
    batch = pq.read_table(out).to_pydict()
    assert (
        data["safety_categories"]
        == [",".join(c) for c in batch["safety_categories"]]
        == [
            "phone",
            "email",
            "url",
            "toxic",
            "",
        ]
    )
    assert data["safety_score"] == batch["safety_score"]
    assert data["safety_flagged"] == [True, True, True, True, False]


def test_online_answers_are_what_reviewops_score_writes(
    online: dict[str, dict[str, Any]], two_models: TwoModels, tmp_path: Path
) -> None:
    out = tmp_path / "scored.parquet"
    argv = ["--data-root", str(two_models.root), "score", "--input", str(SHIPPED_REVIEWS), "--output", str(out)]
    assert reviewops_main(argv) == 0
    assert compare(online, pq.read_table(out)) == len(online)
