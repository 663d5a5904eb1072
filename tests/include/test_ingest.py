"""Ingest of sources with files it must not trust and dates that belong to no week."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import stat
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reviewops.data.ingest import ERROR_SUFFIX, IngestParams, ingest_reviews, rejected_files_dir
from reviewops.data.sources import source_window
from reviewops.data.transform import TransformParams, transform_reviews
from reviewops.data.validate import ValidateParams, validate_reviews
from reviewops.data.windows import Window, WindowError
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.paths import Layout

from .samples import HEADER, SLICE_ROWS, TODAY, as_row, monday, shipped_records, shipped_text, source_date, tsv_line

# Private files an operator could have left in a drop folder (fake credentials), each with
# the words that must reach no log line, metric or lineage record.
PRIVATE_FILES: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "id_ed25519.csv": (
        0o600,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n"
        "-----END OPENSSH PRIVATE KEY-----\n",
        ("OPENSSH", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU"),
    ),
    "service-account.json": (
        0o640,
        json.dumps({"type": "service_account", "client_email": "svc@example-project.iam", "private_key": "MIIEvQ"})
        + "\n",
        ("service_account", "client_email", "svc@example-project.iam", "private_key", "MIIEvQ"),
    ),
    "keys.jsonl": (
        0o600,
        '["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMIK7MDENG"]\n',
        ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI"),
    ),
    "passwords.tsv": (0o600, "admin\thunter2\nroot\tcorrect-horse\n", ("hunter2", "admin", "correct-horse")),
}


def private_drop(folder: Path) -> Path:
    """A drop folder with real reviews and the private files, each with its own mode."""
    folder.mkdir(parents=True)
    (folder / "reviews.tsv").write_text(shipped_text(SLICE_ROWS), encoding="utf-8", newline="")
    for name, (mode, content, _) in PRIVATE_FILES.items():
        (folder / name).write_text(content, encoding="utf-8")
        os.chmod(folder / name, mode)
    return folder


def serialised(result: StepResult, inputs: list[Artifact]) -> str:
    """What the operator turns into the lineage record and the XCom value."""
    return json.dumps([result.metrics, [asdict(a) for a in (*result.outputs, *inputs)]])


def test_rejected_files_keep_their_mode_and_their_content_stays_out_of_logs_and_lineage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    drop = private_drop(tmp_path / "drop")
    data_root = tmp_path / "data"
    window = source_window(str(drop / "reviews.tsv"))

    with caplog.at_level(logging.DEBUG):
        result, inputs = ingest_reviews(IngestParams(str(drop), str(data_root), window))

    kept = rejected_files_dir(data_root, window.key)
    assert sorted(f["file"] for f in result.metrics["files_rejected"]) == sorted(
        str(drop / name) for name in PRIVATE_FILES
    )
    for name, (mode, content, _) in PRIVATE_FILES.items():
        copy = kept / name
        assert copy.read_text(encoding="utf-8") == content
        assert stat.S_IMODE(copy.stat().st_mode) == mode, name  # never wider than the original
        assert (kept / (name + ERROR_SUFFIX)).is_file()
    # Names, sizes and hashes are recorded; what the files hold is not.
    described = {Path(a.uri).name: a for a in inputs if a.kind == "rejected_source"}
    for name, (_, content, _) in PRIVATE_FILES.items():
        assert described[name].sha256 == hashlib.sha256(content.encode()).hexdigest()
        assert described[name].bytes == len(content.encode())
    record, log_text = serialised(result, inputs), caplog.text
    for name, (_, _, secrets) in PRIVATE_FILES.items():
        for secret in secrets:
            assert secret not in record, f"{name}: {secret!r} in the lineage record"
            assert secret not in log_text, f"{name}: {secret!r} in the log"


def test_a_symbolic_link_out_of_the_source_folder_is_refused_unread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "reviews.tsv").write_text(shipped_text(SLICE_ROWS), encoding="utf-8", newline="")
    elsewhere = tmp_path / "home" / "reviews-of-someone-else.tsv"
    elsewhere.parent.mkdir()
    elsewhere.write_text(shipped_text(SLICE_ROWS + 10, first=SLICE_ROWS), encoding="utf-8", newline="")
    (drop / "outside.tsv").symlink_to(elsewhere)
    (drop / "inside.tsv").symlink_to(drop / "reviews.tsv")  # a link within the folder is fine
    data_root = tmp_path / "data"
    window = Window(dt.date(2008, 1, 7), dt.date(2018, 1, 1))

    result, inputs = ingest_reviews(IngestParams(str(drop), str(data_root), window))

    (rejected,) = result.metrics["files_rejected"]
    assert rejected["file"] == str(drop / "outside.tsv")
    assert "symbolic link to a file outside the source folder" in rejected["error"]
    assert str(elsewhere) not in json.dumps(result.metrics)
    assert result.metrics["rows_read"] == 2 * SLICE_ROWS  # reviews.tsv, and inside.tsv reads it again
    assert all(str(elsewhere) not in a.uri and "outside" not in a.uri for a in inputs)
    kept = rejected_files_dir(data_root, window.key)
    assert sorted(p.name for p in kept.iterdir()) == ["outside.tsv" + ERROR_SUFFIX]
    ids = set(pq.read_table(Layout(data_root).raw(window.key), columns=["review_id"]).column(0).to_pylist())
    assert ids == {r[""] for r in shipped_records(SLICE_ROWS)}


def test_a_folder_holding_only_a_link_out_is_refused_naming_it(tmp_path: Path) -> None:
    from reviewops.data.sources import SourceError

    (tmp_path / "drop").mkdir()
    (tmp_path / "reviews.tsv").write_text(shipped_text(3), encoding="utf-8", newline="")
    (tmp_path / "drop" / "reviews.tsv").symlink_to(tmp_path / "reviews.tsv")

    with pytest.raises(SourceError, match=r"none of its 1 file\(s\) could be read; the first: .*symbolic link"):
        ingest_reviews(IngestParams(str(tmp_path / "drop"), str(tmp_path / "data"), Window.week(dt.date(2017, 1, 2))))


# -- dates that belong to no week ----------------------------------------------------------

REAL = shipped_records(1)[0]
REAL_WEEK = monday(source_date(REAL["date"]))


def two_rows(path: Path, odd_date: str) -> Path:
    """A real review and a second one whose date is ``odd_date``."""
    odd = as_row(dict(REAL, **{"": "900001", "date": odd_date}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tsv_line(HEADER) + tsv_line(as_row(REAL)) + tsv_line(odd), encoding="utf-8", newline="")
    return path


def initial_load(source: Path, data_root: Path) -> tuple[StepResult, StepResult, StepResult]:
    """reviews_initial_load's steps over the whole source, as its operators call them."""
    window = source_window(str(source))
    raw, _ = ingest_reviews(IngestParams(str(source), str(data_root), window, today=TODAY))
    checked = validate_reviews(ValidateParams(str(data_root), raw.subject, today=TODAY), raw.output("raw"))
    ingested = raw.metrics["window"]
    curated = transform_reviews(
        TransformParams(
            str(data_root), Window(dt.date.fromisoformat(ingested["start"]), dt.date.fromisoformat(ingested["end"]))
        ),
        checked.output("validated"),
    )
    return raw, checked, curated


