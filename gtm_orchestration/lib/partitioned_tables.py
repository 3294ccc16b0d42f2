"""Current-state tables kept per landing day: a day is always replaced whole."""

from __future__ import annotations

import duckdb
import pyarrow as pa


def replace_partition(
    con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, partition_date: str
) -> None:
    """Replace ``table``'s rows of ``partition_date`` by ``rows`` in one transaction."""
    con.register("partition_rows", rows)
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table} AS "
        "SELECT *, CAST(NULL AS DATE) AS partition_date FROM partition_rows WITH NO DATA"
    )
    _add_new_columns(con, table, "partition_rows")
    con.execute("BEGIN")
    con.execute(f"DELETE FROM {table} WHERE partition_date = ?", [partition_date])
    con.execute(
        f"INSERT INTO {table} BY NAME "
        "SELECT *, CAST(? AS DATE) AS partition_date FROM partition_rows",
        [partition_date],
    )
    con.execute("COMMIT")
    con.unregister("partition_rows")


def _add_new_columns(con: duckdb.DuckDBPyConnection, table: str, rows: str) -> None:
    """Add to ``table`` the columns of ``rows`` it lacks (a new version of the stage that
    writes it): the days written before hold NULL in them until they are re-derived."""
    schema, name = table.split(".")
    existing = {
        column
        for (column,) in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()
    }
    for column, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {rows}").fetchall():
        if column not in existing:
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}')
