"""The end-to-end tests run twice: on the embedded defaults and on PostgreSQL (the instance
and the warehouse each in a fresh database, the multiprocess executor); see the root
conftest's ``backend``."""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param
