"""The instance configuration gtm generates: SQLite by default, PostgreSQL when
DAGSTER_PG_URL is set, and the URL (with its password) never written to disk."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._serdes import serialize_value

from gtm_orchestration.cli import main
from gtm_orchestration.instance import dagster_home
from gtm_orchestration.runs import pass_tags
from gtm_orchestration.settings import Settings

# The server trusts loopback logins, so a password in the URL is accepted and ignored: it
# stands for the secret a real deployment's URL carries.
PASSWORD = "n0t-on-disk-5ecret"


@dg.asset
def probe() -> int:
    return 1


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    return home


@pytest.fixture
def pg_url_with_password(pg_database: str) -> str:
    url = sa.engine.make_url(pg_database).set(password=PASSWORD)
    return url.render_as_string(hide_password=False)


def test_without_dagster_pg_url_the_instance_is_sqlite_under_dagster_home(home: Path) -> None:
    assert dagster_home() == home
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert "storage" not in config
    # The repository's run queue and pools are in the generated file.
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert dg.materialize([probe], instance=instance).success
    assert (home / "history" / "runs.db").exists()


def test_with_dagster_pg_url_runs_are_stored_in_postgres_and_the_url_stays_in_the_environment(
    home: Path, pg_url_with_password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url_with_password)
    dagster_home()
    text = (home / "dagster.yaml").read_text()
    assert yaml.safe_load(text)["storage"] == {
        "postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}
    }
    assert PASSWORD not in text and "127.0.0.1" not in text
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        run_id = dg.materialize([probe], instance=instance).run_id
        # What the run launcher hands its worker processes on their command line.
        assert PASSWORD not in serialize_value(instance.get_ref())
    engine = sa.create_engine(pg_url_with_password, poolclass=sa.NullPool)
    with engine.connect() as con:
        stored = con.execute(sa.text("SELECT status FROM runs WHERE run_id = :id"), {"id": run_id})
        assert stored.scalar_one() == "SUCCESS"
    assert not (home / "history" / "runs.db").exists()
    for path in home.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path

    # Unset again, the generated file goes back to SQLite.
    monkeypatch.delenv("DAGSTER_PG_URL")
    dagster_home()
    assert "storage" not in yaml.safe_load((home / "dagster.yaml").read_text())


def test_a_dagster_yaml_of_ones_own_that_keeps_sqlite_is_refused_when_postgres_is_asked_for(
    home: Path,
    pg_url_with_password: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home.mkdir()
    own = "# my instance\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(own)
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url_with_password)

    assert main(["process"]) == 2
    error = capsys.readouterr().err
    assert str(home / "dagster.yaml") in error
    assert "DAGSTER_PG_URL is set" in error and "sqlite storage" in error
    assert PASSWORD not in error
    assert (home / "dagster.yaml").read_text() == own

    # With the storage section added, the user's own file is used as it is.
    (home / "dagster.yaml").write_text(
        own + "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\n"
    )
    assert dagster_home() == home
    assert (home / "dagster.yaml").read_text().startswith(own)


def test_a_pass_closes_only_the_runs_its_own_lock_left_unfinished_on_a_shared_instance(
    settings: Settings, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two hosts' passes share the instance's PostgreSQL storage; each holds its own lock.
    monkeypatch.setenv("DAGSTER_PG_URL", pg_database)
    dagster_home()
    other_host = {**pass_tags(), "gtm/pass_lock": "other-host:/srv/dagster"}
    with dg.DagsterInstance.get() as instance:
        for run_id, tags in (("killed-here", pass_tags()), ("running-there", other_host)):
            instance.add_run(
                dg.DagsterRun(
                    job_name="lead_pipeline",
                    run_id=run_id,
                    status=dg.DagsterRunStatus.STARTED,
                    tags=tags,
                )
            )

    assert main(["process"]) == 0

    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id("killed-here").status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id("running-there").status == dg.DagsterRunStatus.STARTED
