"""The trust boundary: a run's source and data root must resolve inside the roots the
deployment allows (``REVIEWOPS_ALLOWED_ROOTS``, else the configured data root and source
and the shipped reviews); the ``reviewops`` command reads what it is given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reviewops.config import (
    ENV_ALLOWED_ROOTS,
    SHIPPED_REVIEWS,
    LocationNotAllowed,
    Settings,
    allowed_roots,
    split_roots,
)


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A deployment with a data root and a source folder of its own, and no allow-list."""
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "incoming").mkdir()
    monkeypatch.setenv("REVIEWOPS_DATA_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("REVIEWOPS_SOURCE", str(tmp_path / "incoming"))
    monkeypatch.delenv(ENV_ALLOWED_ROOTS, raising=False)
    yield tmp_path


def test_by_default_the_configured_roots_and_the_shipped_reviews_are_allowed(deployment: Path) -> None:
    assert allowed_roots(Settings.from_env()) == (
        str(deployment / "artifacts"),
        str(deployment / "incoming"),
        str(SHIPPED_REVIEWS),
    )
    assert Settings.for_run().data_root == str(deployment / "artifacts")  # empty: the configured ones
    run = Settings.for_run(source=str(deployment / "incoming" / "2017"), data_root=str(deployment / "artifacts/run-2"))
    assert (run.source, run.data_root) == (str(deployment / "incoming/2017"), str(deployment / "artifacts/run-2"))
    assert Settings.for_run(source=str(SHIPPED_REVIEWS)).source == str(SHIPPED_REVIEWS)
    assert Settings.for_run(source=f"{deployment}/incoming/*/*.tsv").source.endswith("*.tsv")
    assert Settings.for_run(source=f"file://{deployment}/incoming/a.tsv").source.startswith("file://")


@pytest.mark.parametrize(
    ("name", "location"),
    [
        ("data_root", "/etc"),
        ("data_root", "/"),
        ("source", "/etc/shadow"),
        ("source", "{root}/artifacts-other"),  # a prefix of the name is not a parent folder
        ("data_root", "{root}/artifacts/../elsewhere"),
        ("source", "{root}/incoming/../../../etc/passwd"),
        ("source", "{root}/incoming/*/../../../etc/*"),  # '..' after a wildcard
        ("source", "file:///etc/passwd"),
        ("source", "{root}/incoming/escape/secrets.txt"),  # a symbolic link out of the folder
        ("data_root", "relative/artifacts"),
        ("source", "s3://bucket/reviews.tsv"),
        ("source", "gs://any-bucket/reviews.tsv"),
        ("source", "bigquery://project.dataset.table"),
    ],
)
def test_a_location_outside_the_allowed_roots_is_refused_in_one_line(
    deployment: Path, name: str, location: str
) -> None:
    (deployment / "outside").mkdir()
    (deployment / "outside" / "secrets.txt").write_text("key")
    (deployment / "incoming" / "escape").symlink_to(deployment / "outside")
    location = location.format(root=deployment)

    with pytest.raises(LocationNotAllowed) as raised:
        Settings.for_run(**{name: location})

    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{name} {location!r}")
    assert "allows a run to use" in message or "is not a location a run may set" in message
    if "allows a run to use" in message:
        assert f"add its prefix to {ENV_ALLOWED_ROOTS}" in message
    assert not (Path("/etc") / "curated").exists()


def test_a_symbolic_link_is_judged_by_where_it_leads(deployment: Path) -> None:
    (deployment / "artifacts" / "to-incoming").symlink_to(deployment / "incoming")
    (deployment / "incoming" / "to-etc").symlink_to("/etc")

    assert Settings.for_run(data_root=str(deployment / "artifacts" / "to-incoming"))  # still inside
    with pytest.raises(LocationNotAllowed, match=r"\(resolved: /etc\)"):
        Settings.for_run(data_root=str(deployment / "incoming" / "to-etc"))


def test_the_allow_list_names_local_gs_and_bigquery_prefixes(deployment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ALLOWED_ROOTS, f"{deployment}/drops:gs://reviews-prod/drops:bigquery://proj.reviews")
    allowed = [
        ("source", f"{deployment}/drops/2017-11-27.tsv"),
        ("source", "gs://reviews-prod/drops"),
        ("source", "gs://reviews-prod/drops/2017/*.tsv"),
        ("data_root", "gcs://reviews-prod/drops/artifacts/"),
        ("source", "bigquery://proj.reviews.drugs_com"),
        ("source", "bigquery://proj.reviews"),
        ("data_root", str(deployment / "artifacts")),  # the configured roots stay allowed
    ]
    for name, location in allowed:
        Settings.for_run(**{name: location})
    refused = [
        ("source", str(SHIPPED_REVIEWS)),  # the shipped reviews are only the default's
        ("source", "gs://reviews-prod/drops-other/a.tsv"),
        ("source", "gs://reviews-prod/drops/../secrets/a.tsv"),
        ("source", "gs://reviews-prod/*/../secrets/a.tsv"),
        ("source", "bigquery://proj.reviews2.drugs_com"),
        ("source", "bigquery://proj.other.reviews"),
        ("source", "bigquery://proj"),
        ("data_root", f"{deployment}/drops-2"),
    ]
    for name, location in refused:
        with pytest.raises(LocationNotAllowed):
            Settings.for_run(**{name: location})


def test_colons_of_schemes_do_not_split_the_list() -> None:
    assert split_roots("/data:gs://b/p: bigquery://p.d :/srv/x:") == ["/data", "gs://b/p", "bigquery://p.d", "/srv/x"]
    assert split_roots("") == []


def test_the_command_line_reads_what_it_is_given(deployment: Path) -> None:
    # A person running `reviewops` on their own machine is not a DAG trigger.
    assert Settings.from_env(data_root="/tmp/anywhere").data_root == "/tmp/anywhere"


def test_a_scheme_alone_allows_all_of_it(deployment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ALLOWED_ROOTS, "gs://:bigquery://")
    Settings.for_run(source="gs://any-bucket/reviews.tsv", data_root="gs://other-bucket/prefix")
    Settings.for_run(source="bigquery://any-project.reviews.drugs_com")
    with pytest.raises(LocationNotAllowed):
        Settings.for_run(data_root="/etc")
    with pytest.raises(LocationNotAllowed):
        Settings.for_run(source="bigquery://p.d/../x")
