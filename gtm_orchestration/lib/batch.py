"""Batch work on Arrow data: a scratch DuckDB, per-value Python rules joined back in SQL,
whole-column work on every core."""

from __future__ import annotations

import ctypes
import itertools
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import pyarrow as pa

_names = itertools.count()
_scratch: duckdb.DuckDBPyConnection | None = None
_scratch_lock = threading.Lock()


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """A fresh connection to this process's in-memory DuckDB, for batch work on Arrow data.

    Opening a new in-memory database costs ~40 ms; a connection to a shared one, well under
    one. Close it when done; what it registered goes with it.
    """
    global _scratch
    with _scratch_lock:
        if _scratch is None:
            _return_freed_memory()
            _scratch = duckdb.connect()
        return _scratch.cursor()


# glibc's mallopt parameter for the free memory its heaps keep before giving it back.
_M_TRIM_THRESHOLD = -1


def _return_freed_memory() -> None:
    """Have the C library give memory back to the system as soon as it is freed.

    A batch frees its DuckDB tables in blocks of 256 KiB, which glibc keeps in its heaps
    for reuse up to a threshold that grows with the largest block freed: after reading a
    million-row file the process held some 700 MB it no longer used, beside what the
    transform went on to allocate. A threshold of 0 lowers the peak of bench/transform.py
    by about 220 MB, at no cost in time it measures. Linux (glibc) only; elsewhere nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_TRIM_THRESHOLD, 0)


def in_parallel(function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``function`` over ``items`` on a thread per core, in their order: for work on whole
    columns, whose Arrow kernels let go of the GIL."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(function, items))


def distinct_lookup(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    expressions: Sequence[str],
    rule: Callable[..., Sequence[Any]],
    schema: pa.Schema,
) -> str:
    """Register a lookup table of ``rule`` over the distinct values of ``expressions``.

    ``rule`` gets one argument per expression and returns one value per field of
    ``schema``. The lookup has columns ``k0..kN`` (the inputs, nulls included) followed by
    the schema's fields; join on ``k0 IS NOT DISTINCT FROM ...``. Returns its name.
    """
    keys = ", ".join(f"{expr} AS k{i}" for i, expr in enumerate(expressions))
    distinct = con.sql(f"SELECT DISTINCT {keys} FROM {relation}").fetchall()
    results = [rule(*row) for row in distinct]
    arrays: dict[str, pa.Array] = {}
    for i in range(len(expressions)):
        arrays[f"k{i}"] = pa.array([row[i] for row in distinct])
    for j, out in enumerate(schema):
        arrays[out.name] = pa.array([result[j] for result in results], type=out.type)
    name = f"lookup_{next(_names)}"
    table = pa.table(arrays) if distinct else _empty(len(expressions), schema, con, relation)
    con.register(name, table)
    return name


def _empty(
    n_keys: int, schema: pa.Schema, con: duckdb.DuckDBPyConnection, relation: str
) -> pa.Table:
    fields = [pa.field(f"k{i}", pa.string()) for i in range(n_keys)] + list(schema)
    return pa.Table.from_pylist([], schema=pa.schema(fields))


def join_on(lookup: str, expressions: Sequence[str]) -> str:
    """The ON clause that joins ``lookup`` back to the expressions it was built from."""
    return " AND ".join(
        f"{lookup}.k{i} IS NOT DISTINCT FROM {expr}" for i, expr in enumerate(expressions)
    )
