"""A worker killed with SIGKILL in the middle of writing leaves no partial artifact where
readers look, and the retry produces the same result."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.data.schema import CURATED_SCHEMA
from reviewops.lineage.record import Artifact
from reviewops.modeling.scoring import ScoreParams, score_week
from reviewops.modeling.training import TrainParams
from reviewops.pipeline import build_champion
from reviewops.storage.io import sha256_file, write_parquet

pytestmark = pytest.mark.integration

WEEK = dt.date(2019, 1, 7)
ROWS = 60_000


@pytest.fixture(scope="module")
def scoring_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A registered champion (a quick model: this test is about files, not quality) and a
    large curated week built by resampling the shipped reviews."""
    root = tmp_path_factory.mktemp("faults")
    _, dataset_dir = build_champion(root, TrainParams(epochs=2), "test_faults", promote_if_rejected=True)

    texts = pq.read_table(dataset_dir / "train.parquet").to_pandas()
    big = texts.sample(n=ROWS, replace=True, random_state=1).reset_index(drop=True)
    big["review_id"] = [f"f{i:07d}" for i in range(ROWS)]
    big["review_date"] = [WEEK + dt.timedelta(days=i % 7) for i in range(ROWS)]
    big["week"] = WEEK
    big["useful_count"] = 0
    big["source_file"] = "resampled"
    big["source_row"] = range(1, ROWS + 1)
    curated = write_parquet(
        pa.Table.from_pandas(big[[f.name for f in CURATED_SCHEMA]], schema=CURATED_SCHEMA, preserve_index=False),
        root / "curated" / f"week={WEEK}" / "reviews.parquet",
    )
    yield {"root": root, "curated": Artifact.of_file(curated, "curated")}


def _start_scoring(root: Path, curated: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        from reviewops.lineage.record import Artifact
        from reviewops.modeling.scoring import ScoreParams, score_week
        from pathlib import Path
        score_week(ScoreParams({str(root)!r}, batch_size=256), Artifact.of_file(Path({str(curated)!r}), "curated"))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True)


def _kill_mid_write(root: Path, curated: Path) -> list[Path]:
    """Start a scoring process, SIGKILL it while its temporary file is being written;
    return the temporary files it left."""
    partition = root / "predictions" / f"week={WEEK}"
    process = _start_scoring(root, curated)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            temporary = list(partition.glob(".predictions.parquet.*.tmp")) if partition.exists() else []
            if temporary and temporary[0].stat().st_size > 0:
                time.sleep(0.3)  # well inside the write: it spans many batches
                break
            time.sleep(0.005)
        assert process.poll() is None, "the scoring process ended before it could be killed mid-write"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return list(partition.glob(".predictions.parquet.*.tmp"))


def test_sigkill_during_scoring_leaves_no_partial_partition_and_the_retry_matches(
    scoring_setup: dict[str, Any],
) -> None:
    root, curated = scoring_setup["root"], scoring_setup["curated"]
    target = root / "predictions" / f"week={WEEK}" / "predictions.parquet"

    leftovers = _kill_mid_write(root, curated.path)
    assert leftovers, "the kill should have interrupted a write in progress"
    assert not target.exists(), "a reader must never find a partial predictions partition"

    result, _ = score_week(ScoreParams(str(root), batch_size=256), curated)  # the retry
    first = pq.read_table(target)
    assert first.num_rows == ROWS and result.metrics["rows_scored"] == ROWS
    published = sha256_file(target)

    # Killed again while re-scoring over a complete partition: the old one stays intact.
    _kill_mid_write(root, curated.path)
    assert sha256_file(target) == published

    score_week(ScoreParams(str(root), batch_size=256), curated)
    assert pq.read_table(target).equals(first)
