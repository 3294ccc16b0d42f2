"""The warehouse on DuckDB and on PostgreSQL (each test runs on both, but one about
PostgreSQL's locks): its tables, the view of each file's newest rows, dead-letter ids,
processes opening it at once, and a wrong URL."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, date, datetime

import psycopg2
import pytest

from gtm_orchestration.defs.warehouse.dbt import dbt_environment
from gtm_orchestration.lib.dlq import Failure, dead_letters, record_failures
from gtm_orchestration.lib.warehouse import Warehouse, WarehouseError
from gtm_orchestration.settings import Settings
from tests.conftest import BACKENDS

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECRET = "s3cret-pa55"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test here runs on DuckDB and on PostgreSQL."""
    return request.param


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _land(warehouse: Warehouse, source_file: str, version: int, lines: int) -> None:
    with warehouse.connect() as con:
        for line in range(1, lines + 1):
            con.execute(
                "INSERT INTO raw.lead_rows (source, source_file, file_sha256, line, email, "
                "mapping_version, partition_date, landed_at, loaded_at) "
                "VALUES ('leads', ?, 'sha', ?, ?, ?, ?, ?, ?)",
                [source_file, line, f"l{line}@v{version}.io", version, date(2026, 3, 2), NOW, NOW],
            )


def test_current_lead_rows_hold_each_files_newest_mapping_version(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    _land(warehouse, "a.csv", 1, 2)
    _land(warehouse, "a.csv", 2, 3)  # a backfill re-read a.csv under version 2
    _land(warehouse, "b.csv", 1, 1)
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT source_file, mapping_version, count(*) FROM raw.current_lead_rows "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    assert rows == [("a.csv", 2, 3), ("b.csv", 1, 1)]


def test_dead_letters_get_ids_of_their_own_in_order(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    for key in ("ada@lovelace.io", "bob@acme.com"):
        with warehouse.connect() as con:
            record_failures(
                con,
                destination="hubspot",
                stream="contacts",
                object_type="contacts",
                source_table="gtm.leads",
                run_id="run-1",
                failures=[Failure(key, {"email": key}, "permanent", "INVALID_OPTION", "bad")],
                now=NOW,
            )
    with warehouse.connect() as con:
        letters = dead_letters(con)
    assert [(d.id, d.record_key) for d in letters] == [(1, "ada@lovelace.io"), (2, "bob@acme.com")]


def test_processes_opening_a_new_warehouse_at_once_all_find_its_tables(
    warehouse_url: str,
) -> None:
    code = (
        "import sys\n"
        "from gtm_orchestration.lib.warehouse import Warehouse\n"
        "with Warehouse(sys.argv[1]).connect() as con:\n"
        "    print(con.execute('SELECT count(*) FROM gtm.dead_letters').fetchone()[0])\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, warehouse_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [process.communicate(timeout=300) for process in processes]
    assert [(p.returncode, out) for p, (out, _) in zip(processes, outcomes, strict=True)] == [
        (0, "0\n")
    ] * 3, [err for _, err in outcomes]


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_process_opening_a_made_warehouse_does_not_wait_for_running_queries(
    warehouse_url: str,
) -> None:
    # A step's query holds its lock on the view until it ends; a process starting then (the
    # next step of a run) must not wait to replace what is already there.
    with Warehouse(warehouse_url).connect():
        pass
    reader = psycopg2.connect(warehouse_url)
    try:
        with reader.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM raw.current_lead_rows")
        code = (
            "import sys\n"
            "from gtm_orchestration.lib.warehouse import Warehouse\n"
            "with Warehouse(sys.argv[1]).connect() as con:\n"
            "    print(con.execute('SELECT count(*) FROM raw.lead_rows').fetchone()[0])\n"
        )
        opened = subprocess.run(
            [sys.executable, "-c", code, warehouse_url], capture_output=True, text=True, timeout=60
        )
    finally:
        reader.close()
    assert (opened.returncode, opened.stdout) == (0, "0\n"), opened.stderr


def test_an_unreachable_postgres_names_host_and_database_but_not_the_password() -> None:
    port = _free_port()  # nothing listens there
    url = f"postgresql://gtm:{SECRET}@127.0.0.1:{port}/gtm_warehouse"
    with pytest.raises(WarehouseError) as raised, Warehouse(url).connect():
        pass
    message = str(raised.value)
    assert f"host 127.0.0.1:{port}" in message and "database 'gtm_warehouse'" in message
    assert "Connection refused" in message
    assert SECRET not in message and SECRET not in repr(raised.value)


def test_a_postgres_url_without_a_database_is_refused_before_connecting() -> None:
    url = f"postgresql://gtm:{SECRET}@127.0.0.1:5432/"
    with pytest.raises(WarehouseError, match="names no host or no database") as raised:
        Warehouse(url).postgres  # noqa: B018 (reading it validates the URL)
    assert SECRET not in str(raised.value)


def test_an_unknown_scheme_says_what_is_expected() -> None:
    expected = r"mysql://\.\.\. is not supported; expected"
    with pytest.raises(WarehouseError, match=expected), Warehouse("mysql://x@h/gtm").connect():
        pass


def test_the_password_is_never_printed_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://gtm:{SECRET}@db.internal:5432/gtm_warehouse"
    monkeypatch.setenv("GTM_WAREHOUSE_URL", url)
    assert SECRET not in repr(Settings.from_env())
    assert SECRET not in repr(Warehouse(url))
    assert Warehouse(url).display_url == "postgresql://gtm:***@db.internal:5432/gtm_warehouse"


def test_dbt_runs_on_the_target_of_the_warehouse_url() -> None:
    postgres = dbt_environment(
        f"postgresql://gtm:{SECRET}@db.internal:6543/gtm_warehouse?sslmode=require"
    )
    assert postgres == {
        "GTM_DBT_TARGET": "postgres",
        "GTM_DBT_PG_HOST": "db.internal",
        "GTM_DBT_PG_PORT": "6543",
        "GTM_DBT_PG_USER": "gtm",
        # dbt keeps DBT_ENV_SECRET_ variables out of its logs.
        "DBT_ENV_SECRET_GTM_PG_PASSWORD": SECRET,
        "GTM_DBT_PG_DATABASE": "gtm_warehouse",
        "GTM_DBT_PG_SSLMODE": "require",
    }
    duckdb_target = dbt_environment("duckdb:////srv/gtm/warehouse.duckdb")
    assert duckdb_target == {
        "GTM_DBT_TARGET": "duckdb",
        "GTM_DUCKDB_PATH": "/srv/gtm/warehouse.duckdb",
    }