@pytest.mark.parametrize(
    ("odd_date", "reason"),
    [("January 1, 1900", "too_old_date"), ("1970-01-01", "too_old_date"), ("March 3, 2099", "future_date")],
)
def test_an_implausible_date_is_quarantined_and_writes_no_week(odd_date: str, reason: str, tmp_path: Path) -> None:
    source = two_rows(tmp_path / "source" / "reviews.tsv", odd_date)

    raw, checked, curated = initial_load(source, tmp_path / "data")

    assert raw.metrics["window"] == Window.week(REAL_WEEK).as_dict()
    assert raw.metrics["rows_read"] == 2
    assert (checked.metrics["rows_valid"], checked.metrics["reasons"]) == (1, {reason: 1})
    assert curated.metrics["weeks_written"] == 1
    assert [p.parent.name for p in Layout(tmp_path / "data").curated_dir().glob("week=*/reviews.parquet")] == [
        f"week={REAL_WEEK}"
    ]
    assert len(json.dumps([curated.metrics, [asdict(a) for a in curated.outputs]])) < 2_000


def test_a_weekly_run_quarantines_future_and_old_rows_instead_of_dropping_them(tmp_path: Path) -> None:
    source = two_rows(tmp_path / "source" / "reviews.tsv", "March 3, 2099")
    with open(source, "a", encoding="utf-8", newline="") as handle:
        handle.write(tsv_line(as_row(dict(REAL, **{"": "900002", "date": "1900-01-01"}))))
    data_root = tmp_path / "data"

    for week in (REAL_WEEK, dt.date(2017, 1, 2)):  # the review's week, and a week without it
        raw, _ = ingest_reviews(IngestParams(str(source), str(data_root), Window.week(week), today=TODAY))
        checked = validate_reviews(ValidateParams(str(data_root), raw.subject, today=TODAY), raw.output("raw"))

        assert checked.metrics["reasons"] == {"future_date": 1, "too_old_date": 1}
        assert checked.metrics["rows_valid"] == (1 if week == REAL_WEEK else 0)


def test_a_window_is_cut_to_the_plausible_dates_and_one_outside_them_is_refused(tmp_path: Path) -> None:
    source = two_rows(tmp_path / "source" / "reviews.tsv", "March 3, 2099")
    data_root = tmp_path / "data"

    raw, _ = ingest_reviews(
        IngestParams(str(source), str(data_root), Window(dt.date(1899, 12, 25), dt.date(2100, 1, 4)), today=TODAY)
    )

    assert raw.metrics["window"] == {"start": "1994-12-26", "end": "2024-06-10"}
    assert raw.subject == "window=1994-12-26_2024-06-10"
    with pytest.raises(WindowError, match="holds no plausible review date"):
        ingest_reviews(IngestParams(str(source), str(data_root), Window.week(dt.date(2030, 1, 7)), today=TODAY))
