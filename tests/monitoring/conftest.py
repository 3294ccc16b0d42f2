"""Fixtures of the alerting tests: the sandbox's sinks, a Dagster instance, a warehouse and
thresholds of the test's own (all under the test's temporary folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, pipeline_instance
from tests.monitoring.support import PipelineRows, Sinks, SmtpServer, write_thresholds


@pytest.fixture
def sinks(crm: Crm, settings: Settings) -> Sinks:
    """The alert sinks of the test's sandbox, where the alerts go by default."""
    return Sinks(crm.http)


@pytest.fixture
def instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    with pipeline_instance() as instance:
        yield instance


@pytest.fixture
def thresholds(tmp_path: Path) -> Path:
    """config/alerts.yaml with traffic expected at all hours."""
    return write_thresholds(tmp_path / "alerts.yaml")


@pytest.fixture
def rows(settings: Settings) -> PipelineRows:
    return PipelineRows(Warehouse(settings.warehouse_url))


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server
