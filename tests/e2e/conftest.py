"""The end-to-end tests run twice: on the embedded defaults and on PostgreSQL (the instance
and the warehouse each in a fresh database, the multiprocess executor); see the root
conftest's ``backend``.

A test marked ``embedded_only`` runs on the defaults alone, for the reason its marker gives:
the demo is the embedded quick start by definition, and the daemon on PostgreSQL is what
``test_postgres_instance.py`` runs, with more runs in flight.
"""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL run of the tests marked ``embedded_only``."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgres"
        (dropped if on_postgres and item.get_closest_marker("embedded_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
