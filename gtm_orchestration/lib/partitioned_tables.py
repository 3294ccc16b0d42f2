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
    con.execute("BEGIN")
    con.execute(f"DELETE FROM {table} WHERE partition_date = ?", [partition_date])
    con.execute(
        f"INSERT INTO {table} BY NAME "
        "SELECT *, CAST(? AS DATE) AS partition_date FROM partition_rows",
        [partition_date],
    )
    con.execute("COMMIT")
    con.unregister("partition_rows")
