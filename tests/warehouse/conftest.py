"""The warehouse tests run twice: on DuckDB (the embedded default) and on PostgreSQL; see the
root conftest's ``backend``."""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param
