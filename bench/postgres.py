"""A PostgreSQL database of one's own on a shared server, for a deployment or a test."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server ``server_url`` points at, named ``prefix`` and a
    random suffix. Yields its URL (``server_url`` with the database replaced, credentials
    kept) and drops it on exit, closing any connection still open to it.

    ``server_url`` is a SQLAlchemy URL (``postgresql://user[:password]@host[:port]/db``);
    its database is only where the ``CREATE DATABASE`` is issued from.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", prefix):
        raise ValueError(f"database prefix {prefix!r}: expected lower-case letters, digits, _")
    url = sa.engine.make_url(server_url)
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as con:
            con.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as con:
                con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
